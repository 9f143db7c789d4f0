"""Inspect tasks as a deep suite: run on the checkpoint through Inspect's Hugging Face provider,
in a process of their own, scores and per-sample outcomes read back, logs kept and reported."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import make_checkpoint
from tripwire.errors import EvaluationError
from tripwire.runner import Runner
from tripwire.suites import load_suite

INSPECT_TASK = """\
from inspect_ai import Task, task
from inspect_ai.dataset import Sample
from inspect_ai.scorer import includes, match
from inspect_ai.solver import generate


@task
def arithmetic():
    samples = [
        Sample(input=f"{a}+{b}=", target=str(a + b), id=f"q{a}-{b}")
        for a in range(10, 14)
        for b in range(20, 23)
    ]
    return Task(dataset=samples, solver=generate(), scorer=match())


@task
def anything():
    # every answer contains the empty target: a task the tiny model always passes
    samples = [Sample(input=f"{a}=", target="", id=f"a{a}") for a in range(5)]
    return Task(dataset=samples, solver=generate(), scorer=includes())
"""

SUITE = """\
name: agentic
kind: deep
include: [inspect_tasks]
inspect:
  max_tokens: 3
  time_limit_s: {limit}
tasks:
  - task: inspect_tasks/tasks.py@arithmetic
    alert_level: 50
  - task: inspect_tasks/tasks.py@anything
"""


def write_inspect_suite(root: Path, limit: float = 600) -> Path:
    (root / "inspect_tasks").mkdir(parents=True, exist_ok=True)
    (root / "inspect_tasks" / "tasks.py").write_text(INSPECT_TASK)
    path = root / "agentic.yaml"
    path.write_text(SUITE.format(limit=limit))
    return path


def test_inspect_tasks_score_the_checkpoint_and_keep_their_logs(tmp_path: Path) -> None:
    checkpoint = make_checkpoint(tmp_path / "ckpt", seed=1)
    suite = load_suite(write_inspect_suite(tmp_path / "evals"))
    result = Runner(logs_dir=tmp_path / "logs").evaluate(checkpoint, suite)
    arithmetic = result.tasks["inspect_tasks/tasks.py@arithmetic"]
    anything = result.tasks["inspect_tasks/tasks.py@anything"]
    assert arithmetic.n_items == 12 and len(set(arithmetic.items.doc_hashes)) == 12
    assert arithmetic.metric == "match/accuracy" and arithmetic.alert_level == 50
    assert arithmetic.score == pytest.approx(sum(arithmetic.items.values) / 12)
    assert anything.score == 1.0 and anything.items.values == [1.0] * 5
    assert result.versions.logs and all(Path(log).is_file() for log in result.versions.logs)
    assert all(
        Path(log).is_relative_to(tmp_path / "logs" / "agentic") for log in result.versions.logs
    )


def test_an_inspect_suite_past_its_time_limit_fails(tmp_path: Path) -> None:
    checkpoint = make_checkpoint(tmp_path / "ckpt", seed=1)
    suite = load_suite(write_inspect_suite(tmp_path / "evals", limit=0.5))
    with pytest.raises(EvaluationError, match="past its time limit"):
        Runner(logs_dir=tmp_path / "logs").evaluate(checkpoint, suite)


@pytest.mark.slow
def test_a_fired_rule_dispatches_inspect_tasks_and_the_report_links_their_logs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.jobs.conftest import fire_deep_suite

    run = fire_deep_suite(tmp_path, write_inspect_suite(tmp_path / "evals"), monkeypatch)
    assert len(run.level_verdicts) == 2
    page, settings = run.page, run.workspace.settings
    (deep_result,) = json.loads(page.read_text())["deep"]
    assert deep_result["suite_name"] == "agentic" and len(deep_result["logs"]) == 2
    assert all(log.startswith(str(settings.home / "logs")) for log in deep_result["logs"])
    html = page.with_suffix(".html").read_text()
    assert "inspect view --log-dir" in html
