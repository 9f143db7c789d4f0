"""``tripwire backtest``: stored proxy results replayed through a policy, no model loaded."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.helpers import binary_suite_result
from tripwire.cli import app
from tripwire.errors import TripwireError
from tripwire.history import run_backtest
from tripwire.policy.engine import BASELINE_RULE_ID
from tripwire.policy.schema import load_policy
from tripwire.results import SuiteResult
from tripwire.store import repo
from tripwire.store.db import Database
from tripwire.store.models import Decision, JobKind

START = datetime(2026, 1, 1, tzinfo=UTC)
WIDE = {"COLUMNS": "200"}
N = 200
PROXY = "name: p\nkind: proxy\ntasks:\n  - {task: t, limit: 200}\n"
DEEP = "name: d\nkind: deep\ntasks:\n  - task: w\n"
POLICY = """\
name: candidate
proxy_suite: proxy.yaml
rules:
  - id: plus-5
    type: delta
    benchmarks: [t]
    threshold: 5
    mode: point
    actions:
      deep_suites: [deep.yaml]
"""


def _result(correct: int) -> SuiteResult:
    return binary_suite_result(correct, N, started_at=START, suite_hash="stored-suite")


def _store(url: str) -> None:
    """A run of four checkpoints at 50, 53, 57 and 63%; the active policy fired at the first
    (its baseline) and at the third (rule old-rule), with deep evaluations there."""
    db = Database(url)
    accuracy = [100, 106, 114, 126]  # of 200 items
    flops = [1e22, 2e22, 4.5e22, 9e22]
    with db.session() as s:
        repo.lock_decision_log(s)
        for i, (correct, flop) in enumerate(zip(accuracy, flops, strict=True)):
            cp, _ = repo.record_checkpoint(
                s,
                content_hash=f"sha256:{i:02d}",
                path=f"/ck/{i}",
                run="run-a",
                step=(i + 1) * 100,
                training_flop=flop,
            )
            evaluation = repo.save_evaluation(s, cp, _result(correct), "proxy")
            evaluation.created_at = START + timedelta(days=i)
            if i in (0, 2):
                rule = BASELINE_RULE_ID if i == 0 else "old-rule"
                repo.append_decision(
                    s,
                    Decision(
                        checkpoint_id=cp.id,
                        policy_name="active",
                        policy_hash="h",
                        rule_id=rule,
                        rule_type="delta",
                        severity="alert",
                        verdict="fired",
                        explanation="x",
                        inputs={},
                        actions={},
                        decided_at=START,
                    ),
                )
                repo.ensure_job(s, key=f"deep:{i}", kind=JobKind.deep_eval, checkpoint_id=cp.id)
    db.dispose()


def _policy(tmp_path: Path) -> Path:
    (tmp_path / "proxy.yaml").write_text(PROXY)
    (tmp_path / "deep.yaml").write_text(DEEP)
    path = tmp_path / "candidate.yaml"
    path.write_text(POLICY)
    return path


def test_a_backtest_replays_stored_results_beside_the_active_policy_and_compute(
    database_url: str, tmp_path: Path
) -> None:
    _store(database_url)
    db = Database(database_url)
    with db.session() as s:
        result = run_backtest(s, load_policy(_policy(tmp_path)), "run-a", compute_factor=4)
    db.dispose()
    rows = result.rows
    assert [r.step for r in rows] == [100, 200, 300, 400]
    # +3 over 50: quiet; +7 over 50: fires (new baseline 57); +6 over 57: fires
    assert [r.replay.fired for r in rows] == [[BASELINE_RULE_ID], [], ["plus-5"], ["plus-5"]]
    assert [r.replay.deep for r in rows] == [True, False, True, True]
    assert rows[2].replay.verdicts[0].comparisons[0].paired_items == N
    assert [r.active_fired for r in rows] == [[BASELINE_RULE_ID], [], ["old-rule"], []]
    assert [r.active_deep for r in rows] == [True, False, True, False]
    assert [r.replay.compute_fired for r in rows] == [True, False, True, False]  # 4.5x at step 300
    assert (result.summary.deep, result.active_deep, result.summary.compute_deep) == (3, 2, 2)


def test_the_backtest_command_prints_the_comparison(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path}/history.db"
    _store(url)
    monkeypatch.setenv("TRIPWIRE_DATABASE_URL", url)
    runner = CliRunner()
    result = runner.invoke(
        app, ["backtest", "--policy", str(_policy(tmp_path)), "--run", "run-a"], env=WIDE
    )
    assert result.exit_code == 0, result.output
    assert "plus-5 (deep)" in result.output and "old-rule (deep)" in result.output
    assert "3 under candidate (replayed), 2 by the active policy, 2 every 4x compute" in (
        " ".join(result.output.split())
    )
    unknown = runner.invoke(app, ["backtest", "--policy", str(_policy(tmp_path)), "--run", "b"])
    assert unknown.exit_code == 2 and "no run named 'b'" in unknown.output


def test_an_unknown_run_is_an_error(database_url: str, tmp_path: Path) -> None:
    _store(database_url)
    db = Database(database_url)
    with db.session() as s, pytest.raises(TripwireError, match="runs: run-a"):
        run_backtest(s, load_policy(_policy(tmp_path)), "nope")
    db.dispose()
