"""Deciding checkpoints against the store: baselines, looks, deep-evaluation times, the log."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update
from tripwire.jobs.decide import decide_checkpoint

from tests.helpers import binary_suite_result
from tripwire.audit import verify_chain
from tripwire.policy.engine import BASELINE_RULE_ID
from tripwire.policy.schema import load_policy
from tripwire.results import SuiteResult
from tripwire.store import repo
from tripwire.store.db import Database
from tripwire.store.models import Checkpoint, Decision, Job, JobKind

START = datetime(2026, 1, 1, tzinfo=UTC)
N = 200
POLICY = """\
name: live
proxy_suite: proxy.yaml
rules:
  - id: plus-5
    type: delta
    benchmarks: [t]
    threshold: 5
    mode: point
    actions: {deep_suites: [deep.yaml]}
  - id: flop-backstop
    type: compute
    above_flop: 5.0e22
    actions: {notify: [safety-team]}
  - id: monthly
    type: cadence
    every: 30d
    actions: {deep_suites: [deep.yaml]}
  - id: spent
    type: delta
    benchmarks: [t]
    threshold: 1
    mode: detected
    sequential: alpha_spending
"""


def _result(correct: int) -> SuiteResult:
    return binary_suite_result(correct, N, started_at=START, suite_hash="s")


def test_decisions_get_lineage_compute_and_deep_evaluation_times(
    database_url: str, tmp_path: Path
) -> None:
    (tmp_path / "proxy.yaml").write_text(
        "name: p\nkind: proxy\ntasks:\n  - {task: t, limit: 200}\n"
    )
    (tmp_path / "deep.yaml").write_text("name: d\nkind: deep\ntasks:\n  - task: w\n")
    (tmp_path / "policy.yaml").write_text(POLICY)
    policy = load_policy(tmp_path / "policy.yaml")
    db = Database(database_url)
    checkpoints = [(100, 100, 1e22, 0), (200, 104, 6e22, 10), (300, 106, 7e22, 40)]
    ids = []
    for step, correct, flop, day in checkpoints:
        with db.session() as s:
            cp, _ = repo.record_checkpoint(
                s,
                content_hash=f"sha256:{step}",
                path=f"/ck/{step}",
                run="r",
                step=step,
                training_flop=flop,
            )
            repo.save_evaluation(s, cp, _result(correct), "proxy")
            ids.append(cp.id)
        with db.session() as s:
            cp = s.get(Checkpoint, ids[-1])
            assert cp is not None
            assert decide_checkpoint(s, policy, cp, START + timedelta(days=day)) is not None
        if step == 100:  # the baseline's deep evaluation was dispatched at START
            with db.session() as s:
                s.execute(update(Job).where(Job.checkpoint_id == ids[0]).values(created_at=START))
    with db.session() as s:
        rows = s.scalars(select(Decision).order_by(Decision.id)).all()
        by = {(d.checkpoint_id, d.rule_id): d for d in rows}
        # the first checkpoint: the baseline rule, and the rule that needs no baseline
        assert [d.rule_id for d in rows if d.checkpoint_id == ids[0]] == [
            BASELINE_RULE_ID,
            "flop-backstop",
        ]
        assert by[ids[1], "flop-backstop"].verdict == "fired"  # crossed 5e22
        assert by[ids[1], "monthly"].verdict == "not_fired"
        assert by[ids[1], "monthly"].statistic == 10.0
        assert by[ids[1], "spent"].inputs["details"]["sequential"]["look"] == 1
        third = by[ids[2], "monthly"]
        assert third.verdict == "fired" and third.statistic == 40.0
        assert third.inputs["lineage"]["looks_since_baseline"] == 2
        assert third.inputs["lineage"]["baseline_at"].startswith("2026-01-01")
        assert third.inputs["rule"] == {
            "id": "monthly",
            "description": "",
            "severity": "alert",
            "actions": {"deep_suites": ["deep.yaml"], "notify": [], "review_hold": False},
            "type": "cadence",
            "every": "30d",
        }
        assert third.inputs["baseline"]["step"] == 100
        assert by[ids[2], "spent"].inputs["details"]["sequential"]["alpha"] == pytest.approx(
            0.05 / 6
        )
        assert by[ids[2], "plus-5"].inputs["comparisons"][0]["discordant"] == [6, 0]
        deep = s.scalars(select(Job.checkpoint_id).where(Job.kind == JobKind.deep_eval)).all()
        assert sorted(deep) == [ids[0], ids[2]]
        assert verify_chain(s).ok
    db.dispose()
