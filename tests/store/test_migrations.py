"""Alembic migrations: the models and the migrated schema agree, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from pathlib import Path

from sqlalchemy import inspect

from tripwire.store.db import Database, make_engine
from tripwire.store.migrate import (
    current_revision,
    downgrade,
    head_revision,
    pending_changes,
    upgrade,
)
from tripwire.store.models import Base


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
    Base.metadata.create_all(engine)  # how databases were made before Alembic
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
