"""The decision log's tables refuse UPDATE and DELETE, and the application role may only append.

Two layers, both created by migration 0005 and ``tripwire db grant``:

- **Triggers** on ``decisions``, ``reviews``, ``task_scores`` and ``ledger`` refuse every UPDATE
  and DELETE (and TRUNCATE on PostgreSQL), whoever asks. On PostgreSQL the tables' owner (the
  migration role) can still disable them (``ALTER TABLE ... DISABLE TRIGGER``); on SQLite anyone
  who can write the file can drop them. What they stop is a rewrite by the application itself,
  by a bug, or by someone holding only the application's credentials.
- **Grants** (PostgreSQL): ``grant_app_role`` gives the role the services run as SELECT and
  INSERT on the log's tables and the evaluations they stand on, and full use of the working
  tables (jobs, checkpoints, notifications, tokens...). Migrations run as another role, the
  tables' owner.

What remains possible for the owner or a superuser is caught afterwards by ``tripwire audit
verify``: the hash chain, the entries' signatures and the anchor (``tripwire.store.seal``).
"""

from __future__ import annotations

import re

from sqlalchemy import Connection, inspect, text

from tripwire.errors import TripwireError

GUARDED = ("decisions", "reviews", "task_scores", "ledger")
"""Tables whose rows are never changed or removed once written."""
APPEND_ONLY = (*GUARDED, "evaluations", "item_sets", "item_texts")
"""Tables the application role may read and append to, but not update or delete from."""

_FUNCTION = "tripwire_append_only"


def create_guards(connection: Connection) -> None:
    """Create the append-only triggers on the guarded tables."""
    if connection.dialect.name == "postgresql":
        connection.execute(
            text(
                f"""
                CREATE OR REPLACE FUNCTION {_FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                    RAISE EXCEPTION 'tripwire: % on % refused: the decision log is append-only',
                        TG_OP, TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
                END
                $$
                """
            )
        )
        for table in GUARDED:
            connection.execute(
                text(
                    f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                    f"FOR EACH ROW EXECUTE FUNCTION {_FUNCTION}()"
                )
            )
            connection.execute(
                text(
                    f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                    f"FOR EACH STATEMENT EXECUTE FUNCTION {_FUNCTION}()"
                )
            )
    elif connection.dialect.name == "sqlite":
        for table in GUARDED:
            for operation in ("UPDATE", "DELETE"):
                connection.execute(
                    text(
                        f"CREATE TRIGGER {table}_no_{operation.lower()} BEFORE {operation} "
                        f"ON {table} BEGIN SELECT RAISE(ABORT, 'tripwire: {operation} on "
                        f"{table} refused: the decision log is append-only'); END"
                    )
                )


def drop_guards(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        for table in GUARDED:
            connection.execute(text(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}"))
            connection.execute(text(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}"))
        connection.execute(text(f"DROP FUNCTION IF EXISTS {_FUNCTION}()"))
    elif connection.dialect.name == "sqlite":
        for table in GUARDED:
            for operation in ("update", "delete"):
                connection.execute(text(f"DROP TRIGGER IF EXISTS {table}_no_{operation}"))


_ROLE = re.compile(r"^[a-z_][a-z0-9_$]{0,62}$")


def grant_app_role(connection: Connection, role: str) -> list[str]:
    """Grant ``role`` what the services need and no more; return the statements run.

    PostgreSQL only. Run it as the tables' owner after ``tripwire db upgrade`` (and again after
    an upgrade that adds tables).
    """
    if connection.dialect.name != "postgresql":
        raise TripwireError(
            f"roles and grants need PostgreSQL; this database is {connection.dialect.name}"
        )
    if not _ROLE.match(role):
        raise TripwireError(
            f"role {role!r}: use a lower-case PostgreSQL identifier (letters, digits, _)"
        )
    exists = connection.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role})
    if exists.first() is None:
        raise TripwireError(
            f"role {role!r} does not exist: CREATE ROLE {role} LOGIN PASSWORD '...' first"
        )
    tables = set(inspect(connection).get_table_names())
    working = sorted(tables - set(APPEND_ONLY) - {"alembic_version"})
    statements = [
        f"GRANT USAGE ON SCHEMA public TO {role}",
        f"REVOKE ALL ON {', '.join(sorted(tables))} FROM {role}",
        f"GRANT SELECT ON alembic_version TO {role}",
        f"GRANT SELECT, INSERT ON {', '.join(t for t in APPEND_ONLY if t in tables)} TO {role}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON {', '.join(working)} TO {role}",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role}",
    ]
    for statement in statements:
        connection.execute(text(statement))
    return statements
