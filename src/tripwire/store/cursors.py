"""Listing cursors of object-store sources, kept in ``source_cursors`` so a restart resumes."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from tripwire.store.db import Database
from tripwire.store.models import CheckpointLocation, SourceCursor


class DatabaseCursors:
    """Loads and saves one JSON cursor per source URI; each save commits on its own."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def load(self, source: str) -> dict[str, Any]:
        with self.db.session() as session:
            row = session.scalar(select(SourceCursor).where(SourceCursor.source == source))
            return dict(row.state) if row is not None else {}

    def save(self, source: str, state: dict[str, Any]) -> None:
        with self.db.session() as session:
            row = session.scalar(select(SourceCursor).where(SourceCursor.source == source))
            if row is None:
                session.add(SourceCursor(source=source, state=state))
            else:
                row.state = state

    def remember(self, uri: str) -> None:
        """Nothing to do: the watcher's ingest recorded ``uri`` as a checkpoint location."""

    def recorded(self, uris: list[str]) -> set[str]:
        with self.db.session() as session:
            return set(
                session.scalars(
                    select(CheckpointLocation.path).where(CheckpointLocation.path.in_(uris))
                )
            )


class MemoryCursors:
    """Cursors kept in memory (one process's life): for ``tripwire eval``-like one-off scans."""

    def __init__(self) -> None:
        self.states: dict[str, dict[str, Any]] = {}
        self.uris: set[str] = set()

    def load(self, source: str) -> dict[str, Any]:
        return dict(self.states.get(source, {}))

    def save(self, source: str, state: dict[str, Any]) -> None:
        self.states[source] = state

    def remember(self, uri: str) -> None:
        self.uris.add(uri)

    def recorded(self, uris: list[str]) -> set[str]:
        return self.uris & set(uris)
