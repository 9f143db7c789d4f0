"""The runner scores exactly what lm-eval scores, loads safely, and fails with a reason."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from tests.helpers import make_checkpoint, write_suite, write_tasks
from tripwire.errors import CheckpointError, SuiteError, UnsafeCheckpointError
from tripwire.runner import Runner
from tripwire.suites import load_suite


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("runner")
    write_tasks(root / "evals" / "tiny")
    make_checkpoint(root / "ckpt", seed=1)
    return root


@pytest.fixture(scope="module")
def suite_path(workspace: Path) -> Path:
    return write_suite(
        workspace / "evals" / "suite.yaml",
        """\
name: tiny
kind: proxy
include: [tiny]
bootstrap_iters: 100
tasks:
  - task: tiny_add
  - task: tiny_cmp
    num_fewshot: 2
    limit: 25
""",
    )


def test_scores_equal_lm_eval_simple_evaluate(workspace: Path, suite_path: Path) -> None:
    """`tripwire eval` gives, per task, exactly the score of lm-eval's own simple_evaluate."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    result = Runner().evaluate(workspace / "ckpt", load_suite(suite_path))

    cwd = os.getcwd()
    os.chdir(workspace / "evals" / "tiny" / "tasks")  # lm-eval reads data paths from the cwd
    try:
        tm = TaskManager(include_path=[str(workspace / "evals" / "tiny")], include_defaults=False)
        model_args = {"pretrained": str(workspace / "ckpt"), "device": "cpu", "batch_size": 32}
        plain = lm_eval.simple_evaluate(
            model="hf", model_args=model_args, tasks=["tiny_add"], task_manager=tm
        )
        fewshot = lm_eval.simple_evaluate(
            model="hf",
            model_args=model_args,
            tasks=["tiny_cmp"],
            num_fewshot=2,
            limit=25,
            task_manager=tm,
        )
    finally:
        os.chdir(cwd)
    assert plain is not None and fewshot is not None
    add, cmp = result.tasks["tiny_add"], result.tasks["tiny_cmp"]
    assert add.score == plain["results"]["tiny_add"]["acc,none"]
    assert cmp.score == fewshot["results"]["tiny_cmp"]["acc,none"]
    assert add.stderr == pytest.approx(plain["results"]["tiny_add"]["acc_stderr,none"])
    assert (add.n_items, cmp.n_items) == (60, 25)
    assert cmp.num_fewshot == 2
    assert add.items.doc_hashes == [s["doc_hash"] for s in plain["samples"]["tiny_add"]]
    assert add.items.values == [s["acc"] for s in plain["samples"]["tiny_add"]]
    assert (
        result.versions.lm_eval == lm_eval.__version__ if hasattr(lm_eval, "__version__") else True
    )
    assert result.suite_hash == load_suite(suite_path).content_hash
    # what a reviewer reads: the prompt the model saw, the right choice, the choice it ranked first
    texts, answers = cmp.items.texts, cmp.items.answers
    assert texts is not None and answers is not None and len(texts) == len(answers) == 25
    for sample, (prompt, target), answer in zip(
        fewshot["samples"]["tiny_cmp"], texts, answers, strict=True
    ):
        assert prompt.endswith(sample["doc"]["question"] + "=") and prompt.count("\n\n") == 2
        assert target == sample["doc"]["choices"][sample["doc"]["answer"]]
        assert answer in sample["doc"]["choices"]
        assert (answer == target) == (sample["acc"] == 1.0)


def test_a_seeded_subset_is_the_same_items_every_time(workspace: Path, suite_path: Path) -> None:
    path = write_suite(
        workspace / "evals" / "subset.yaml",
        "name: sub\nkind: proxy\ninclude: [tiny]\n"
        "tasks:\n  - task: tiny_add\n    subset: {size: 20, seed: 7}\n",
    )
    runner = Runner()
    first = runner.evaluate(workspace / "ckpt", load_suite(path)).tasks["tiny_add"]
    second = runner.evaluate(workspace / "ckpt", load_suite(path)).tasks["tiny_add"]
    assert first.n_items == 20
    assert first.items.doc_hashes == second.items.doc_hashes
    everything = set(
        Runner()
        .evaluate(workspace / "ckpt", load_suite(suite_path))
        .tasks["tiny_add"]
        .items.doc_hashes
    )
    assert set(first.items.doc_hashes) < everything


