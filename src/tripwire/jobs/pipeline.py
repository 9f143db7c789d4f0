"""The loop's steps as plain functions: ingest, proxy evaluation, decision, deep evaluation, report.

Celery tasks (``tripwire.jobs.tasks``) and the embedded worker call ``run_job``; the database
says what has been done. A job is claimed atomically with a lease, renewed by a heartbeat, and
its results are written only while the lease is still held, in the same transaction that marks
it done. A redelivered message for a done or live job returns at once.
"""

from __future__ import annotations

import logging
import threading
import traceback
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from tripwire.decisions import decide_checkpoint
from tripwire.errors import CheckpointError, ConfigError, EvaluationError, JobError
from tripwire.jobs.celery_config import TASK_ROUTES
from tripwire.jobs.context import TASK_NAMES, Context
from tripwire.sources import DiscoveredCheckpoint
from tripwire.store import repo
from tripwire.store.models import Checkpoint, CheckpointState, Job, JobKind, JobState, utcnow
from tripwire.suites import load_suite

log = logging.getLogger(__name__)


class LostLease(JobError):
    """Another worker took the job over (our lease expired); our results are discarded."""


class Deferred(JobError):
    """The job cannot run yet (an earlier checkpoint is undecided); it stays pending."""


PERMANENT_ERRORS = (CheckpointError, ConfigError, EvaluationError)
"""Errors that another attempt cannot fix: the job fails at once with the reason."""


# ---------------------------------------------------------------- sending


def send_jobs(ctx: Context, job_ids: list[int]) -> None:
    """Send jobs to the broker and note when; the reconciler re-sends lost ones."""
    if not job_ids:
        return
    with ctx.db.session() as session:
        jobs = list(session.scalars(select(Job).where(Job.id.in_(job_ids))))
        session.execute(update(Job).where(Job.id.in_(job_ids)).values(enqueued_at=utcnow()))
        kinds = [(job.id, job.kind) for job in jobs]
    for job_id, kind in kinds:
        ctx.send(TASK_NAMES[kind], job_id)


STALE_SEND_S = 3600.0
"""A pending job is re-sent after this long even while its queue is not empty."""


def reconcile(ctx: Context, now: datetime | None = None) -> int:
    """Re-send pending jobs whose message may be lost and running jobs whose lease expired.

    A pending job is re-sent only when its queue is empty at the broker (or the broker cannot
    say): while messages wait there, its own is most likely among them, and re-sending would
    only pile duplicates behind a busy worker. A lost message is re-sent once its queue drains,
    or after ``STALE_SEND_S`` even under a backlog that never drains. Returns how many were
    re-sent.
    """
    now = now or utcnow()
    with ctx.db.session() as session:
        exhausted = repo.expire_exhausted_jobs(session, now)
    for job_id in exhausted:
        _after_failure(ctx, job_id)
    with ctx.db.session() as session:
        due = [
            (job.id, job.kind, job.state, job.enqueued_at)
            for job in repo.jobs_to_enqueue(session, now, ctx.resend_after_s)
        ]
    depths: dict[str, int | None] = {}
    ids = []
    stale = now - timedelta(seconds=max(STALE_SEND_S, ctx.resend_after_s))
    for job_id, kind, state, sent in due:
        recent = sent is not None and sent > stale
        if state == JobState.pending and recent and ctx.queue_depth is not None:
            queue = TASK_ROUTES[TASK_NAMES[kind]]["queue"]
            if queue not in depths:
                depths[queue] = ctx.queue_depth(queue)
            if depths[queue]:
                continue  # messages are still waiting there: this one is most likely among them
        ids.append(job_id)
    send_jobs(ctx, ids)
    return len(ids)


# ---------------------------------------------------------------- ingest


def ingest(ctx: Context, found: DiscoveredCheckpoint) -> tuple[int, bool]:
    """Record a discovered checkpoint and its proxy job; send the job if it is new.

    Returns (checkpoint id, whether the checkpoint is new). Safe to call any number of times.
    """
    suite = ctx.policy.proxy_suite
    with ctx.db.session() as session:
        checkpoint, created = repo.record_checkpoint(
            session,
            content_hash=found.content_hash,
            path=str(found.path),
            run=found.run,
            step=found.step,
            stage=found.metadata.stage,
            parents=found.metadata.parents,
            tokens_seen=found.metadata.tokens_seen,
            training_flop=found.metadata.training_flop,
            meta={"notes": found.metadata.notes, "total_bytes": found.total_bytes},
        )
        job, new_job = repo.ensure_job(
            session,
            key=f"proxy:{found.content_hash}:{suite.content_hash}",
            max_attempts=ctx.max_attempts,
            kind=JobKind.proxy_eval,
            checkpoint_id=checkpoint.id,
            suite_path=str(suite.path),
            suite_hash=suite.content_hash,
        )
        checkpoint_id, job_id = checkpoint.id, job.id
        if new_job:
            job.enqueued_at = utcnow()  # noted in the same transaction; a crash before the
            # send below leaves a pending job that the reconciler re-sends
    if new_job:
        ctx.send(TASK_NAMES[JobKind.proxy_eval], job_id)
    return checkpoint_id, created


