"""Where an object-store source has listed to, per run: persisted (``source_cursors``) so a
restart resumes there. See ``tripwire.sources.objectstore``."""

from __future__ import annotations

from typing import Any, Literal, Protocol

from pydantic import BaseModel, Field


class CursorStore(Protocol):
    """Where cursors persist (``tripwire.store.cursors.DatabaseCursors``)."""

    def load(self, source: str) -> dict[str, Any]: ...

    def save(self, source: str, state: dict[str, Any]) -> None: ...

    def remember(self, uri: str) -> None:
        """``uri`` was recorded (a store that cannot see the checkpoints' locations keeps it)."""
        ...

    def recorded(self, uris: list[str]) -> set[str]:
        """Those of ``uris`` recorded as checkpoint locations."""
        ...


class RunCursor(BaseModel):
    after: str = ""
    """Every checkpoint folder up to this name is taken: listing resumes after it."""
    taken: list[str] = Field(default_factory=list)
    """Folders after ``after`` already taken (an open one before them holds ``after``)."""
    open: list[str] = Field(default_factory=list)
    """Folders after ``after`` pending or failed: looked at again at every scan."""


class Cursor(BaseModel):
    schema_version: Literal[1] = 1
    runs: dict[str, RunCursor] = Field(default_factory=dict)
    scans: int = 0
    """Scans made: every ``full_sweep_every``-th one lists the runs from their start."""


def compact(rc: RunCursor) -> None:
    """Move ``after`` past every taken folder that no open folder precedes."""
    lowest_open = min(rc.open, default=None)
    passed = [t for t in rc.taken if lowest_open is None or t < lowest_open]
    if passed:
        rc.after = max(rc.after, *passed)
    rc.taken = sorted(t for t in rc.taken if t > rc.after)