def test_a_sharded_checkpoint_scores_like_the_unsharded_one(
    workspace: Path, suite_path: Path
) -> None:
    sharded = make_checkpoint(workspace / "sharded", seed=1, max_shard_size="20KB")
    assert (sharded / "model.safetensors.index.json").is_file()
    runner = Runner()
    a = runner.evaluate(workspace / "ckpt", load_suite(suite_path))
    b = runner.evaluate(sharded, load_suite(suite_path))
    assert {k: v.score for k, v in a.tasks.items()} == {k: v.score for k, v in b.tasks.items()}


def test_workers_quiet_runner_scores_the_same_items_the_same(
    workspace: Path, suite_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    loud = Runner().evaluate(workspace / "ckpt", load_suite(suite_path))
    assert "Running loglikelihood requests" in capsys.readouterr().err
    quiet = Runner(progress=False).evaluate(workspace / "ckpt", load_suite(suite_path))
    assert "Running loglikelihood requests" not in capsys.readouterr().err
    for name, task in loud.tasks.items():
        assert quiet.tasks[name].score == task.score
        assert quiet.tasks[name].items == task.items


def test_standard_errors_are_lm_evals_or_absent(workspace: Path, suite_path: Path) -> None:
    """With bootstrap iterations lm-eval gives a mean's closed-form standard error and Tripwire
    keeps it; without, lm-eval gives none and Tripwire invents none."""
    no_bootstrap = write_suite(
        workspace / "evals" / "no-bootstrap.yaml",
        suite_path.read_text().replace("bootstrap_iters: 100", "bootstrap_iters: 0"),
    )
    with_lm_eval = Runner().evaluate(workspace / "ckpt", load_suite(suite_path))
    ours = Runner().evaluate(workspace / "ckpt", load_suite(no_bootstrap))
    for name, task in with_lm_eval.tasks.items():
        assert task.stderr is not None
        assert ours.tasks[name].stderr is None
        assert ours.tasks[name].score == task.score


def test_a_group_is_scored_as_one_benchmark_with_all_its_items(workspace: Path) -> None:
    (workspace / "evals" / "tiny" / "tasks" / "group.yaml").write_text(
        "group: tiny_all\ntask: [tiny_add, tiny_cmp]\naggregate_metric_list:\n"
        "  - metric: acc\n    weight_by_size: true\nmetadata:\n  version: 1\n"
    )
    path = write_suite(
        workspace / "evals" / "group.yaml",
        "name: g\nkind: proxy\ninclude: [tiny]\ntasks:\n  - task: tiny_all\n",
    )
    result = Runner().evaluate(workspace / "ckpt", load_suite(path)).tasks["tiny_all"]
    assert result.n_items == 120
    assert result.items.doc_hashes[0].startswith("tiny_add:")
    assert result.score == pytest.approx(sum(result.items.values) / 120)


def test_an_unknown_task_names_the_suite_field(workspace: Path) -> None:
    path = write_suite(
        workspace / "evals" / "unknown.yaml",
        "name: u\nkind: proxy\ninclude: [tiny]\ntasks:\n  - task: tiny_add\n  - task: hellaswagg\n",
    )
    with pytest.raises(SuiteError, match=r"tasks\.1\.task: 'hellaswagg'.*did you mean.*hellaswag"):
        Runner(cache_dir=workspace / "cache").evaluate(workspace / "ckpt", load_suite(path))


def test_a_corrupt_checkpoint_fails_with_its_reason(workspace: Path, suite_path: Path) -> None:
    broken = workspace / "broken"
    shutil.copytree(workspace / "ckpt", broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="cannot load"):
        Runner().evaluate(broken, load_suite(suite_path))


def test_pickle_weights_are_refused_unless_allowed(workspace: Path, suite_path: Path) -> None:
    import torch
    from safetensors.torch import load_file

    pickled = workspace / "pickled"
    shutil.copytree(workspace / "ckpt", pickled)
    state = load_file(str(pickled / "model.safetensors"))
    (pickled / "model.safetensors").unlink()
    torch.save(state, pickled / "pytorch_model.bin")
    with pytest.raises(UnsafeCheckpointError, match="TRIPWIRE_ALLOW_PICKLE"):
        Runner().evaluate(pickled, load_suite(suite_path))


def test_no_config_is_not_a_checkpoint(tmp_path: Path, suite_path: Path) -> None:
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"no config\.json"):
        Runner().evaluate(tmp_path, load_suite(suite_path))


def test_the_json_result_round_trips(workspace: Path, suite_path: Path) -> None:
    from tripwire.results import SuiteResult

    result = Runner().evaluate(workspace / "ckpt", load_suite(suite_path))
    assert SuiteResult.model_validate(json.loads(result.model_dump_json())) == result
