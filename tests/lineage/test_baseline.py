"""The baseline across runs: the nearest deep-evaluated ancestor, and compute summed along the
lineage (each run once)."""

from __future__ import annotations

import json
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update
from typer.testing import CliRunner

from tests.decided import START, result, write_policy
from tripwire.cli import app
from tripwire.decisions import decide_checkpoint
from tripwire.decisions.inputs import lineage_baseline, run_state
from tripwire.lineage.graph import compute_of
from tripwire.policy.engine import BASELINE_RULE_ID
from tripwire.store import repo
from tripwire.store.db import Database
from tripwire.store.models import Checkpoint, CheckpointState, Decision, Evaluation, JobKind


def land(
    db: Database,
    run: str,
    step: int,
    *,
    accuracy: float = 0.40,
    flop: float | None = None,
    estimated: float | None = None,
    parents: list[str] | None = None,
    day: int = 0,
) -> Checkpoint:
    digest = f"sha256:{zlib.crc32(run.encode()) % 10**6:06d}{step:058d}"
    with db.session() as s:
        cp, _ = repo.record_checkpoint(
            s,
            content_hash=digest,
            path=f"/ck/{run}/{step}",
            run=run,
            step=step,
            stage="pretrain" if not parents else "sft",
            parents=parents,
            training_flop=flop,
            estimated_flop=estimated,
        )
        evaluation = repo.save_evaluation(s, cp, result(accuracy, step), "proxy")
        s.execute(
            update(Evaluation)
            .where(Evaluation.id == evaluation.id)
            .values(created_at=START + timedelta(days=day))
        )
        s.expunge(cp)
        return cp


def deep_evaluated(db: Database, cp: Checkpoint) -> None:
    """Decided with a deep evaluation dispatched: what makes a checkpoint a baseline."""
    with db.session() as s:
        repo.set_checkpoint_state(s, cp.id, CheckpointState.decided)
        repo.ensure_job(
            s, key=f"deep:{cp.content_hash}", kind=JobKind.deep_eval, checkpoint_id=cp.id
        )


def decided(db: Database, cp: Checkpoint) -> None:
    with db.session() as s:
        repo.set_checkpoint_state(s, cp.id, CheckpointState.decided)


def test_an_sft_child_of_a_pretraining_checkpoint_is_compared_with_its_nearest_deep_ancestor(
    database_url: str, tmp_path: Path
) -> None:
    db = Database(database_url)
    policy = write_policy(tmp_path)
    base_100 = land(db, "base", 100, flop=1e22, estimated=1.2e22)
    base_200 = land(db, "base", 200, flop=2e22, estimated=2.4e22, day=5)
    deep_evaluated(db, base_100)  # base/200 was decided without a deep evaluation
    decided(db, base_200)
    child = land(db, "chat", 10, flop=1e20, estimated=2e20, parents=[base_200.content_hash], day=6)
    with db.session() as s:
        cp = s.get(Checkpoint, child.id)
        assert cp is not None
        found = lineage_baseline(s, cp, policy.proxy_suite.content_hash)
        assert found is not None
        assert (found.checkpoint.id, found.hops) == (base_100.id, 2)  # via base/200
        compute = compute_of(s, cp)
        assert compute.cumulative.declared == 2e22 + 1e20  # the base counted once, at its most
        assert compute.cumulative.estimated == 2.4e22 + 2e20
        assert compute.own.declared == 1e20
        outcome = decide_checkpoint(s, policy, cp, datetime.now(UTC))
        assert outcome is not None
    with db.session() as s:
        rows = list(s.scalars(select(Decision).where(Decision.checkpoint_id == child.id)))
        assert rows and all(d.baseline_checkpoint_id == base_100.id for d in rows)
        assert BASELINE_RULE_ID not in {d.rule_id for d in rows}
        assert rows[0].inputs["baseline"]["checkpoint"] == base_100.content_hash


def test_a_merge_of_two_fine_tunes_takes_the_stronger_parent_and_counts_the_base_once(
    database_url: str, tmp_path: Path
) -> None:
    db = Database(database_url)
    policy = write_policy(tmp_path)
    base = land(db, "base", 100, flop=1e22, estimated=1e22)
    deep_evaluated(db, base)
    chat = land(db, "chat", 10, flop=1e21, estimated=1e21, parents=[base.content_hash])
    code = land(db, "code", 10, flop=1e20, estimated=1e20, parents=["/ck/base/100"])  # by path
    deep_evaluated(db, chat)
    deep_evaluated(db, code)
    merge = land(
        db, "merge", 0, flop=0.0, estimated=None, parents=[code.content_hash, chat.content_hash]
    )
    with db.session() as s:
        cp = s.get(Checkpoint, merge.id)
        assert cp is not None
        found = lineage_baseline(s, cp, policy.proxy_suite.content_hash)
        assert found is not None
        assert (found.checkpoint.id, found.hops) == (chat.id, 1)  # more compute than code
        compute = compute_of(s, cp)
        assert compute.cumulative.declared == 1e22 + 1e21 + 1e20
        assert compute.cumulative.estimated is None  # the merge's own was not estimated
        assert compute.cumulative.effective == 1e22 + 1e21 + 1e20
        assert sorted(compute.runs) == ["base", "chat", "code"]
        state = run_state(s, cp, policy.proxy_suite.content_hash)
        assert state is not None and state.baseline == chat.content_hash


