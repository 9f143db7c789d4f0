"""The response cache keys answers by content: the same weights anywhere are a hit, new weights
at an old path and a changed task are misses, and the folder stays within its bound."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.helpers import make_checkpoint, write_suite, write_tasks
from tripwire.cli import app
from tripwire.results import SuiteResult
from tripwire.runner import Runner
from tripwire.runner.response_store import ResponseCache
from tripwire.sources.hashing import HashCache
from tripwire.sources.identity import hash_listing
from tripwire.sources.layout import list_dir
from tripwire.suites import load_suite

GENERATE_TASK = """\
task: tiny_echo
dataset_path: json
dataset_kwargs:
  data_files:
    test: ../data/tiny_add.jsonl
output_type: generate_until
test_split: test
doc_to_text: "{{question}}="
doc_to_target: "{{choices[answer]}}"
generation_kwargs:
  until: ["\\n"]
  max_gen_toks: 4
  do_sample: false
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
metadata:
  version: 1.0
"""

SUITE = """\
name: cached
kind: proxy
include: [tiny]
bootstrap_iters: 0
tasks:
  - task: tiny_add
  - task: tiny_echo
    limit: 12
"""


class CountingModel:
    """lm-eval's HFLM, counting how often a model is loaded."""

    loads = 0

    @classmethod
    def make(cls) -> type[Any]:
        from lm_eval.models.huggingface import HFLM

        class Counted(HFLM):  # type: ignore[misc]
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                cls.loads += 1
                super().__init__(*args, **kwargs)

        return Counted


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    write_tasks(tmp_path / "evals" / "tiny", names=("add",))
    (tmp_path / "evals" / "tiny" / "tasks" / "tiny_echo.yaml").write_text(GENERATE_TASK)
    write_suite(tmp_path / "evals" / "suite.yaml", SUITE)
    make_checkpoint(tmp_path / "ckpt", seed=1)
    return tmp_path


def _hash(folder: Path) -> str:
    with HashCache.in_memory() as cache:
        return hash_listing(list_dir(folder), cache)


def _runner(cache: ResponseCache | None) -> Runner:
    CountingModel.loads = 0
    return Runner(progress=False, responses=cache, model_class=CountingModel.make())


def _scores(result: SuiteResult) -> dict[str, tuple[float, list[float]]]:
    return {name: (t.score, t.items.values) for name, t in result.tasks.items()}


def test_the_same_weights_under_a_new_path_are_answered_without_loading_them(
    workspace: Path,
) -> None:
    cache = ResponseCache(workspace / "responses", 1024**3)
    suite = load_suite(workspace / "evals" / "suite.yaml")
    cold = _runner(cache).evaluate(
        workspace / "ckpt", suite, content_hash=_hash(workspace / "ckpt")
    )
    assert CountingModel.loads == 1
    assert cold.versions.cached_answers == 0 and (cold.versions.computed_answers or 0) > 60
    copy = shutil.copytree(workspace / "ckpt", workspace / "elsewhere" / "copy")
    runner = _runner(cache)
    warm = runner.evaluate(copy, suite, content_hash=_hash(copy))
    assert CountingModel.loads == 0  # every answer came from the cache
    assert warm.versions.computed_answers == 0
    assert warm.versions.cached_answers == cold.versions.computed_answers
    assert _scores(warm) == _scores(cold)
    assert warm.tasks["tiny_echo"].n_items == 12
    uncached = _runner(None).evaluate(copy, suite)
    assert _scores(uncached) == _scores(cold)


def test_new_weights_under_an_old_path_are_computed_again(workspace: Path) -> None:
    cache = ResponseCache(workspace / "responses", 1024**3)
    suite = load_suite(workspace / "evals" / "suite.yaml")
    folder = workspace / "ckpt"
    _runner(cache).evaluate(folder, suite, content_hash=_hash(folder))
    shutil.rmtree(folder)
    make_checkpoint(folder, seed=7)  # new weights, same path
    fresh = _runner(cache).evaluate(folder, suite, content_hash=_hash(folder))
    assert CountingModel.loads == 1
    assert fresh.versions.cached_answers == 0
    assert _scores(fresh) == _scores(_runner(None).evaluate(folder, suite))


def test_a_changed_task_configuration_is_a_miss(workspace: Path) -> None:
    cache = ResponseCache(workspace / "responses", 1024**3)
    suite_path = workspace / "evals" / "suite.yaml"
    folder = workspace / "ckpt"
    first = _runner(cache).evaluate(folder, load_suite(suite_path), content_hash=_hash(folder))
    task_file = workspace / "evals" / "tiny" / "tasks" / "add.yaml"
    # the same prompts, a new task version: answers computed for the old task are not reused
    task_file.write_text(task_file.read_text().replace("version: 1.0", "version: 2.0"))
    again = _runner(cache).evaluate(folder, load_suite(suite_path), content_hash=_hash(folder))
    add_answers = first.tasks["tiny_add"].n_items * 4  # four choices an item
    assert again.versions.computed_answers == add_answers
    assert again.versions.cached_answers == (first.versions.computed_answers or 0) - add_answers


def test_the_cache_stays_within_its_bound_and_the_commands_show_and_clear_it(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = workspace / "home"
    monkeypatch.setenv("TRIPWIRE_HOME", str(home))
    suite = load_suite(workspace / "evals" / "suite.yaml")
    small = ResponseCache(home / "cache" / "responses", 1)  # room for the latest only
    second = make_checkpoint(workspace / "second", seed=2)
    for folder in (workspace / "ckpt", second):
        _runner(small).evaluate(folder, suite, content_hash=_hash(folder))
    assert len(small.files()) == 1
    shown = CliRunner().invoke(app, ["cache", "info"])
    assert shown.exit_code == 0, shown.output
    assert "1 checkpoints" in shown.output
    cleared = CliRunner().invoke(app, ["cache", "clear"])
    assert cleared.exit_code == 0 and "1 checkpoints" in cleared.output
    assert small.files() == []


def test_a_checkpoint_that_cannot_load_on_a_miss_fails_as_a_checkpoint(workspace: Path) -> None:
    """The model loads on the cache's first miss, inside lm-eval: its failure is still the
    checkpoint's (failed visibly with the reason), not an lm-eval failure."""
    from tripwire.errors import CheckpointError

    folder = workspace / "ckpt"
    (folder / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}garbage")
    cache = ResponseCache(workspace / "responses", 1024**3)
    suite = load_suite(workspace / "evals" / "suite.yaml")
    with pytest.raises(CheckpointError, match="cannot load"):
        _runner(cache).evaluate(folder, suite, content_hash=_hash(folder))
