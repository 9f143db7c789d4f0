"""Real lm-eval task names run offline on imported data, exactly as lm-eval runs them."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.benchmarks import layouts
from tests.helpers import make_checkpoint, write_suite
from tripwire.benchmarks import DataStore, import_benchmark
from tripwire.errors import MissingDataError
from tripwire.runner import Runner
from tripwire.runner.task_index import lm_eval_tasks_root
from tripwire.suites import load_suite

NOW = datetime(2026, 11, 30, tzinfo=UTC)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoint, public files of MMLU (CSV and hub copy of the same items), WMDP and ARC,
    and a store the CSV, WMDP and ARC files were imported into."""
    root = tmp_path_factory.mktemp("real")
    make_checkpoint(root / "ckpt", seed=3)
    store = DataStore(root / "data")
    import_benchmark("mmlu", layouts.write_mmlu_csv(root / "mmlu-csv"), store, now=NOW)
    layouts.write_mmlu_hub(root / "mmlu-hub")
    import_benchmark("wmdp", layouts.write_wmdp_hub(root / "wmdp", ("bio",)), store, now=NOW)
    import_benchmark("arc", layouts.write_arc_hub(root / "arc"), store, now=NOW)
    return root


def _direct(yaml_rel: str, files: dict[str, str]) -> dict[str, Any]:
    """lm-eval's own task config, reading ``files`` directly (no store, no Tripwire)."""
    from lm_eval.tasks._yaml_loader import load_yaml

    cfg = load_yaml(lm_eval_tasks_root() / yaml_rel)
    cfg.update(dataset_path="parquet", dataset_name=None, dataset_kwargs={"data_files": files})
    return cfg


