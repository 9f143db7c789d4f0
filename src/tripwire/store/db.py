"""Engines and sessions. SQLite by default; any SQLAlchemy URL (PostgreSQL in production)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from tripwire.store.ledger import HEAD_KEY, SEAL_KEY

if TYPE_CHECKING:
    from tripwire.settings import Settings
    from tripwire.store.seal import Seal

log = logging.getLogger(__name__)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets WAL, a busy timeout and foreign keys."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True)


def init_db(engine: Engine) -> None:
    """Bring the schema to the latest migration (creating it in an empty database)."""
    from tripwire.store.migrate import upgrade

    upgrade(engine)


def _anchor_after_commit(session: Session) -> None:
    head = session.info.pop(HEAD_KEY, None)
    seal: Seal | None = session.info.get(SEAL_KEY)
    if head is None or seal is None:
        return
    try:
        seal.anchor_head(*head)
    except Exception:  # the commit stands; the next anchored head covers this one
        log.exception("could not anchor ledger entry %s", head[0])


def _forget_head(session: Session, *_: Any) -> None:
    session.info.pop(HEAD_KEY, None)


class Database:
    """An engine and its session factory.

    With a ``seal``, ledger entries written through its sessions are signed and each
    committed head is anchored (``tripwire.store.seal``); ``Database.for_settings`` builds it.
    """

    def __init__(self, url: str, *, create: bool = True, seal: Seal | None = None) -> None:
        self.url = url
        self.engine = make_engine(url)
        if create:
            init_db(self.engine)
        self.seal = seal
        self._sessions = sessionmaker(
            self.engine, expire_on_commit=False, info={SEAL_KEY: seal} if seal else {}
        )
        if seal is not None:
            event.listen(self._sessions, "after_commit", _anchor_after_commit)
            event.listen(self._sessions, "after_rollback", _forget_head)

    @classmethod
    def for_settings(
        cls, settings: Settings, *, create: bool = True, writing: bool = True
    ) -> Database:
        """The store these settings name, sealed with their ledger key and anchor."""
        from tripwire.store.seal import seal_for

        return cls(
            settings.resolved_database_url(),
            create=create,
            seal=seal_for(settings, writing=writing),
        )

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session whose transaction commits on success and rolls back on error."""
        with self._sessions() as session, session.begin():
            yield session

    def dispose(self) -> None:
        self.engine.dispose()