def record_failure(ctx: Context, path: Path, reason: str) -> None:
    with ctx.db.session() as session:
        repo.record_source_failure(session, str(path), reason)


# ---------------------------------------------------------------- running a job


class _Heartbeat:
    """Renews a job's lease in the background while it runs."""

    def __init__(self, ctx: Context, job_id: int) -> None:
        self.ctx, self.job_id = ctx, job_id
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"heartbeat-{job_id}")

    def _run(self) -> None:
        while not self._stop.wait(self.ctx.heartbeat_s):
            try:
                with self.ctx.db.session() as session:
                    held = repo.renew_lease(
                        session, self.job_id, self.ctx.owner, self.ctx.lease_s, utcnow()
                    )
            except Exception:  # the database may be briefly unreachable; try again next beat
                log.warning("heartbeat for job %s failed", self.job_id, exc_info=True)
                continue
            if not held:
                self.lost.set()
                return

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def assert_owner(ctx: Context, session: Session, job_id: int) -> None:
    """Inside the result-writing transaction: fail unless this worker still holds the lease."""
    if not repo.renew_lease(session, job_id, ctx.owner, ctx.lease_s, utcnow()):
        raise LostLease(f"job {job_id}: lease lost to another worker; result discarded")


def run_job(ctx: Context, job_id: int) -> str:
    """Claim and run one job. Returns what happened: done, skipped, deferred, retry or failed."""
    with ctx.db.session() as session:
        if not repo.claim_job(session, job_id, ctx.owner, ctx.lease_s, utcnow()):
            return "skipped"
        job = session.get(Job, job_id)
        assert job is not None
        kind = job.kind
    handler = HANDLERS[kind]
    try:
        with _Heartbeat(ctx, job_id):
            follow_ups = handler(ctx, job_id)
    except Deferred:
        with ctx.db.session() as session:
            repo.release_job(session, job_id, ctx.owner, None, count_attempt=False)
        return "deferred"
    except LostLease:
        log.warning("job %s: lease lost; another worker has it", job_id)
        return "skipped"
    except PERMANENT_ERRORS as exc:
        _fail(ctx, job_id, kind, str(exc))
        return "failed"
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=8)}"
        with ctx.db.session() as session:
            state = repo.release_job(session, job_id, ctx.owner, error)
        if state == JobState.failed:
            _fail(ctx, job_id, kind, f"gave up after the last attempt: {type(exc).__name__}: {exc}")
            return "failed"
        send_jobs(ctx, [job_id])
        return "retry"
    send_jobs(ctx, follow_ups)
    return "done"


def _fail(ctx: Context, job_id: int, kind: JobKind, reason: str) -> None:
    """Fail a job visibly; a failed proxy evaluation fails its checkpoint, and the run goes on."""
    with ctx.db.session() as session:
        repo.fail_job(session, job_id, reason)
    log.error("job %s (%s) failed: %s", job_id, kind.value, reason)
    _after_failure(ctx, job_id)


def _after_failure(ctx: Context, job_id: int) -> None:
    """A failed job's consequences: its checkpoint fails (proxy), a report says why."""
    follow_ups: list[int] = []
    with ctx.db.session() as session:
        job = session.get(Job, job_id)
        assert job is not None
        kind, reason = job.kind, job.error
        checkpoint = job.checkpoint
        if kind == JobKind.proxy_eval:
            repo.set_checkpoint_state(session, checkpoint.id, CheckpointState.failed, reason)
            follow_ups += _waiting_decisions(session, checkpoint.run_id)
        if kind in (JobKind.proxy_eval, JobKind.deep_eval):
            report, _ = repo.ensure_job(
                session,
                key=f"report:{checkpoint.content_hash}:failed:{job_id}",
                max_attempts=ctx.max_attempts,
                kind=JobKind.report,
                checkpoint_id=checkpoint.id,
            )
            follow_ups.append(report.id)
    send_jobs(ctx, follow_ups)


def _waiting_decisions(session: Session, run_id: int) -> list[int]:
    """Pending decide jobs of a run: an earlier checkpoint settling may let them go on."""
    return list(
        session.scalars(
            select(Job.id)
            .join(Checkpoint, Job.checkpoint_id == Checkpoint.id)
            .where(
                Checkpoint.run_id == run_id,
                Job.kind == JobKind.decide,
                Job.state == JobState.pending,
            )
        )
    )


