"""What the watchers see and do, kept in the ``source_failures`` table without new columns.

Each unresolved row is one of four kinds, told apart by a prefix of its ``reason``:

    failed      (no prefix)            a folder complete but unusable; ``reason`` says why
    waiting     ``[waiting:<what>] ``  a folder not complete yet: ``<what>`` is ``shards``,
                                       ``quiet period``, ``file being written``, ...
    scan        ``[scan] ``            the scan of a watched folder (``path``) failed
    reconciler  ``[reconciler:<s>] ``  a watcher's reconciler (``path`` is ``reconciler
                                       <owner>``) ran at ``last_seen``, every ``<s>`` seconds

Rows of the first three kinds are kept in step with each scan (``sync_folders``): written when
new or changed, resolved once the folder is gone, taken, or no longer reported. A reconciler row
is renewed after every pass and resolved when its watcher stops, so a row that stopped being
renewed means a watcher died without reconciling: ``reconcile_health`` says so, for
``/healthz`` and ``/metrics``. Readers list failures with ``folder_notes`` and a kind.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import PurePath
from typing import Literal

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from tripwire.store.models import SourceFailure

REFRESH_S = 60.0
"""An unchanged waiting or failed row is rewritten (its reason and ``last_seen``) at most this
often: a waiting folder's reason counts seconds, and writing it at every scan costs a write a
folder every few seconds."""
OVERDUE_MIN_S = 60.0
"""A reconcile is overdue when none ran for 5 of its intervals, and at least this long."""
STALE_HEARTBEAT_S = 24 * 3600.0
"""A reconciler row not renewed for this long belongs to a watcher long gone: resolved."""
RECONCILER = "reconciler "
"""``path`` prefix of reconciler rows (never a real folder path: those are absolute)."""

_PREFIX = re.compile(r"^\[(waiting|scan|reconciler)(?::([^\]]*))?\] ")


class NoteKind(enum.StrEnum):
    failed = "failed"
    waiting = "waiting"
    scan = "scan"
    reconciler = "reconciler"


@dataclass(frozen=True)
class FolderNote:
    """One unresolved row, parsed."""

    path: str
    kind: NoteKind
    detail: str
    """What is awaited (``waiting``) or the interval in seconds (``reconciler``); else empty."""
    reason: str
    """The reason without its prefix."""
    first_seen: datetime
    last_seen: datetime


def encode(kind: NoteKind, reason: str, detail: str = "") -> str:
    """The stored ``reason`` of a row of ``kind``."""
    if kind == NoteKind.failed:
        return reason
    return f"[{kind.value}{':' + detail if detail else ''}] {reason}"


def parse(row: SourceFailure) -> FolderNote:
    match = _PREFIX.match(row.reason)
    if match is None:
        kind, detail, reason = NoteKind.failed, "", row.reason
    else:
        kind, detail, reason = NoteKind(match[1]), match[2] or "", row.reason[match.end() :]
    return FolderNote(row.path, kind, detail, reason, row.first_seen, row.last_seen)


def folder_notes(session: Session, kinds: Iterable[NoteKind] | None = None) -> list[FolderNote]:
    """Unresolved rows (of ``kinds``, default all), oldest first."""
    wanted = set(kinds) if kinds is not None else set(NoteKind)
    rows = session.scalars(
        select(SourceFailure).where(SourceFailure.resolved.is_(False)).order_by(SourceFailure.id)
    )
    return [note for note in map(parse, rows) if note.kind in wanted]


@dataclass(frozen=True)
class Observed:
    """What a scan says about one folder."""

    kind: Literal[NoteKind.failed, NoteKind.waiting, NoteKind.scan]
    reason: str
    detail: str = ""


def _under(path: str, roots: Iterable[str]) -> bool:
    pure = PurePath(path)
    return any(pure == PurePath(root) or pure.is_relative_to(root) for root in roots)


def sync_folders(
    session: Session,
    root: str,
    observed: Mapping[str, Observed],
    unlisted: Iterable[str],
    now: datetime,
) -> None:
    """Bring the rows under ``root`` in step with one scan of it.

    ``observed``: every folder the scan reported as failed or waiting (and ``root`` itself when
    its scan failed). A row under ``root`` that the scan no longer reports is resolved (the
    folder is gone, was taken, or was fixed), unless it lies under a folder the scan could not
    list (``unlisted``), where nothing is known.
    """
    blind = list(unlisted)
    current: dict[str, SourceFailure] = {}
    for row in session.scalars(select(SourceFailure).where(SourceFailure.resolved.is_(False))):
        if row.path.startswith(RECONCILER) or not _under(row.path, [root]):
            continue
        if row.path in current:  # two watchers raced to insert: keep one
            row.resolved = True
            continue
        current[row.path] = row
    for path, row in current.items():
        if path not in observed and not _under(path, blind):
            row.resolved = True
    refresh = now - timedelta(seconds=REFRESH_S)
    for path, seen in observed.items():
        reason = encode(seen.kind, seen.reason, seen.detail)
        if path not in current:
            session.add(SourceFailure(path=path, reason=reason, first_seen=now, last_seen=now))
            continue
        row = current[path]
        note = parse(row)
        changed = (note.kind, note.detail) != (seen.kind, seen.detail)
        if changed:
            row.first_seen = now
        if changed or (row.reason != reason and row.last_seen < refresh):
            row.reason = reason
            row.last_seen = now
        elif row.reason == reason and row.last_seen < refresh:
            row.last_seen = now


# ---------------------------------------------------------------- the reconciler's heartbeat


def beat(session: Session, owner: str, interval_s: float, now: datetime) -> None:
    """Note that ``owner``'s reconciler has just run, and runs every ``interval_s``."""
    path = RECONCILER + owner
    reason = encode(NoteKind.reconciler, f"reconciles every {interval_s:g} s", f"{interval_s:g}")
    done = session.execute(
        update(SourceFailure)
        .where(SourceFailure.path == path, SourceFailure.resolved.is_(False))
        .values(last_seen=now, reason=reason)
        .execution_options(synchronize_session=False)
    )
    if not done.rowcount:  # type: ignore[attr-defined]
        session.add(SourceFailure(path=path, reason=reason, first_seen=now, last_seen=now))
    session.execute(
        update(SourceFailure)
        .where(
            SourceFailure.path.startswith(RECONCILER, autoescape=True),
            SourceFailure.resolved.is_(False),
            SourceFailure.last_seen < now - timedelta(seconds=STALE_HEARTBEAT_S),
        )
        .values(resolved=True)
        .execution_options(synchronize_session=False)
    )


