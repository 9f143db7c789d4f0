"""When a job that met a transient error runs again: exponential backoff, kept in the job row.

The pause is ``retry_backoff_s`` doubled at each further attempt, at most
``retry_backoff_max_s``. The job row is the source of truth: it goes back to ``pending`` with
``payload["retry_at"]`` and ``enqueued_at`` set to the due time, and the message is sent with
that ETA. The reconciler re-sends a pending job only ``resend_after_s`` after ``enqueued_at``,
so it never sends one before it is due; a copy that arrives early anyway (a duplicate) finds
the job not due and is dropped without claiming it.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from tripwire.store.models import Job

RETRY_AT = "retry_at"
"""Key in ``Job.payload``: ISO time (UTC) before which the job must not run again."""
EARLY_TOLERANCE_S = 1.0
"""A message at most this early is run anyway (the broker's timer may fire a little early)."""


def backoff_s(attempts: int, base_s: float, max_s: float) -> float:
    """The pause after the ``attempts``-th attempt failed: base, 2 x base, 4 x base, ..."""
    return float(min(base_s * 2 ** max(attempts - 1, 0), max_s))


def mark_retry(job: Job, due: datetime) -> None:
    """Note in the (pending) job row when it may run again."""
    job.payload = {**(job.payload or {}), RETRY_AT: due.isoformat()}
    job.enqueued_at = due


def not_due(job: Job, now: datetime) -> datetime | None:
    """When the job is due, if that is still ahead of ``now``; None when it may run."""
    raw = (job.payload or {}).get(RETRY_AT)
    if not raw:
        return None
    due = datetime.fromisoformat(raw)
    return due if due - now > timedelta(seconds=EARLY_TOLERANCE_S) else None