def _checkpoint_path(checkpoint: Checkpoint) -> Path:
    """A location of the checkpoint that still exists (the first one otherwise)."""
    for candidate in [checkpoint.path, *(loc.path for loc in checkpoint.locations)]:
        if Path(candidate).is_dir():
            return Path(candidate)
    raise CheckpointError(checkpoint.path, "no longer exists at any known location")


# ---------------------------------------------------------------- handlers


def _proxy_eval(ctx: Context, job_id: int) -> list[int]:
    with ctx.db.session() as session:
        job = session.get(Job, job_id)
        assert job is not None and job.suite_path is not None
        path = _checkpoint_path(job.checkpoint)
        suite_path = Path(job.suite_path)
    result = ctx.runner.evaluate(path, load_suite(suite_path))
    with ctx.db.session() as session:
        assert_owner(ctx, session, job_id)
        job = session.get(Job, job_id)
        assert job is not None
        repo.save_evaluation(session, job.checkpoint, result, "proxy")
        repo.set_checkpoint_state(session, job.checkpoint_id, CheckpointState.evaluated)
        decide, _ = repo.ensure_job(
            session,
            key=f"decide:{job.checkpoint.content_hash}:{ctx.policy.content_hash}",
            max_attempts=ctx.max_attempts,
            kind=JobKind.decide,
            checkpoint_id=job.checkpoint_id,
            payload={"policy_hash": ctx.policy.content_hash},
        )
        repo.finish_job(session, job_id, ctx.owner, utcnow())
        return [decide.id]


def _decide(ctx: Context, job_id: int) -> list[int]:
    with ctx.db.session() as session:
        job = session.get(Job, job_id)
        assert job is not None
        wanted = job.payload.get("policy_hash")
        if wanted is not None and wanted != ctx.policy.content_hash:
            raise ConfigError(
                ctx.policy.path,
                [
                    f"job {job_id} was created to decide under policy {wanted[:12]}, but this "
                    f"worker runs {ctx.policy.name} {ctx.policy.content_hash[:12]}; run every "
                    "worker and watcher with the same TRIPWIRE_POLICY (to apply another policy "
                    "to decided checkpoints, use `tripwire decide --policy`)"
                ],
            )
        outcome = decide_checkpoint(
            session, ctx.policy, job.checkpoint, utcnow(), max_attempts=ctx.max_attempts
        )
        if outcome is None:
            raise Deferred(f"job {job_id}: an earlier checkpoint of the run is not decided yet")
        assert_owner(ctx, session, job_id)
        follow_ups = list(outcome.new_jobs)
        report, _ = repo.ensure_job(
            session,
            key=f"report:{job.checkpoint.content_hash}:decided:{ctx.policy.content_hash}",
            max_attempts=ctx.max_attempts,
            kind=JobKind.report,
            checkpoint_id=job.checkpoint_id,
        )
        follow_ups.append(report.id)
        repo.finish_job(session, job_id, ctx.owner, utcnow())
        follow_ups += [j for j in _waiting_decisions(session, job.checkpoint.run_id) if j != job_id]
        return follow_ups


def _deep_eval(ctx: Context, job_id: int) -> list[int]:
    with ctx.db.session() as session:
        job = session.get(Job, job_id)
        assert job is not None and job.suite_path is not None
        path = _checkpoint_path(job.checkpoint)
        suite_path = Path(job.suite_path)
    result = ctx.runner.evaluate(path, load_suite(suite_path))
    with ctx.db.session() as session:
        assert_owner(ctx, session, job_id)
        job = session.get(Job, job_id)
        assert job is not None
        repo.save_evaluation(session, job.checkpoint, result, "deep")
        report, _ = repo.ensure_job(
            session,
            key=f"report:{job.checkpoint.content_hash}:deep:{result.suite_hash}",
            max_attempts=ctx.max_attempts,
            kind=JobKind.report,
            checkpoint_id=job.checkpoint_id,
        )
        repo.finish_job(session, job_id, ctx.owner, utcnow())
        return [report.id]


def _report(ctx: Context, job_id: int) -> list[int]:
    from tripwire.reports.build import write_reports

    with ctx.db.session() as session:
        job = session.get(Job, job_id)
        assert job is not None
        write_reports(session, job.checkpoint_id, ctx.report_dir)
        assert_owner(ctx, session, job_id)
        repo.finish_job(session, job_id, ctx.owner, utcnow())
    return []


HANDLERS = {
    JobKind.proxy_eval: _proxy_eval,
    JobKind.decide: _decide,
    JobKind.deep_eval: _deep_eval,
    JobKind.report: _report,
}


def unsettled_jobs(ctx: Context) -> int:
    """Jobs still pending or running."""
    with ctx.db.session() as session:
        return len(
            list(
                session.scalars(
                    select(Job.id).where(Job.state.in_([JobState.pending, JobState.running]))
                )
            )
        )
