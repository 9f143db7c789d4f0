"""Alembic migrations: the models and the migrated schema agree, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

from sqlalchemy import inspect, text

from tripwire.store.db import Database, make_engine
from tripwire.store.migrate import (
    current_revision,
    downgrade,
    head_revision,
    pending_changes,
    upgrade,
)


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
    upgrade(engine, "0001")  # the schema databases had before Alembic ...
    with engine.begin() as conn:  # ... without a migration record
        conn.execute(text("DROP TABLE alembic_version"))
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
    """Rows written at revision 0001 (with plain SQL: the ORM speaks the current schema) enter
    the ledger when the database is upgraded, and the log verifies."""
    from sqlalchemy.orm import Session

    from tripwire.audit import verify_chain
    from tripwire.store.ledger import GENESIS_HASH, decision_fields
    from tripwire.store.repo import record_hash_of

    engine = make_engine(database_url)
    upgrade(engine, "0001")
    now = "2026-11-01 00:00:00+00:00"
    decision = {
        "checkpoint_id": 1,
        "baseline_checkpoint_id": None,
        "policy_name": "p",
        "policy_hash": "h",
        "rule_id": "r",
        "rule_type": "delta",
        "severity": "alert",
        "verdict": "fired",
        "statistic": None,
        "interval_low": None,
        "interval_high": None,
        "p_value": None,
        "explanation": "x",
        "inputs": {"schema_version": 1},
        "actions": {},
        "decided_at": datetime(2026, 11, 1, tzinfo=UTC),
    }
    record = record_hash_of(GENESIS_HASH, decision_fields(SimpleNamespace(**decision)))
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO runs (id, name, created_at) VALUES (1, 'r', :t)"), {"t": now}
        )
        conn.execute(
            text(
                "INSERT INTO checkpoints (id, content_hash, run_id, step, stage, parents, meta, "
                "path, state, discovered_at) VALUES (1, 'sha256:aa', 1, 1, 'pretrain', '[]', "
                "'{}', '/a', 'decided', :t)"
            ),
            {"t": now},
        )
        conn.execute(
            text("INSERT INTO item_sets (id, digest, n_items, hashes) VALUES (1, 'd', 2, :h)"),
            {"h": b"x"},
        )
        conn.execute(
            text(
                "INSERT INTO evaluations (id, checkpoint_id, kind, suite_name, suite_hash, "
                "versions, seed, started_at, duration_s, created_at) VALUES (1, 1, 'proxy', 'p', "
                "'s', '{}', 0, :t, 1.0, :t)"
            ),
            {"t": now},
        )
        conn.execute(
            text(
                "INSERT INTO task_scores (id, evaluation_id, task, metric, filter, score, "
                "n_items, num_fewshot, higher_is_better, item_set_id, outcomes) VALUES (1, 1, "
                "'t', 'acc', 'none', 0.5, 2, 0, true, 1, :o)"
            ),
            {"o": b"\x00\x00\x80?\x00\x00\x00\x00"},
        )
        conn.execute(
            text(
                "INSERT INTO decisions (id, checkpoint_id, policy_name, policy_hash, rule_id, "
                "rule_type, severity, verdict, explanation, inputs, actions, decided_at, "
                "prev_hash, record_hash) VALUES (1, 1, 'p', 'h', 'r', 'delta', 'alert', 'fired', "
                "'x', :inputs, '{}', :t, :prev, :record)"
            ),
            {
                "inputs": '{"schema_version": 1}',
                "t": now,
                "prev": GENESIS_HASH,
                "record": record,
            },
        )
    upgrade(engine)
    with Session(engine) as s:
        report = verify_chain(s)
        assert report.ok, report.broken
        assert report.entries == 2 and report.checked == 1
    engine.dispose()
