"""The loop's steps as plain functions: ingest, proxy evaluation, decision, deep evaluation, report.

Celery tasks (``tripwire.jobs.tasks``) and the embedded worker call ``run_job``; the database
says what has been done. A job is claimed atomically with a lease, renewed by a heartbeat, and
its results are written only while the lease is still held, in the same transaction that marks
it done. A redelivered message for a done or live job returns at once. An evaluation first
checks that its checkpoint and suite are still the content it was created for
(``tripwire.jobs.identity``). A failed job is retried after a backoff or failed at once,
as ``tripwire.failures`` classifies the error.
"""

from __future__ import annotations

import logging
import traceback
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from tripwire.decisions import decide_checkpoint
from tripwire.decisions.levels import with_level_verdicts
from tripwire.errors import CheckpointChangedError, ConfigError, JobError
from tripwire.failures import FailureKind, classify_failure
from tripwire.jobs import identity, retry
from tripwire.jobs.celery_config import TASK_ROUTES
from tripwire.jobs.context import TASK_NAMES, Context
from tripwire.jobs.lease import Heartbeat, LostLease, assert_owner
from tripwire.lineage.compute import estimate_flop, parameters_of_folder
from tripwire.notify import producers as notify_producers
from tripwire.results import SuiteResult
from tripwire.sources import DiscoveredCheckpoint
from tripwire.store import repo
from tripwire.store.models import (
    Checkpoint,
    CheckpointLocation,
    CheckpointState,
    Job,
    JobKind,
    JobState,
    utcnow,
)
from tripwire.systems import SystemSpec

log = logging.getLogger(__name__)


GONE = "gone"
"""Key in ``Job.payload``: the job failed because its checkpoint's content was at none of its
locations; it is taken again if the content is seen again."""


