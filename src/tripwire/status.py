"""Runs, checkpoints, their state, decisions and jobs: as data (``/api/status``) and as tables.

``status_snapshot`` reads one page of checkpoints (``limit`` from ``offset``, optionally of one
run) in a handful of indexed queries, so its cost follows the page, not the store;
``tripwire status`` renders the same snapshot with rich (or prints it as JSON).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from pydantic import BaseModel, Field
from rich.table import Table
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tripwire.settings import Settings
from tripwire.store.db import Database
from tripwire.store.models import (
    Checkpoint,
    Decision,
    Job,
    JobKind,
    JobState,
    Run,
    review_held,
)
from tripwire.store.source_state import NoteKind, folder_notes

STATUS_SCHEMA_VERSION = 2
"""2: paged (``total_checkpoints``, ``limit``, ``offset``, ``next_offset``; ``runs`` holds the
page's runs only)."""

DEFAULT_LIMIT = 100
"""Checkpoints on one status page unless asked otherwise."""
MAX_LIMIT = 1000
"""The largest page ``/api/status`` serves."""


class CheckpointStatus(BaseModel):
    id: int
    content_hash: str
    step: int | None
    stage: str
    state: str
    """``discovered``, ``evaluated``, ``decided`` or ``failed``."""
    path: str
    discovered_at: datetime
    fired_rules: list[str]
    """Ids of the rules that fired for this checkpoint, in decision order."""
    deep_jobs: list[str]
    """States of its deep-evaluation jobs."""
    review_hold: bool = False
    """Held for review (by a fired rule or a reviewer) and not released."""
    error: str | None


class RunStatus(BaseModel):
    name: str
    checkpoints: list[CheckpointStatus]
    """In step order (checkpoints without a step last)."""


class SourceFailureStatus(BaseModel):
    path: str
    reason: str


class WaitingStatus(BaseModel):
    """A checkpoint folder that is not complete yet."""

    path: str
    waiting_for: str
    """``shards``, ``quiet period`` (or a ready marker), ``file being written``, ``symlink
    target`` or ``stable files``."""
    reason: str
    """As of the watcher's last note (refreshed about every minute)."""
    since: datetime


class StatusSnapshot(BaseModel):
    schema_version: int = STATUS_SCHEMA_VERSION
    runs: list[RunStatus]
    """The runs of this page's checkpoints, in run order; checkpoints in step order."""
    total_checkpoints: int = 0
    """Checkpoints matching the filter, across all pages."""
    limit: int = DEFAULT_LIMIT
    """Checkpoints per page."""
    offset: int = 0
    """Checkpoints skipped before this page, in (run, step) order."""
    next_offset: int | None = None
    """The ``offset`` of the next page; None on the last page."""
    jobs: dict[str, dict[str, int]] = Field(default_factory=dict)
    """Job counts by kind, then state; only the pairs that have jobs."""
    source_failures: list[SourceFailureStatus] = Field(default_factory=list)
    """Folders that were refused or are corrupt (and watched folders whose scan failed), until
    they are fixed or gone."""
    waiting: list[WaitingStatus] = Field(default_factory=list)
    """Checkpoint folders not complete yet, and what each waits for."""


class UnknownRunError(LookupError):
    """``--run`` (or ``?run=``) names no run in the store."""


def status_snapshot(
    session: Session,
    *,
    run: str | None = None,
    limit: int = DEFAULT_LIMIT,
    offset: int = 0,
) -> StatusSnapshot:
    """One page of what ``tripwire status`` shows: ``limit`` checkpoints from ``offset`` in
    (run, step) order, of ``run`` only when given, with the job counts and folder notes."""
    if limit < 1 or offset < 0:
        raise ValueError(f"limit must be >= 1 and offset >= 0, got {limit} and {offset}")
    where = []
    if run is not None:
        run_id = session.scalar(select(Run.id).where(Run.name == run))
        if run_id is None:
            raise UnknownRunError(run)
        where.append(Checkpoint.run_id == run_id)
    total = session.scalar(select(func.count(Checkpoint.id)).where(*where)) or 0
    page = session.scalars(
        select(Checkpoint)
        .where(*where)
        .order_by(Checkpoint.run_id, Checkpoint.step.is_(None), Checkpoint.step, Checkpoint.id)
        .limit(limit)
        .offset(offset)
    ).all()
    ids = [cp.id for cp in page]
    fired: dict[int, list[str]] = defaultdict(list)
    deep: dict[int, list[str]] = defaultdict(list)
    if ids:
        for checkpoint_id, rule_id in session.execute(
            select(Decision.checkpoint_id, Decision.rule_id)
            .where(Decision.checkpoint_id.in_(ids), Decision.verdict == "fired")
            .order_by(Decision.id)
        ).tuples():
            fired[checkpoint_id].append(rule_id)
        for checkpoint_id, state in session.execute(
            select(Job.checkpoint_id, Job.state)
            .where(Job.checkpoint_id.in_(ids), Job.kind == JobKind.deep_eval)
            .order_by(Job.id)
        ).tuples():
            deep[checkpoint_id].append(JobState(state).value)
    by_run: dict[int, list[CheckpointStatus]] = defaultdict(list)
    for cp in page:
        by_run[cp.run_id].append(
            CheckpointStatus(
                id=cp.id,
                content_hash=cp.content_hash,
                step=cp.step,
                stage=cp.stage,
                state=cp.state.value,
                path=cp.path,
                discovered_at=cp.discovered_at,
                fired_rules=fired.get(cp.id, []),
                deep_jobs=deep.get(cp.id, []),
                review_hold=review_held(cp.meta),
                error=cp.error,
            )
        )
    names = {
        run_id: name
        for run_id, name in session.execute(
            select(Run.id, Run.name).where(Run.id.in_(list(by_run)))
        ).tuples()
    }
    runs = [RunStatus(name=names[run_id], checkpoints=rows) for run_id, rows in by_run.items()]
    jobs: dict[str, dict[str, int]] = defaultdict(dict)
    for kind, state, count in session.execute(
        select(Job.kind, Job.state, func.count()).group_by(Job.kind, Job.state)
    ).tuples():
        jobs[JobKind(kind).value][JobState(state).value] = count
    notes = folder_notes(session, [NoteKind.failed, NoteKind.scan, NoteKind.waiting])
    failures = [
        SourceFailureStatus(path=n.path, reason=n.reason) for n in notes if n.kind != "waiting"
    ]
    waiting = [
        WaitingStatus(path=n.path, waiting_for=n.detail, reason=n.reason, since=n.first_seen)
        for n in notes
        if n.kind == NoteKind.waiting
    ]
    return StatusSnapshot(
        runs=runs,
        total_checkpoints=total,
        limit=limit,
        offset=offset,
        next_offset=offset + limit if offset + limit < total else None,
        jobs=dict(jobs),
        source_failures=failures,
        waiting=waiting,
    )


def read_status(
    settings: Settings, *, run: str | None = None, limit: int = DEFAULT_LIMIT, offset: int = 0
) -> tuple[StatusSnapshot, str]:
    """One status page from the configured store, and the store's URL (for the empty table)."""
    db = Database.for_settings(settings, writing=False)
    try:
        with db.session() as session:
            snapshot = status_snapshot(session, run=run, limit=limit, offset=offset)
    finally:
        db.dispose()
    return snapshot, db.url


def status_tables(settings: Settings) -> list[Table]:
    snapshot, url = read_status(settings)
    return render_tables(snapshot, url)


def render_tables(snapshot: StatusSnapshot, database: str) -> list[Table]:
    """The snapshot as rich tables: one per run, then jobs, then refused folders."""
    tables: list[Table] = []
    for run in snapshot.runs:
        table = Table(title=f"run {run.name}")
        for column in ("step", "checkpoint", "state", "fired rules", "deep", "error"):
            table.add_column(column)
        for cp in run.checkpoints:
            table.add_row(
                "-" if cp.step is None else str(cp.step),
                cp.content_hash.removeprefix("sha256:")[:12],
                f"{cp.state} (review hold)" if cp.review_hold else cp.state,
                ", ".join(cp.fired_rules) or "-",
                ", ".join(cp.deep_jobs) or "-",
                (cp.error or "")[:80],
            )
        tables.append(table)
    if snapshot.jobs:
        job_table = Table(title="jobs")
        job_table.add_column("kind:state")
        job_table.add_column("count", justify="right")
        counts = {
            f"{kind}:{state}": count
            for kind, states in snapshot.jobs.items()
            for state, count in states.items()
        }
        for key, count in sorted(counts.items()):
            job_table.add_row(key, str(count))
        tables.append(job_table)
    if snapshot.source_failures:
        fail_table = Table(title="refused or corrupt checkpoint folders")
        fail_table.add_column("path")
        fail_table.add_column("reason")
        for failure in snapshot.source_failures:
            fail_table.add_row(failure.path, failure.reason)
        tables.append(fail_table)
    if snapshot.waiting:
        wait_table = Table(title="checkpoints not complete yet")
        for column in ("path", "waiting for", "since", "detail"):
            wait_table.add_column(column)
        for waiting in snapshot.waiting:
            wait_table.add_row(
                waiting.path,
                waiting.waiting_for,
                waiting.since.strftime("%Y-%m-%d %H:%M:%S UTC"),
                waiting.reason,
            )
        tables.append(wait_table)
    shown = sum(len(run.checkpoints) for run in snapshot.runs)
    if snapshot.next_offset is not None or snapshot.offset:
        page = Table(title="page")
        for column in ("checkpoints", "of", "next page"):
            page.add_column(column)
        page.add_row(
            f"{snapshot.offset + 1 if shown else 0}-{snapshot.offset + shown}",
            str(snapshot.total_checkpoints),
            f"--offset {snapshot.next_offset}" if snapshot.next_offset is not None else "-",
        )
        tables.append(page)
    if not snapshot.runs and not snapshot.source_failures and not snapshot.waiting:
        empty = Table(title="no checkpoints yet")
        empty.add_column(f"database {database}")
        tables.append(empty)
    return tables