def end_beat(session: Session, owner: str) -> None:
    """The watcher stops on purpose: its reconciler is not missed."""
    session.execute(
        update(SourceFailure)
        .where(SourceFailure.path == RECONCILER + owner, SourceFailure.resolved.is_(False))
        .values(resolved=True)
        .execution_options(synchronize_session=False)
    )


@dataclass(frozen=True)
class ReconcileHealth:
    state: Literal["ok", "overdue", "no watcher"]
    """``no watcher``: no watcher is running (none started yet, or all stopped on purpose)."""
    age_s: float | None
    """Seconds since the latest reconcile of any running watcher."""
    scan_failures: int
    """Watched folders whose last scan failed."""


def reconcile_health(session: Session, now: datetime) -> ReconcileHealth:
    """Whether some watcher reconciled recently enough (``/healthz``, ``/metrics``)."""
    notes = folder_notes(session, [NoteKind.reconciler, NoteKind.scan])
    scans = sum(note.kind == NoteKind.scan for note in notes)
    beats = [note for note in notes if note.kind == NoteKind.reconciler]
    if not beats:
        return ReconcileHealth("no watcher", None, scans)
    latest = max(beats, key=lambda note: note.last_seen)
    age_s = max((now - latest.last_seen).total_seconds(), 0.0)
    try:
        interval_s = float(latest.detail)
    except ValueError:
        interval_s = 10.0
    overdue = age_s > max(5 * interval_s, OVERDUE_MIN_S)
    return ReconcileHealth("overdue" if overdue else "ok", age_s, scans)