def test_real_task_names_score_exactly_as_lm_eval_on_the_same_items(world: Path) -> None:
    """mmlu_abstract_algebra (imported from the CSV release, 5-shot), wmdp_bio and
    arc_challenge (2-shot) give to the last digit the scores, and the item outcomes, of
    lm-eval's own tasks reading the same items from the files directly."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    suite = write_suite(
        world / "real.yaml",
        "name: real\nkind: proxy\nseed: 0\ntasks:\n"
        "  - task: mmlu_abstract_algebra\n    num_fewshot: 5\n"
        "  - task: wmdp_bio\n"
        "  - task: arc_challenge\n    num_fewshot: 2\n",
    )
    ours = Runner(data_dir=world / "data", cache_dir=world / "cache").evaluate(
        world / "ckpt", load_suite(suite)
    )
    hub = world / "mmlu-hub" / "abstract_algebra"
    arc = world / "arc" / "ARC-Challenge"
    direct = [
        (
            "mmlu_abstract_algebra",
            _direct(
                "mmlu/default/mmlu_abstract_algebra.yaml",
                {s: str(hub / f"{s}-00000-of-00001.parquet") for s in ("test", "dev")},
            ),
            5,
        ),
        (
            "wmdp_bio",
            _direct(
                "wmdp/wmdp_bio.yaml",
                {"test": str(world / "wmdp" / "wmdp-bio" / "test-00000-of-00001.parquet")},
            ),
            None,
        ),
        (
            "arc_challenge",
            _direct(
                "arc/arc_challenge.yaml",
                {
                    s: str(arc / f"{s}-00000-of-00001.parquet")
                    for s in ("train", "validation", "test")
                },
            ),
            2,
        ),
    ]
    for name, cfg, shots in direct:
        theirs = lm_eval.simple_evaluate(
            model="hf",
            model_args={"pretrained": str(world / "ckpt"), "device": "cpu", "batch_size": 32},
            tasks=[cfg],
            num_fewshot=shots,
            task_manager=TaskManager(include_defaults=False),
            log_samples=True,
            random_seed=0,
            numpy_random_seed=0,
            torch_random_seed=0,
            fewshot_random_seed=0,
        )
        assert theirs is not None
        result = ours.tasks[name]
        assert result.score == theirs["results"][name]["acc,none"], name
        assert result.stderr == theirs["results"][name]["acc_stderr,none"], name
        assert result.items.values == [s["acc"] for s in theirs["samples"][name]], name
        assert result.items.doc_hashes == [s["doc_hash"] for s in theirs["samples"][name]]
        assert result.n_items == {"mmlu_abstract_algebra": 8, "wmdp_bio": 10}.get(name, 8)


def test_a_suite_with_absent_data_fails_before_the_model_loads_naming_every_benchmark(
    tmp_path: Path,
) -> None:
    suite = write_suite(
        tmp_path / "s.yaml",
        "name: s\nkind: proxy\ntasks:\n  - task: mmlu\n  - task: gpqa_diamond_zeroshot\n"
        "  - task: hellaswag\n  - task: wmdp_bio\n  - task: gsm8k\n  - task: arc_challenge\n",
    )
    with pytest.raises(MissingDataError) as caught:
        # the checkpoint does not even exist: the data check comes first
        Runner(data_dir=tmp_path / "empty").evaluate(tmp_path / "no-ckpt", load_suite(suite))
    assert list(caught.value.missing) == ["mmlu", "gpqa", "hellaswag", "wmdp", "gsm8k", "arc"]
    for name in caught.value.missing:
        assert f"tripwire data import {name} PATH" in str(caught.value)


def test_a_partly_imported_benchmark_is_missing_for_the_subsets_it_lacks(world: Path) -> None:
    """Two MMLU subjects imported: mmlu_anatomy runs, the full mmlu group is still missing."""
    suite = write_suite(
        world / "part.yaml",
        "name: part\nkind: deep\ntasks:\n  - task: mmlu\n  - task: mmlu_anatomy\n"
        "  - task: wmdp_bio\n  - task: wmdp_chem\n",
    )
    with pytest.raises(MissingDataError) as caught:
        Runner(data_dir=world / "data").check_data(load_suite(suite))
    assert caught.value.missing == {"mmlu": ["mmlu"], "wmdp": ["wmdp_chem"]}


REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("suite", ["evals/deep.yaml", "evals/proxy-risk.yaml", "evals/proxy.yaml"])
def test_tripwire_eval_accepts_the_shipped_suites_up_to_their_data(
    suite: str, tmp_path: Path
) -> None:
    """Every task name of the shipped real suites resolves: the only error is missing data."""
    from typer.testing import CliRunner

    from tripwire.cli import app

    result = CliRunner().invoke(app, ["eval", str(tmp_path), "--suite", str(REPO / suite)])
    assert result.exit_code == 2
    assert "benchmark data missing from the local store" in result.output
    assert "neither a built-in" not in result.output
    assert "tripwire data import wmdp PATH" in result.output or "wmdp" not in suite


def test_an_edited_template_in_an_include_folder_changes_the_scores(tmp_path: Path) -> None:
    """A task's prompt lives in an included template (not *.yaml): editing it gives a new
    suite hash, a new materialized copy and the edited prompt's scores."""
    tasks = tmp_path / "evals" / "t"
    (tasks / "data").mkdir(parents=True)
    layouts.write_jsonl(tasks / "data" / "items.jsonl", layouts.wmdp_rows("tmpl", 30))
    (tasks / "t.yaml").write_text(
        "task: tmpl_task\ninclude: _template\ndataset_path: json\n"
        "dataset_kwargs:\n  data_files:\n    test: data/items.jsonl\n"
    )
    template = tasks / "_template"
    template.write_text(
        "output_type: multiple_choice\ntest_split: test\n"
        'doc_to_text: "{{question}}="\ndoc_to_choice: "{{choices}}"\n'
        'doc_to_target: "{{answer}}"\ntarget_delimiter: ""\n'
        "metric_list:\n  - metric: acc\n    aggregation: mean\n    higher_is_better: true\n"
    )
    suite = write_suite(
        tmp_path / "evals" / "s.yaml",
        "name: s\nkind: proxy\ninclude: [t]\nbootstrap_iters: 0\ntasks:\n  - task: tmpl_task\n",
    )
    ckpt = make_checkpoint(tmp_path / "ckpt", seed=5)
    runner = Runner(cache_dir=tmp_path / "cache")
    before_suite = load_suite(suite)
    before = runner.evaluate(ckpt, before_suite).tasks["tmpl_task"]
    template.write_text(
        template.read_text().replace('"{{question}}="', '"Q: {{question}} A: 99 or 12 ="')
    )
    after_suite = load_suite(suite)
    after = runner.evaluate(ckpt, after_suite).tasks["tmpl_task"]
    assert after_suite.content_hash != before_suite.content_hash
    assert len(list((tmp_path / "cache" / "tasks").iterdir())) == 2
    assert after.items.texts[0][0].endswith("A: 99 or 12 =")
    assert after.items.values != before.items.values


def test_a_custom_group_over_built_in_subject_tasks_runs(world: Path) -> None:
    """A group in an include folder naming imported MMLU subjects runs (lm-eval's group)."""
    (world / "evals" / "g").mkdir(parents=True)
    (world / "evals" / "g" / "g.yaml").write_text(
        "group: two_subjects\ntask: [mmlu_abstract_algebra, mmlu_anatomy]\n"
        "aggregate_metric_list:\n  - metric: acc\n    weight_by_size: true\n"
    )
    suite = write_suite(
        world / "evals" / "g.yaml",
        "name: g\nkind: proxy\ninclude: [g]\ntasks:\n  - task: two_subjects\n",
    )
    runner = Runner(data_dir=world / "data", cache_dir=world / "cache")
    result = runner.evaluate(world / "ckpt", load_suite(suite)).tasks["two_subjects"]
    assert result.n_items == 16
    assert result.score == sum(result.items.values) / 16


