"""The demo's synthetic skills, its tiny model's training, and its lm-eval tasks."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from tripwire.offline import enforce_offline

enforce_offline()

from tripwire.demo import skills  # noqa: E402
from tripwire.demo.train import (  # noqa: E402
    READY_MARKER,
    SIDECAR_NAME,
    build_tokenizer,
    checkpoint_dir,
    train_demo_model,
)

TASKS_DIR = Path(__file__).resolve().parents[2] / "evals" / "demo" / "tasks"


# ----------------------------------------------------------------------------- skills and data


def test_eval_data_is_byte_identical_for_a_seed_and_not_rewritten(tmp_path: Path) -> None:
    first = skills.write_eval_data(tmp_path / "a", n_items=50, seed=3)
    second = skills.write_eval_data(tmp_path / "b", n_items=50, seed=3)
    other_seed = skills.write_eval_data(tmp_path / "c", n_items=50, seed=4)

    assert sorted(first) == sorted(skills.SKILLS)
    for name, path in first.items():
        assert path == tmp_path / "a" / f"{name}.jsonl"
        assert path.read_bytes() == second[name].read_bytes()
        assert path.read_bytes() != other_seed[name].read_bytes()
        assert len(path.read_text().splitlines()) == 50

    # Same content again: the file is left alone (same inode and modification time).
    before = {name: os.stat(path) for name, path in first.items()}
    skills.write_eval_data(tmp_path / "a", n_items=50, seed=3)
    for name, path in first.items():
        after = os.stat(path)
        assert (after.st_ino, after.st_mtime_ns) == (before[name].st_ino, before[name].st_mtime_ns)
    # Different content: replaced, with no temporary file left behind.
    skills.write_eval_data(tmp_path / "a", n_items=50, seed=4)
    assert first["addition"].read_bytes() == other_seed["addition"].read_bytes()
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == sorted(
        f"{name}.jsonl" for name in skills.SKILLS
    )


def _solve(skill: str, question: str) -> int:
    """The right answer to a question, computed independently of the skills module."""
    body = question.removesuffix("=")
    if skill == "successor":
        return int(body.removeprefix("succ ")) + 1
    if skill == "comparison":
        return max(int(x) for x in body.removeprefix("max ").split())
    if skill == "addition":
        a, b = body.split("+")
        return int(a) + int(b)
    a, b = body.split("-")
    return int(a) - int(b)


@pytest.mark.parametrize("skill", sorted(skills.SKILLS))
def test_eval_items_are_well_formed_and_held_out(skill: str) -> None:
    items = skills.eval_items(skill, n_items=200, seed=0)
    train = skills.training_examples(skill)
    train_questions = {q for q, _ in train}

    assert len({item["question"] for item in items}) == 200
    for item in items:
        choices = item["choices"]
        assert len(choices) == 4 and len(set(choices)) == 4
        assert 0 <= item["answer"] < 4
        assert item["question"] not in train_questions
        correct = _solve(skill, item["question"])
        assert choices[item["answer"]] == str(correct)
        distractors = [int(c) for i, c in enumerate(choices) if i != item["answer"]]
        # Distractors are plausible: near the answer (comparison: the other operand, or near it).
        if skill == "comparison":
            operands = [int(x) for x in item["question"][4:-1].split()]
            assert min(operands) in distractors
            assert all(min(abs(d - x) for x in operands) <= 10 for d in distractors)
        else:
            limit = 100 if skill == "successor" else 11
            assert all(0 < abs(d - correct) <= limit for d in distractors)
    # The answer's position is spread over the four slots (chance is 25%).
    positions = [item["answer"] for item in items]
    assert all(25 <= positions.count(i) <= 75 for i in range(4))
    # Every training example is right too.
    assert all(a == str(_solve(skill, q)) for q, a in train)


def test_split_keeps_commutative_operands_together() -> None:
    pairs = [(a, b) for a in range(10, 100) for b in range(10, 100)]
    for name in ("addition", "comparison"):
        for a, b in pairs:
            assert skills.is_held_out(name, (a, b)) == skills.is_held_out(name, (b, a))
    held_out = sum(skills.is_held_out("addition", pair) for pair in pairs)
    assert 0.15 < held_out / len(pairs) < 0.25


def test_training_corpus_is_deterministic_and_excludes_eval_items() -> None:
    corpus = skills.training_corpus(n_lines=2000, seed=1)
    assert corpus == skills.training_corpus(n_lines=2000, seed=1)
    assert corpus != skills.training_corpus(n_lines=2000, seed=2)
    eval_lines = {
        item["question"] + item["choices"][item["answer"]]
        for name in skills.SKILLS
        for item in skills.eval_items(name, seed=0)
    }
    assert not eval_lines & set(corpus)
    assert all(set(line) <= set(skills.ALPHABET) for line in corpus)


def test_tokenizer_is_one_token_per_character() -> None:
    tokenizer = build_tokenizer()
    ids = tokenizer("max 31 17=31")["input_ids"]
    assert len(ids) == len("max 31 17=31")
    assert tokenizer.decode(ids) == "max 31 17=31"
    assert tokenizer.pad_token == "<pad>" and tokenizer.eos_token == "<eos>"
    assert tokenizer.pad_token_id != tokenizer.eos_token_id


# ----------------------------------------------------------------------------- training


@pytest.fixture(scope="module")
def short_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path], list[Any]]:
    out_dir = tmp_path_factory.mktemp("train")
    seen: list[Any] = []

    def on_checkpoint(path: Path, step: int) -> None:
        # The checkpoint is complete when the callback runs.
        seen.append((path, step, (path / READY_MARKER).exists()))

    paths = train_demo_model(
        out_dir, run="tiny", steps=6, save_every=3, batch_size=32, on_checkpoint=on_checkpoint
    )
    return out_dir, paths, seen


def test_short_run_writes_complete_checkpoints(
    short_run: tuple[Path, list[Path], list[Any]],
) -> None:
    out_dir, paths, seen = short_run
    assert paths == [checkpoint_dir(out_dir, "tiny", step) for step in (0, 3, 6)]
    assert seen == [(path, step, True) for path, step in zip(paths, (0, 3, 6), strict=True)]
    assert sorted(p.name for p in (out_dir / "tiny").iterdir()) == ["step-0", "step-3", "step-6"]

    tokens = []
    for path, step in zip(paths, (0, 3, 6), strict=True):
        names = {p.name for p in path.iterdir()}
        assert {"config.json", "model.safetensors", "tokenizer.json", SIDECAR_NAME} <= names
        assert READY_MARKER in names and (path / READY_MARKER).stat().st_size == 0
        assert not any(n.endswith((".bin", ".pt", ".pth", ".pkl", ".tmp")) for n in names)
        sidecar = json.loads((path / SIDECAR_NAME).read_text())
        assert sidecar["run"] == "tiny" and sidecar["step"] == step
        assert sidecar["stage"] == "pretrain"
        tokens.append(sidecar["tokens_seen"])
        assert sidecar["training_flop"] > 0 or step == 0
    assert tokens[0] == 0 and 0 < tokens[1] < tokens[2]


def test_checkpoint_loads_with_auto_classes(short_run: tuple[Path, list[Path], list[Any]]) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = short_run[1][-1]
    model = AutoModelForCausalLM.from_pretrained(path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    assert model.config.model_type == "gpt2"
    assert model.config.n_layer == 2 and model.config.n_embd == 64
    assert model.config.pad_token_id == tokenizer.pad_token_id
    assert model.config.eos_token_id == tokenizer.eos_token_id
    assert model.config.bos_token_id == tokenizer.bos_token_id
    sidecar = json.loads((path / SIDECAR_NAME).read_text())
    assert sidecar["training_flop"] == 6.0 * model.num_parameters() * sidecar["tokens_seen"]
    assert tokenizer.decode(tokenizer("12+34=46")["input_ids"]) == "12+34=46"


def test_training_is_deterministic(tmp_path: Path) -> None:
    first = train_demo_model(tmp_path, run="a", steps=3, save_every=3, batch_size=32, seed=5)
    second = train_demo_model(tmp_path, run="b", steps=3, save_every=3, batch_size=32, seed=5)
    other = train_demo_model(tmp_path, run="c", steps=3, save_every=3, batch_size=32, seed=6)
    weights = [(run[-1] / "model.safetensors").read_bytes() for run in (first, second, other)]
    assert weights[0] == weights[1] != weights[2]


def test_refuses_to_overwrite_a_run_unless_asked(tmp_path: Path) -> None:
    train_demo_model(tmp_path, run="r", steps=2, save_every=2, batch_size=8)
    (tmp_path / "r" / ".tmp-step-99").mkdir()  # debris of an interrupted run
    with pytest.raises(FileExistsError):
        train_demo_model(tmp_path, run="r", steps=1, save_every=1, batch_size=8)
    train_demo_model(tmp_path, run="r", steps=1, save_every=1, batch_size=8, overwrite=True)
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == ["step-0", "step-1"]


# ----------------------------------------------------------------------------- lm-eval tasks


def _task_config(yaml_path: Path) -> dict[str, Any]:
    """A demo task's full config with its data_files made absolute (relative to the YAML).

    lm-eval 0.4.13 treats a dict passed to ``TaskManager.load``/``simple_evaluate`` as a complete
    inline config: it is NOT merged with the registered YAML of the same name. So the whole YAML
    is loaded and passed, with only ``data_files`` rewritten.
    """
    config: dict[str, Any] = yaml.safe_load(yaml_path.read_text())
    files = config["dataset_kwargs"]["data_files"]
    config["dataset_kwargs"]["data_files"] = {
        split: str((yaml_path.parent / rel).resolve()) for split, rel in files.items()
    }
    return config


def test_task_yaml_files_match_the_skills() -> None:
    names = sorted(p.stem for p in TASKS_DIR.glob("*.yaml"))
    assert names == sorted(f"demo_{name}" for name in skills.SKILLS)
    for name in skills.SKILLS:
        config = yaml.safe_load((TASKS_DIR / f"demo_{name}.yaml").read_text())
        assert config["task"] == f"demo_{name}"
        assert config["output_type"] == "multiple_choice"
        assert config["dataset_path"] == "json"
        assert config["dataset_kwargs"] == {"data_files": {"test": f"../data/{name}.jsonl"}}
        assert config["test_split"] == "test"
        assert config["target_delimiter"] == ""
        assert [m["metric"] for m in config["metric_list"]] == ["acc"]


def test_partial_dict_override_is_not_merged_by_lm_eval(tmp_path: Path) -> None:
    """Documents lm-eval 0.4.13: ``{"task": name, ...}`` is an inline config, not an override."""
    from lm_eval.tasks import TaskManager

    data = skills.write_eval_data(tmp_path, n_items=8, skills=["addition"])
    manager = TaskManager(include_path=[str(TASKS_DIR)], include_defaults=False)
    spec = {
        "task": "demo_addition",
        "dataset_kwargs": {"data_files": {"test": str(data["addition"])}},
    }
    with pytest.raises(TypeError):  # no dataset_path: the YAML was not merged in
        manager.load([spec])
    # Wrapping the override in a group does merge it with the registered task.
    loaded = manager.load([{"group": "demo_tmp", "task": [spec]}])
    task = loaded["tasks"]["demo_addition"]
    assert task.config.output_type == "multiple_choice"
    assert len(list(task.test_docs())) == 8


def test_demo_tasks_run_through_lm_eval(
    tmp_path: Path, short_run: tuple[Path, list[Path], list[Any]]
) -> None:
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    data_dir = tmp_path / "evals" / "demo" / "data"
    skills.write_eval_data(data_dir, n_items=24)
    tasks_dir = tmp_path / "evals" / "demo" / "tasks"
    tasks_dir.mkdir(parents=True)
    for yaml_file in TASKS_DIR.glob("*.yaml"):
        (tasks_dir / yaml_file.name).write_bytes(yaml_file.read_bytes())

    checkpoint = short_run[1][-1]
    results = lm_eval.simple_evaluate(
        model=HFLM(pretrained=str(checkpoint), device="cpu", batch_size=32),
        tasks=[_task_config(p) for p in sorted(tasks_dir.glob("*.yaml"))],
        task_manager=TaskManager(include_path=[str(tasks_dir)], include_defaults=False),
        log_samples=True,
    )
    assert results is not None
    for name in skills.SKILLS:
        task = f"demo_{name}"
        acc = results["results"][task]["acc,none"]
        assert 0.0 <= acc <= 1.0
        samples = results["samples"][task]
        assert len(samples) == 24
        # Context and continuation meet with no space: "12+34=" + "46".
        context, continuation = samples[0]["arguments"][0]
        assert context.endswith("=") and continuation.isdigit()
