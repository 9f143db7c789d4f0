"""Deep evaluations run by a lab's own harness: the command contract, its failures, and a fired
rule that dispatches it through the loop and shows its scores in the checkpoint's report."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import make_checkpoint
from tripwire.errors import EvaluationError, SuiteError
from tripwire.runner import Runner
from tripwire.suites import load_suite

HARNESS = """\
import json, os, sys
checkpoint, result = sys.argv[1], sys.argv[2]
config = json.load(open(os.path.join(checkpoint, "config.json")))
mode = os.environ.get("HARNESS_MODE", "ok")
if mode == "fail":
    print("harness: the sandbox refused to start", flush=True)
    sys.exit(3)
if mode == "hang":
    import subprocess, time
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    open(os.environ["CHILD_PID_FILE"], "w").write(str(child.pid))
    time.sleep(120)
width = config["n_embd"]
values = [1.0 if (i * width) % 3 else 0.0 for i in range(30)]
tasks = {
    "bio_uplift": {
        "score": sum(values) / len(values), "stderr": 0.05, "n_items": 30, "metric": "acc",
        "items": {"ids": [f"q{i}" for i in range(30)], "values": values},
    },
}
if mode != "missing":
    tasks["cyber_ctf"] = {"score": 0.1, "n_items": 10, "metric": "solved"}
if mode == "malformed":
    tasks["cyber_ctf"]["n_items"] = "ten"
json.dump({"tasks": tasks}, open(result, "w"))
print("harness: done", flush=True)
"""

SUITE = """\
name: lab-harness
kind: deep
include: [harness]
command:
  argv: ["{python}", "harness/run.py", "{{checkpoint}}", "{{result}}"]
  timeout_s: {timeout}
tasks:
  - task: bio_uplift
    alert_level: 40
    critical_level: 90
  - task: cyber_ctf
"""


def write_command_suite(root: Path, timeout: float = 120) -> Path:
    (root / "harness").mkdir(parents=True, exist_ok=True)
    (root / "harness" / "run.py").write_text(HARNESS)
    path = root / "lab-harness.yaml"
    path.write_text(SUITE.format(python=sys.executable, timeout=timeout))
    return path


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    return make_checkpoint(tmp_path / "ckpt", seed=1)


def test_the_command_is_run_on_the_checkpoint_and_its_scores_read(
    tmp_path: Path, checkpoint: Path
) -> None:
    suite = load_suite(write_command_suite(tmp_path / "evals"))
    result = Runner().evaluate(checkpoint, suite)
    bio, ctf = result.tasks["bio_uplift"], result.tasks["cyber_ctf"]
    assert bio.n_items == 30 and bio.stderr == 0.05 and bio.metric == "acc"
    assert bio.score == pytest.approx(sum(bio.items.values) / 30)
    assert len(set(bio.items.doc_hashes)) == 30 and bio.alert_level == 40
    assert ctf.score == 0.1 and ctf.stderr is None and ctf.items.values == []
    assert result.suite_hash == suite.content_hash


@pytest.mark.parametrize(
    ("mode", "says"),
    [
        ("fail", "exited with status 3; its output ended with: harness: the sandbox refused"),
        ("missing", "reported no score for cyber_ctf"),
        ("malformed", "tasks.cyber_ctf.n_items"),
    ],
)
def test_a_failing_command_fails_the_evaluation_with_its_reason(
    tmp_path: Path, checkpoint: Path, monkeypatch: pytest.MonkeyPatch, mode: str, says: str
) -> None:
    monkeypatch.setenv("HARNESS_MODE", mode)
    with pytest.raises(EvaluationError, match=says.replace("(", r"\(")):
        Runner().evaluate(checkpoint, load_suite(write_command_suite(tmp_path / "evals")))


def test_a_command_past_its_time_limit_is_killed_with_its_children(
    tmp_path: Path, checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HARNESS_MODE", "hang")
    pid_file = tmp_path / "child.pid"
    monkeypatch.setenv("CHILD_PID_FILE", str(pid_file))
    suite = load_suite(write_command_suite(tmp_path / "evals", timeout=3))
    with pytest.raises(EvaluationError, match="past its time limit of 3 s"):
        Runner().evaluate(checkpoint, suite)
    child = int(pid_file.read_text())
    for _ in range(50):
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"the command's child {child} outlived the time limit")


def test_command_suites_are_deep_and_name_scores_not_lm_eval_settings(tmp_path: Path) -> None:
    path = write_command_suite(tmp_path / "evals")
    text = path.read_text()
    path.write_text(
        text.replace("kind: deep", "kind: proxy").replace(
            "    alert_level: 40\n    critical_level: 90\n", ""
        )
    )
    with pytest.raises(SuiteError, match="command: runs deep evaluations"):
        load_suite(path)
    path.write_text(
        text.replace("  - task: cyber_ctf\n", "  - task: cyber_ctf\n    num_fewshot: 5\n")
    )
    with pytest.raises(SuiteError, match="num_fewshot, limit, subset and profiles are lm-eval's"):
        load_suite(path)


@pytest.mark.slow
def test_a_fired_rule_dispatches_the_command_and_the_report_shows_its_scores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.jobs.conftest import fire_deep_suite
    from tripwire.store.models import JobKind

    run = fire_deep_suite(tmp_path, write_command_suite(tmp_path / "evals"), monkeypatch)
    assert run.job_kinds.count(JobKind.deep_eval) == 1
    assert set(run.level_verdicts) == {"bio_uplift", "cyber_ctf"}
    assert run.level_verdicts["bio_uplift"] is not None
    text = json.loads(run.page.read_text())
    assert "bio_uplift" in json.dumps(text) and "lab-harness" in json.dumps(text)