def test_every_importable_benchmark_runs_by_its_real_names_offline(tmp_path: Path) -> None:
    """GPQA (CSV), HellaSwag and GSM8K (release JSONL) and WMDP chem and cyber run by lm-eval's
    names after import, with lm-eval's own processing (GPQA's shuffled choices, HellaSwag's
    preprocessing, GSM8K's answer extraction)."""
    store = DataStore(tmp_path / "data")
    import_benchmark("gpqa", layouts.write_gpqa_csv(tmp_path / "gpqa"), store, now=NOW)
    import_benchmark("hellaswag", layouts.write_hellaswag_jsonl(tmp_path / "hs"), store, now=NOW)
    import_benchmark("gsm8k", layouts.write_gsm8k_jsonl(tmp_path / "gsm"), store, now=NOW)
    import_benchmark("wmdp", layouts.write_wmdp_hub(tmp_path / "wmdp"), store, now=NOW)
    suite = write_suite(
        tmp_path / "s.yaml",
        "name: s\nkind: proxy\nbootstrap_iters: 0\ntasks:\n"
        "  - task: gpqa_diamond_zeroshot\n"
        "  - task: hellaswag\n    num_fewshot: 2\n    metric: acc_norm\n"
        "  - task: gsm8k\n    num_fewshot: 1\n    limit: 2\n"
        "    metric: exact_match\n    filter: strict-match\n"
        "  - task: wmdp\n",
    )
    result = Runner(data_dir=tmp_path / "data", cache_dir=tmp_path / "cache").evaluate(
        # GSM8K generates up to 256 tokens: a context longer than that
        make_checkpoint(tmp_path / "ckpt", seed=2, n_positions=512),
        load_suite(suite),
    )
    counts = {name: task.n_items for name, task in result.tasks.items()}
    assert counts == {"gpqa_diamond_zeroshot": 6, "hellaswag": 6, "gsm8k": 2, "wmdp": 30}
    assert all(0.0 <= t.score <= 1.0 for t in result.tasks.values())
    gsm8k = result.tasks["gsm8k"]  # items of the chosen filter only, once each
    assert gsm8k.score == sum(gsm8k.items.values) / 2


def test_a_relative_dataset_path_in_a_custom_task_is_resolved_from_its_folder(
    tmp_path: Path,
) -> None:
    """`dataset_path: ../items` (a local folder of parquet files) works from any directory."""
    tasks = tmp_path / "evals" / "t"
    tasks.mkdir(parents=True)
    layouts.write_wmdp_hub(tmp_path / "evals" / "items", ("bio",))
    (tasks / "t.yaml").write_text(
        "task: local_items\ndataset_path: ../items/wmdp-bio\ntest_split: test\n"
        "output_type: multiple_choice\n"
        'doc_to_text: "{{question}}="\ndoc_to_choice: "{{choices}}"\n'
        'doc_to_target: "{{answer}}"\n'
        "metric_list:\n  - metric: acc\n    aggregation: mean\n    higher_is_better: true\n"
    )
    suite = write_suite(
        tmp_path / "evals" / "s.yaml",
        "name: s\nkind: proxy\ninclude: [t]\ntasks:\n  - task: local_items\n",
    )
    result = Runner(cache_dir=tmp_path / "cache").evaluate(
        make_checkpoint(tmp_path / "ckpt", seed=4), load_suite(suite)
    )
    assert result.tasks["local_items"].n_items == 10


def test_the_full_mmlu_group_runs_by_its_name_after_importing_every_subject(
    tmp_path: Path,
) -> None:
    """`mmlu` (lm-eval's group of 57 subjects in 4 categories) runs 5-shot from the CSV
    release; its score and standard error are lm-eval's group aggregate."""
    from tripwire.runner.task_index import BuiltinTaskIndex

    index = BuiltinTaskIndex(lm_eval_tasks_root(), None)
    subjects = tuple(
        sorted(str((index.data_of(leaf) or {})["name"]) for leaf in index.leaves("mmlu"))
    )
    assert len(subjects) == 57
    store = DataStore(tmp_path / "data")
    import_benchmark(
        "mmlu", layouts.write_mmlu_csv(tmp_path / "csv", subjects, n=2), store, now=NOW
    )
    suite = write_suite(
        tmp_path / "s.yaml",
        "name: s\nkind: deep\nbootstrap_iters: 10\ntasks:\n  - task: mmlu\n    num_fewshot: 5\n",
    )
    Runner(data_dir=tmp_path / "data").check_data(load_suite(suite))  # nothing missing
    result = Runner(data_dir=tmp_path / "data", cache_dir=tmp_path / "cache").evaluate(
        make_checkpoint(tmp_path / "ckpt", seed=6), load_suite(suite)
    )
    mmlu = result.tasks["mmlu"]
    assert mmlu.n_items == 114
    assert mmlu.num_fewshot == 5
    assert mmlu.score == pytest.approx(sum(mmlu.items.values) / 114, abs=1e-12)
    assert mmlu.stderr is not None