def test_a_run_without_parents_keeps_its_own_baseline_rule(
    database_url: str, tmp_path: Path
) -> None:
    db = Database(database_url)
    policy = write_policy(tmp_path)
    first = land(db, "solo", 100, flop=1e22)
    with db.session() as s:
        cp = s.get(Checkpoint, first.id)
        assert cp is not None
        assert lineage_baseline(s, cp, policy.proxy_suite.content_hash) is None
        outcome = decide_checkpoint(s, policy, cp, datetime.now(UTC))
        assert outcome is not None
        assert BASELINE_RULE_ID in {d.rule_id for d in outcome.decisions}


def test_the_lineage_command_prints_the_chain_and_why_the_baseline(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = Database(database_url)
    base = land(db, "base", 100, flop=1e22)
    deep_evaluated(db, base)
    child = land(db, "chat", 10, flop=1e20, parents=[base.content_hash])
    monkeypatch.setenv("TRIPWIRE_DATABASE_URL", database_url)
    out = CliRunner().invoke(app, ["lineage", child.content_hash])
    assert out.exit_code == 0, out.output
    assert "sft" in out.output and "pretrain" in out.output
    assert "<- baseline" in out.output
    assert "nearest deep-evaluated ancestor across runs (1 hop(s) away, run 'base')" in out.output
    shown = CliRunner().invoke(app, ["lineage", child.content_hash, "--json"])
    chain = json.loads(shown.output)
    assert chain["baseline"] == base.content_hash
    assert chain["links"][0]["cumulative_declared_flop"] == 1e22 + 1e20


def test_the_run_page_compute_axis_is_the_lineage_compute_declared_and_estimated_beside(
    database_url: str,
) -> None:
    from tripwire.reports.trajectory import run_report

    db = Database(database_url)
    base = land(db, "base", 100, flop=1e22, estimated=1.5e22)
    child = land(db, "chat", 10, flop=None, estimated=2e20, parents=[base.content_hash])
    with db.session() as s:
        cp = s.get(Checkpoint, child.id)
        assert cp is not None
        (point,) = run_report(s, cp.run_id).points
        assert point.training_flop == 1e22 + 2e20  # the base declared, the child estimated
        assert point.declared_flop is None  # the child declared nothing
        assert point.estimated_flop == 1.5e22 + 2e20


def test_a_backtest_replays_a_fine_tune_against_the_same_ancestor_as_the_live_decision(
    database_url: str, tmp_path: Path
) -> None:
    from tests.decided import decide_live
    from tripwire.history import run_backtest

    db = Database(database_url)
    policy = write_policy(tmp_path)
    ids = decide_live(db, policy)  # run "r": 100 is its first baseline, 300 the next
    with db.session() as s:
        step_400 = s.get(Checkpoint, ids[3])
        assert step_400 is not None
        parent = step_400.content_hash
    children = [
        land(db, "chat", step, accuracy=acc, flop=1e20 * step, parents=[parent], day=80 + step)
        for step, acc in ((10, 0.55), (20, 0.56))
    ]
    live_baselines = []
    for child in children:
        with db.session() as s:
            cp = s.get(Checkpoint, child.id)
            assert cp is not None
            assert decide_checkpoint(s, policy, cp, datetime.now(UTC)) is not None
        with db.session() as s:
            rows = list(s.scalars(select(Decision).where(Decision.checkpoint_id == child.id)))
            live_baselines.append({d.baseline_checkpoint_id for d in rows})
            live_fired = sorted(d.rule_id for d in rows if d.verdict == "fired")
    with db.session() as s:
        result = run_backtest(s, policy)
        replayed = {row.checkpoint: row for row in result.rows}
        bases = []
        for child, live in zip(children, live_baselines, strict=True):
            row = replayed[child.content_hash]
            assert row.replay.baseline is not None
            (base_id,) = live
            base = s.get(Checkpoint, base_id)
            assert base is not None
            assert row.replay.baseline.checkpoint == base.content_hash
            bases.append((base.run.name, base.step))
        assert sorted(replayed[children[-1].content_hash].replay.fired) == live_fired
    assert bases[0] == ("r", 300)  # across runs: 400 was not deep-evaluated, 300 was
