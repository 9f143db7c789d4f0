"""Schema migrations with Alembic: SQLite by default, PostgreSQL in production.

Every process that opens the database brings it to the latest revision first (``upgrade``), under
a lock so that two workers starting together do not both create tables: a PostgreSQL advisory
lock, or a file lock beside a SQLite database. ``tripwire db upgrade`` does the same by hand,
for deployments that migrate before rolling out workers.
"""

from __future__ import annotations

import fcntl
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, inspect, text
from sqlalchemy.exc import ProgrammingError

from tripwire.errors import TripwireError
from tripwire.store.models import Base

log = logging.getLogger(__name__)
logging.getLogger("alembic").setLevel(logging.WARNING)  # not a line per plugin in worker logs

MIGRATIONS = Path(__file__).parent / "migrations"
INITIAL_REVISION = "0001"
_PG_LOCK_KEY = 0x7472697077697265  # "tripwire"


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


@contextmanager
def _migration_lock(engine: Engine) -> Iterator[None]:
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            connection.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _PG_LOCK_KEY})
            try:
                yield
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_LOCK_KEY})
                connection.commit()
        return
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        yield
        return
    lock_path = Path(database).with_name(Path(database).name + ".migrate.lock")
    with lock_path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def upgrade(engine: Engine, revision: str = "head") -> str | None:
    """Bring the database to ``revision``; returns the revision it was at before.

    A database created before migrations existed (tables, no ``alembic_version``) is stamped
    with the initial revision first, then upgraded.
    """
    with _migration_lock(engine):
        before = current_revision(engine)
        with engine.begin() as connection:
            config = alembic_config(connection)
            tables = set(inspect(connection).get_table_names())
            if before is None and "jobs" in tables:
                log.warning(
                    "database has tables but no migration record; stamping %s", INITIAL_REVISION
                )
                command.stamp(config, INITIAL_REVISION)
                before = INITIAL_REVISION
            if before != head_revision() or revision != "head":
                try:
                    command.upgrade(config, revision)
                except ProgrammingError as exc:
                    if "permission denied" not in str(exc.orig):
                        raise
                    raise TripwireError(
                        f"the database schema is at revision {before or 'none'} and needs "
                        f"{head_revision()}, but role {engine.url.username!r} may not change it "
                        "(it is the application role): run `tripwire db upgrade` with "
                        "TRIPWIRE_DATABASE_URL naming the migration role, then start again"
                    ) from None
        return before


def downgrade(engine: Engine, revision: str) -> None:
    """Step the schema back to ``revision`` (``base`` drops every table)."""
    with _migration_lock(engine), engine.begin() as connection:
        command.downgrade(alembic_config(connection), revision)


def pending_changes(engine: Engine) -> list[Any]:
    """Differences between the models and the migrated database (empty when in step)."""
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        diffs: list[Any] = compare_metadata(context, Base.metadata)
        return diffs