class Deferred(JobError):
    """The job cannot run yet (an earlier checkpoint is undecided); it stays pending."""


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

    One rule for both: a job is re-sent at most once every ``resend_after_s``, and only when its
    queue is empty at the broker (or the broker cannot say). While messages wait there, its own
    is most likely among them (a pending job's, or the message a crashed worker's pool gave
    back), and re-sending would only pile duplicates behind a busy worker. A lost message is
    re-sent once its queue drains, or ``STALE_SEND_S`` after it was last sent (for an expired
    lease: after the lease ended) even under a backlog that never drains. Returns how many were
    re-sent.
    """
    now = now or utcnow()
    with ctx.db.session() as session:
        exhausted = repo.expire_exhausted_jobs(session, now)
        for job_id in exhausted:  # notifications (issue #8), in the failing transaction
            notify_producers.job_failed(session, job_id, ctx.notify_failures)
    for job_id in exhausted:
        _after_failure(ctx, job_id)
    with ctx.db.session() as session:
        due = [
            (job.id, job.kind, _last_sent(job))
            for job in repo.jobs_to_enqueue(session, now, ctx.resend_after_s)
        ]
    depths: dict[str, int | None] = {}
    ids = []
    stale = now - timedelta(seconds=max(STALE_SEND_S, ctx.resend_after_s))
    for job_id, kind, sent in due:
        recent = sent is not None and sent > stale
        if recent and ctx.queue_depth is not None:
            queue = TASK_ROUTES[TASK_NAMES[kind]]["queue"]
            if queue not in depths:
                depths[queue] = ctx.queue_depth(queue)
            if depths[queue]:
                continue  # messages are still waiting there: this one is most likely among them
        ids.append(job_id)
    send_jobs(ctx, ids)
    return len(ids)


def _last_sent(job: Job) -> datetime | None:
    """When the job's message last entered its queue: when it was sent, or for an expired lease
    when the lease ended (a lost worker's message is given back to the queue about then)."""
    if job.state == JobState.running and job.lease_until is not None:
        return max(job.lease_until, job.enqueued_at or job.lease_until)
    return job.enqueued_at


# ---------------------------------------------------------------- ingest


def ingest(ctx: Context, found: DiscoveredCheckpoint) -> tuple[int, bool]:
    """Record a discovered checkpoint and its proxy job; send the job if it is new.

    Returns (checkpoint id, whether the checkpoint is new). Safe to call any number of times.
    """
    path = str(found.path)
    params = parameters_of_folder(found.path)
    active = params.active if params is not None else None
    with ctx.db.session() as session:
        checkpoint, created = repo.record_checkpoint(
            session,
            content_hash=found.content_hash,
            path=path,
            run=found.run,
            step=found.step,
            stage=found.metadata.stage,
            parents=found.metadata.parents,
            tokens_seen=found.metadata.tokens_seen,
            training_flop=found.metadata.training_flop,
            params_total=params.total if params is not None else None,
            params_active=active,
            estimated_flop=estimate_flop(active, found.metadata.tokens_seen),
            meta={
                "notes": found.metadata.notes,
                "total_bytes": found.total_bytes,
                **identity.first_fingerprint(path, found.fingerprint),
            },
        )
        if found.uri is not None:  # an object-store checkpoint: findable by its URI too
            identity.remember_uri(session, checkpoint, found.uri)
        revived: list[int] = []
        if not created:  # the same content at another path, or seen again at this one
            identity.remember_location(session, checkpoint, path, found.fingerprint)
            revived = revive_gone(session, checkpoint)
        job_id, new_job = _proxy_job(ctx, session, checkpoint)
        checkpoint_id = checkpoint.id
    if new_job:
        ctx.send(TASK_NAMES[JobKind.proxy_eval], job_id)
    send_jobs(ctx, revived)
    return checkpoint_id, created


def proxy_job_key(content_hash: str, suite_hash: str) -> str:
    return f"proxy:{content_hash}:{suite_hash}"


def _proxy_job(ctx: Context, session: Session, checkpoint: Checkpoint) -> tuple[int, bool]:
    """The checkpoint's proxy job for the current proxy suite, created if new: (id, new)."""
    suite = ctx.policy.proxy_suite
    job, new_job = repo.ensure_job(
        session,
        key=proxy_job_key(checkpoint.content_hash, suite.content_hash),
        max_attempts=ctx.max_attempts,
        kind=JobKind.proxy_eval,
        checkpoint_id=checkpoint.id,
        suite_path=str(suite.path),
        suite_hash=suite.content_hash,
    )
    if new_job:
        job.enqueued_at = utcnow()  # noted in the same transaction; a crash before the send
        # leaves a pending job that the reconciler re-sends
    return job.id, new_job


def already_ingested(ctx: Context, found: list[DiscoveredCheckpoint]) -> set[tuple[str, str]]:
    """Which of ``found`` a previous ``ingest`` recorded completely, as (content hash, path).

    A watcher that restarts over a large root finds every ready folder again; ingesting each
    (idempotent, a transaction each) made its first scan cost about 10 s per 1,000 folders
    before new checkpoints were taken. Read in a few batched queries instead: a folder counts as
    ingested only when its content is recorded with this path as a location whose recorded
    fingerprint equals the one just taken, the proxy job for the current proxy suite exists, and
    none of the checkpoint's jobs failed because it was gone (those are revived by ``ingest``).
    Anything else goes through ``ingest`` as before.
    """
    suite = ctx.policy.proxy_suite
    done: set[tuple[str, str]] = set()
    by_hash: dict[str, list[DiscoveredCheckpoint]] = {}
    for f in found:
        if f.uri is None and f.fingerprint is not None:
            by_hash.setdefault(f.content_hash, []).append(f)
    hashes = sorted(by_hash)
    with ctx.db.session() as session:
        for start in range(0, len(hashes), 500):
            chunk = hashes[start : start + 500]
            checkpoints = {
                c.content_hash: c
                for c in session.scalars(
                    select(Checkpoint).where(Checkpoint.content_hash.in_(chunk))
                )
            }
            if not checkpoints:
                continue
            ids = [c.id for c in checkpoints.values()]
            proxy_keys = set(
                session.scalars(
                    select(Job.key).where(
                        Job.key.in_([proxy_job_key(h, suite.content_hash) for h in checkpoints])
                    )
                )
            )
            gone = {
                job.checkpoint_id
                for job in session.scalars(
                    select(Job).where(Job.checkpoint_id.in_(ids), Job.state == JobState.failed)
                )
                if (job.payload or {}).get(GONE)
            }
            located: dict[int, set[str]] = {}
            for checkpoint_id, path in session.execute(
                select(CheckpointLocation.checkpoint_id, CheckpointLocation.path).where(
                    CheckpointLocation.checkpoint_id.in_(ids)
                )
            ).tuples():
                located.setdefault(checkpoint_id, set()).add(path)
            for content_hash, checkpoint in checkpoints.items():
                if checkpoint.id in gone:
                    continue
                if proxy_job_key(content_hash, suite.content_hash) not in proxy_keys:
                    continue
                paths = located.get(checkpoint.id, set()) | {checkpoint.path}
                recorded = (checkpoint.meta or {}).get(identity.FINGERPRINTS) or {}
                for f in by_hash[content_hash]:
                    path = str(f.path)
                    fingerprint = f.fingerprint
                    if (
                        path in paths
                        and fingerprint is not None
                        and recorded.get(path) == fingerprint.model_dump(mode="json")
                    ):
                        done.add((content_hash, path))
    return done


def ingest_system(
    ctx: Context, system: SystemSpec, run: str, step: int | None, stage: str = "deployed"
) -> tuple[int, bool]:
    """Record a served system as a subject and its proxy job; send the job if it is new.

    Returns (checkpoint id, whether it is new). Registering the same declaration again changes
    nothing; a new version is a new subject in the same run.
    """
    with ctx.db.session() as session:
        if step is None:
            step = repo.next_step(session, run)
        checkpoint, created = repo.record_checkpoint(
            session,
            content_hash=system.content_hash,
            path=system.uri(),
            run=run,
            step=step,
            stage=stage,
            meta={"system": system.model_dump()},
        )
        job_id, new_job = _proxy_job(ctx, session, checkpoint)
        checkpoint_id = checkpoint.id
    if new_job:
        ctx.send(TASK_NAMES[JobKind.proxy_eval], job_id)
    return checkpoint_id, created


def revive_gone(session: Session, checkpoint: Checkpoint) -> list[int]:
    """The checkpoint's content is on disk again: its jobs that failed because it was gone go
    back to pending (attempts reset), and a checkpoint failed for that reason is discovered
    again. Returns the jobs to send."""
    jobs = session.scalars(
        select(Job).where(Job.checkpoint_id == checkpoint.id, Job.state == JobState.failed)
    )
    revived = [job for job in jobs if (job.payload or {}).get(GONE)]
    for job in revived:
        log.info("job %s: %s is back; taken again", job.id, checkpoint.path)
        job.payload = {k: v for k, v in job.payload.items() if k not in (GONE, retry.RETRY_AT)}
        job.state, job.attempts, job.error = JobState.pending, 0, None
        job.owner = job.lease_until = job.started_at = job.finished_at = None
        job.enqueued_at = utcnow()
        if job.kind == JobKind.proxy_eval and checkpoint.state == CheckpointState.failed:
            checkpoint.state, checkpoint.error = CheckpointState.discovered, None
    return [job.id for job in revived]


# ---------------------------------------------------------------- running a job


def run_job(ctx: Context, job_id: int) -> str:
    """Claim and run one job. Returns what happened: done, skipped, early, deferred, retry or
    failed."""
    with ctx.db.session() as session:
        job = session.get(Job, job_id)
        if job is None:
            return "skipped"
        due = retry.not_due(job, utcnow()) if job.state == JobState.pending else None
        if due is not None:  # a duplicate message before the backoff ends: the one sent
            # with the ETA (or the reconciler after it) runs the job
            log.info("job %s: not due before %s; message dropped", job_id, due.isoformat())
            return "early"
        if not repo.claim_job(session, job_id, ctx.owner, ctx.lease_s, utcnow()):
            return "skipped"
        kind = job.kind
    handler = HANDLERS[kind]
    try:
        with Heartbeat(ctx, job_id):
            follow_ups = handler(ctx, job_id)
    except Deferred:
        with ctx.db.session() as session:
            repo.release_job(session, job_id, ctx.owner, None, count_attempt=False)
        return "deferred"
    except LostLease:
        log.warning("job %s: lease lost; another worker has it", job_id)
        return "skipped"
    except Exception as exc:
        return _after_error(ctx, job_id, kind, exc)
    send_jobs(ctx, follow_ups)
    return "done"


def _after_error(ctx: Context, job_id: int, kind: JobKind, exc: Exception) -> str:
    """Fail the job at once (permanent error) or retry it after a backoff (the others)."""
    failure = classify_failure(exc)
    if failure.kind == FailureKind.permanent:
        _fail(ctx, job_id, kind, failure.reason, gone=isinstance(exc, CheckpointChangedError))
        return "failed"
    error = f"{failure.kind.value}: {failure.reason}"
    if failure.kind == FailureKind.unexpected:
        error += "\n" + traceback.format_exc(limit=8)
    with ctx.db.session() as session:
        state = repo.release_job(session, job_id, ctx.owner, error)
        job = session.get(Job, job_id)
        assert job is not None
        attempts, max_attempts = job.attempts, job.max_attempts
        if state == JobState.pending:
            delay_s = retry.backoff_s(attempts, ctx.retry_backoff_s, ctx.retry_backoff_max_s)
            due = utcnow() + timedelta(seconds=delay_s)
            retry.mark_retry(job, due)
    if state is None:  # the lease was lost meanwhile: the job is someone else's
        return "skipped"
    if state == JobState.failed:
        _fail(ctx, job_id, kind, f"gave up after {attempts} attempts: {failure.reason}")
        return "failed"
    log.warning(
        "job %s (%s): %s error on attempt %d of %d, retrying in %.0f s: %s",
        job_id,
        kind.value,
        failure.kind.value,
        attempts,
        max_attempts,
        delay_s,
        failure.reason,
    )
    ctx.send(TASK_NAMES[kind], job_id, eta=due)
    return "retry"


def _fail(ctx: Context, job_id: int, kind: JobKind, reason: str, *, gone: bool = False) -> None:
    """Fail a job visibly; a failed proxy evaluation fails its checkpoint, and the run goes on.

    ``gone``: the checkpoint's content is at none of its locations any more; the job is marked
    so, and taken again if the watcher sees the same content again (``revive_gone``).
    """
    with ctx.db.session() as session:
        repo.fail_job(session, job_id, reason)
        if gone:
            job = session.get(Job, job_id, populate_existing=True)
            assert job is not None
            job.payload = {**(job.payload or {}), GONE: True}
        # notifications (issue #8), in the failing transaction
        notify_producers.job_failed(session, job_id, ctx.notify_failures, reason)
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


def _evaluate(ctx: Context, job_id: int) -> tuple[SuiteResult, Path | str]:
    """Score the job's checkpoint on its suite, once both are checked to be what the job was
    created for; returns the result and the folder (or a served system's URI) it was scored
    from."""
    with ctx.db.session() as session:
        job = session.get(Job, job_id)
        assert job is not None and job.suite_path is not None
        subject = identity.subject_of(job)
    known = [ctx.policy.proxy_suite, *ctx.policy.deep_suites.values()]
    suite = identity.job_suite(subject, known)
    if subject.system is not None:
        return ctx.runner.evaluate_system(SystemSpec.parse(subject.system), suite), subject.system
    location = identity.locate(subject, ctx.hash_cache)
    try:
        result = ctx.runner.evaluate(location.path, suite, content_hash=subject.content_hash)
    except Exception:
        identity.after_error(subject, location, ctx.hash_cache)  # the folder went away?
        raise
    identity.check_unchanged(subject, location, ctx.hash_cache)
    return result, location.path


def _note_source(job: Job, path: Path | str) -> None:
    """Record in the job which folder its checkpoint was scored from."""
    job.payload = {**(job.payload or {}), "scored_from": str(path)}


# ---------------------------------------------------------------- handlers


def _proxy_eval(ctx: Context, job_id: int) -> list[int]:
    result, path = _evaluate(ctx, job_id)
    with ctx.db.session() as session:
        assert_owner(ctx, session, job_id)
        job = session.get(Job, job_id)
        assert job is not None
        _note_source(job, path)
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
    result, path = _evaluate(ctx, job_id)
    with ctx.db.session() as session:
        assert_owner(ctx, session, job_id)
        job = session.get(Job, job_id)
        assert job is not None
        _note_source(job, path)
        repo.save_evaluation(session, job.checkpoint, with_level_verdicts(result), "deep")
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
