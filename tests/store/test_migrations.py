"""Alembic migrations: the models and the migrated schema agree, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from pathlib import Path

from sqlalchemy import inspect, text

from tripwire.store.db import Database, make_engine
from tripwire.store.migrate import (
    current_revision,
    downgrade,
    head_revision,
    pending_changes,
    upgrade,
)
from tripwire.store.models import Base

INITIAL_TABLES = {
    "item_sets",
    "log_lock",
    "runs",
    "source_failures",
    "checkpoints",
    "checkpoint_locations",
    "decisions",
    "evaluations",
    "jobs",
    "task_scores",
}


def test_an_empty_database_is_migrated_to_head_and_matches_the_models(database_url: str) -> None:
    engine = make_engine(database_url)
    assert current_revision(engine) is None
    assert upgrade(engine) is None
    assert current_revision(engine) == head_revision()
    assert pending_changes(engine) == []
    assert upgrade(engine) == head_revision()  # a second run changes nothing
    engine.dispose()


def test_downgrade_to_base_and_back(database_url: str) -> None:
    engine = make_engine(database_url)
    upgrade(engine)
    downgrade(engine, "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    upgrade(engine)
    assert pending_changes(engine) == []
    engine.dispose()


def test_a_database_from_before_migrations_is_stamped_then_kept(database_url: str) -> None:
    engine = make_engine(database_url)
    initial = [t for t in Base.metadata.sorted_tables if t.name in INITIAL_TABLES]
    Base.metadata.create_all(engine, tables=initial)  # how databases were made before Alembic
    with engine.begin() as conn:  # an index the initial schema did not have
        conn.execute(text("DROP INDEX ix_jobs_checkpoint"))
    assert current_revision(engine) is None
    upgrade(engine)
    assert current_revision(engine) == head_revision()
    assert pending_changes(engine) == []
    engine.dispose()


def test_many_processes_opening_a_new_database_at_once_migrate_it_once(
    database_url: str,
) -> None:
    errors: list[BaseException] = []

    def open_db() -> None:
        try:
            Database(database_url).dispose()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_db) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    engine = make_engine(database_url)
    assert current_revision(engine) == head_revision()
    engine.dispose()


def test_the_cli_upgrades_and_reports(tmp_path: Path, monkeypatch: object) -> None:
    from typer.testing import CliRunner

    from tripwire.cli import app

    url = f"sqlite:///{tmp_path / 'cli.db'}"
    env = {"TRIPWIRE_DATABASE_URL": url}
    result = CliRunner().invoke(app, ["db", "upgrade"], env=env)
    assert result.exit_code == 0, result.output
    assert f"revision {head_revision()}" in result.output
    result = CliRunner().invoke(app, ["db", "current"], env=env)
    assert f"current {head_revision()}" in result.output


def test_the_ledger_is_backfilled_with_the_decisions_and_evaluations_already_stored(
    database_url: str,
) -> None:
    from datetime import UTC, datetime

    from sqlalchemy.orm import Session

    from tripwire.audit import verify_chain
    from tripwire.store.ledger import GENESIS_HASH, decision_fields
    from tripwire.store.models import Checkpoint, Decision, Evaluation, ItemSet, Run, TaskScore
    from tripwire.store.repo import record_hash_of

    engine = make_engine(database_url)
    upgrade(engine, "0001")
    now = datetime(2026, 11, 1, tzinfo=UTC)
    with Session(engine) as s, s.begin():
        run = Run(name="r")
        cp = Checkpoint(content_hash="sha256:aa", run=run, step=1, path="/a")
        items = ItemSet(digest="d", n_items=2, hashes=b"x")
        evaluation = Evaluation(
            kind="proxy",
            suite_name="p",
            suite_hash="s",
            started_at=now,
            duration_s=1.0,
        )
        s.add_all([run, cp, items])
        s.flush()
        evaluation.checkpoint_id = cp.id
        evaluation.scores.append(
            TaskScore(
                task="t",
                metric="acc",
                filter="none",
                score=0.5,
                n_items=2,
                num_fewshot=0,
                item_set=items,
                outcomes=b"\x00\x00\x80?\x00\x00\x00\x00",
            )
        )
        s.add(evaluation)
        decision = Decision(
            checkpoint_id=cp.id,
            policy_name="p",
            policy_hash="h",
            rule_id="r",
            rule_type="delta",
            severity="alert",
            verdict="fired",
            explanation="x",
            inputs={"schema_version": 1},
            actions={},
            decided_at=now,
            prev_hash=GENESIS_HASH,
        )
        decision.record_hash = record_hash_of(GENESIS_HASH, decision_fields(decision))
        s.add(decision)
    upgrade(engine)
    with Session(engine) as s:
        report = verify_chain(s)
        assert report.ok, report.broken
        assert report.entries == 2 and report.checked == 1
    engine.dispose()
