"""Decisions are records: written once with everything they stood on, read back by reports and
backtests, never re-decided; a policy change appends records beside the old ones."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from tests.decided import OTHER, RUN, START, N, decide_live, write_policy
from tripwire.audit import verify_chain
from tripwire.cli import app
from tripwire.decisions import read_record
from tripwire.decisions.read import decision_sets
from tripwire.history import run_backtest
from tripwire.policy.engine import BASELINE_RULE_ID
from tripwire.store.db import Database
from tripwire.store.models import Checkpoint, Decision, Job, JobKind


def test_records_carry_what_the_verdict_stood_on(database_url: str, tmp_path: Path) -> None:
    policy = write_policy(tmp_path)
    db = Database(database_url)
    ids = decide_live(db, policy)
    with db.session() as s:
        rows = s.scalars(select(Decision).order_by(Decision.id)).all()
        records = {(d.checkpoint_id, d.rule_id): read_record(d) for d in rows}
        first = [d.rule_id for d in rows if d.checkpoint_id == ids[0]]
        assert first == [BASELINE_RULE_ID, "flop-backstop"]
        assert records[ids[2], "plus-5"].fired and not records[ids[2], "plus-12-hold"].fired
        assert records[ids[3], "plus-5"].baseline.step == 300  # type: ignore[union-attr]
        fired = records[ids[4], "plus-12-hold"]
        assert fired.schema_version == 2 and fired.origin == "live" and fired.fired
        assert fired.verdict.severity == "critical" and fired.verdict.actions.review_hold
        assert fired.policy.hash == policy.content_hash and fired.policy.name == "live"
        assert fired.checkpoint.step == 500 and fired.checkpoint.evaluation_id is not None
        assert fired.baseline is not None and fired.baseline.step == 300
        assert fired.as_of == START + timedelta(days=30)
        assert fired.rule is not None and fired.rule["threshold"] == 12
        detected = records[ids[4], "plus-5"].verdict
        assert detected.mode == "detected" and detected.alpha == pytest.approx(0.05 / 11)
        assert detected.p_value is not None and detected.fired is (detected.p_value <= 0.05 / 11)
        (c,) = detected.comparisons
        assert c.discordant is not None and c.discordance == pytest.approx(sum(c.discordant) / N)
        # the held checkpoint 500 is no baseline: 600 is compared with 300 again
        assert records[ids[5], "plus-5"].baseline.step == 300  # type: ignore[union-attr]
        monthly = records[ids[6], "monthly"].verdict
        assert monthly.fired and monthly.statistic == pytest.approx(65.0)  # days since 300
        assert verify_chain(s).ok
        deep = sorted(s.scalars(select(Job.checkpoint_id).where(Job.kind == JobKind.deep_eval)))
        assert ids[0] in deep and ids[4] in deep
    db.dispose()


def test_a_backtest_of_the_stored_run_replays_the_live_decisions_exactly(
    database_url: str, tmp_path: Path
) -> None:
    policy = write_policy(tmp_path)
    db = Database(database_url)
    ids = decide_live(db, policy)
    with db.session() as s:
        result = run_backtest(s, policy, "r")
        live = {(d.checkpoint_id, d.rule_id): read_record(d) for d in s.scalars(select(Decision))}
        by_hash = {s.get(Checkpoint, i).content_hash: i for i in ids}  # type: ignore[union-attr]
        assert len(result.rows) == len(RUN)
        for row in result.rows:
            checkpoint_id = by_hash[row.checkpoint]
            assert row.replay.fired == row.active_fired
            assert row.replay.deep == row.active_deep
            for verdict in row.replay.verdicts:
                stored = live[checkpoint_id, verdict.rule_id].verdict
                assert (verdict.verdict, verdict.explanation) == (
                    stored.verdict,
                    stored.explanation,
                )
                assert verdict.statistic == pytest.approx(stored.statistic)
                assert verdict.p_value == pytest.approx(stored.p_value)
    db.dispose()


def test_tripwire_report_renders_the_stored_verdicts_from_anywhere_with_any_policy(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    policy = write_policy(tmp_path)
    db = Database(database_url)
    ids = decide_live(db, policy)
    db.dispose()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    write_policy(elsewhere, OTHER, "other.yaml")
    monkeypatch.chdir(elsewhere)
    monkeypatch.setenv("TRIPWIRE_DATABASE_URL", database_url)
    monkeypatch.setenv("TRIPWIRE_POLICY", str(elsewhere / "other.yaml"))
    out = tmp_path / "reports"
    result = CliRunner().invoke(app, ["report", "--out", str(out)])
    assert result.exit_code == 0, result.output
    page = json.loads((out / "r" / f"step-500-{'0' * 12}.json").read_text())
    verdicts = {d["rule_id"]: d["verdict"] for d in page["decisions"]}
    assert verdicts["plus-12-hold"] == "fired" and page["policy"]["name"] == "live"
    assert page["review_hold"] is True
    html = (out / "r" / f"step-500-{'0' * 12}.html").read_text()
    assert "FIRED" in html and "REVIEW HOLD" in html
    run = json.loads((out / "r" / "index.json").read_text())
    fired = [p["step"] for p in run["points"] if p["fired"]]
    assert 500 in fired and 100 not in fired  # the first checkpoint is a baseline, not a fire
    assert run["points"][0]["baseline_evaluation"] is True
    assert [p["name"] for p in run["policies"]] == ["live"]
    assert ids  # the run was decided


def test_a_policy_change_appends_records_and_leaves_the_old_ones(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    policy = write_policy(tmp_path)
    db = Database(database_url)
    ids = decide_live(db, policy)
    with db.session() as s:
        before = {d.id: d.record_hash for d in s.scalars(select(Decision))}
    monkeypatch.setenv("TRIPWIRE_DATABASE_URL", database_url)
    other = write_policy(tmp_path, OTHER, "other.yaml")
    since = (START + timedelta(days=10)).date().isoformat()
    result = CliRunner().invoke(
        app, ["decide", "--policy", str(other.path), "--since", since, "--no-dispatch"]
    )
    assert result.exit_code == 0, result.output
    assert "5 checkpoints decided under stricter" in result.output
    with db.session() as s:
        after = {d.id: d.record_hash for d in s.scalars(select(Decision))}
        assert {k: after[k] for k in before} == before  # nothing rewritten
        sets = decision_sets(s, ids[4])
        assert [(x.policy_name, x.origin) for x in sets] == [
            ("live", "live"),
            ("stricter", "redecide"),
        ]
        assert verify_chain(s).ok
    again = CliRunner().invoke(app, ["decide", "--policy", str(other.path)])
    assert "2 checkpoints decided" in again.output and "5 already had" in again.output
    db.dispose()


def test_a_held_checkpoint_never_becomes_a_baseline(database_url: str, tmp_path: Path) -> None:
    policy = write_policy(tmp_path)
    db = Database(database_url)
    ids = decide_live(db, policy)
    with db.session() as s:
        baselines = {
            d.checkpoint_id: read_record(d).baseline
            for d in s.scalars(select(Decision).where(Decision.rule_id == "plus-5"))
        }
        held = s.get(Checkpoint, ids[4])
        assert held is not None and held.meta["review_hold"] is True
        assert all(b is None or b.step != 500 for b in baselines.values())
    db.dispose()


def test_report_command_has_no_policy_option() -> None:
    """Reports render stored records: there is no policy to render them with."""
    result = CliRunner().invoke(app, ["report", "--help"])
    assert result.exit_code == 0 and "--policy" not in result.output


def test_stored_items_are_read_per_database_not_per_row_id(tmp_path: Path) -> None:
    """Two stores in one process (a worker after a re-configuration, the tests) share row ids:
    the per-process cache of item sets must never hand one store's items to the other."""
    from datetime import UTC, datetime

    from tests.helpers import binary_suite_result
    from tripwire.decisions.inputs import score_of
    from tripwire.store import repo

    started = datetime(2026, 11, 1, tzinfo=UTC)
    for n_items in (60, 200):
        db = Database(f"sqlite:///{tmp_path}/store-{n_items}.db")
        with db.session() as s:
            cp, _ = repo.record_checkpoint(s, content_hash="sha256:a", path="/a", run="r", step=1)
            evaluation = repo.save_evaluation(
                s, cp, binary_suite_result(n_items // 2, n_items, started_at=started), "proxy"
            )
            score = score_of(evaluation.scores[0])
            assert evaluation.scores[0].item_set_id == 1  # the same row id in both stores
            assert score.item_hashes is not None and score.item_values is not None
            assert len(score.item_hashes) == score.item_values.size == n_items
