"""Alembic environment: migrations run on the connection ``tripwire.store.migrate`` passes in."""

from __future__ import annotations

from alembic import context

from tripwire.store.models import Base

target_metadata = Base.metadata


def run_migrations_online() -> None:
    connection = context.config.attributes["connection"]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters by table copy
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise RuntimeError("Tripwire migrations run online, through `tripwire db upgrade`")
run_migrations_online()
