"""Store operations. Each takes the caller's ``Session``; the caller owns the transaction."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tripwire.results import SuiteResult
from tripwire.store import ledger
from tripwire.store.ledger import GENESIS_HASH, decision_fields
from tripwire.store.models import (
    Checkpoint,
    CheckpointLocation,
    CheckpointState,
    Decision,
    Evaluation,
    Job,
    JobKind,
    JobState,
    LogLock,
    Run,
    SourceFailure,
    TaskScore,
    utcnow,
)
from tripwire.store.outcomes import (
    get_or_create_item_set,
    get_or_create_texts,
    pack_answers,
    pack_values,
)


def get_or_create_run(session: Session, name: str) -> Run:
    run = session.scalar(select(Run).where(Run.name == name))
    if run is not None:
        return run
    try:
        with session.begin_nested():
            run = Run(name=name)
            session.add(run)
    except IntegrityError:
        run = session.scalars(select(Run).where(Run.name == name)).one()
    return run


def record_checkpoint(
    session: Session,
    *,
    content_hash: str,
    path: str,
    run: str,
    step: int | None,
    stage: str = "pretrain",
    parents: list[str] | None = None,
    tokens_seen: int | None = None,
    training_flop: float | None = None,
    params_total: int | None = None,
    params_active: int | None = None,
    estimated_flop: float | None = None,
    meta: dict[str, Any] | None = None,
) -> tuple[Checkpoint, bool]:
    """Insert a checkpoint by content hash, or add a location to the existing one.

    Returns the checkpoint and whether it is new. The same content under a second path is the
    same checkpoint.
    """
    existing = session.scalar(select(Checkpoint).where(Checkpoint.content_hash == content_hash))
    created = False
    if existing is None:
        try:
            with session.begin_nested():
                existing = Checkpoint(
                    content_hash=content_hash,
                    run=get_or_create_run(session, run),
                    step=step,
                    stage=stage,
                    parents=parents or [],
                    tokens_seen=tokens_seen,
                    training_flop=training_flop,
                    params_total=params_total,
                    params_active=params_active,
                    estimated_flop=estimated_flop,
                    meta=meta or {},
                    path=path,
                )
                session.add(existing)
            created = True
        except IntegrityError:
            existing = session.scalars(
                select(Checkpoint).where(Checkpoint.content_hash == content_hash)
            ).one()
    seen = session.scalar(
        select(CheckpointLocation).where(
            CheckpointLocation.checkpoint_id == existing.id, CheckpointLocation.path == path
        )
    )
    if seen is None:
        try:
            with session.begin_nested():
                session.add(CheckpointLocation(checkpoint=existing, path=path))
        except IntegrityError:
            pass
    resolve_source_failure(session, path)
    return existing, created


def next_step(session: Session, run: str) -> int:
    """One past the run's highest step (1 for a new run): the step of a subject registered
    without one, such as a served system."""
    found = session.scalar(
        select(func.max(Checkpoint.step))
        .join(Run, Checkpoint.run_id == Run.id)
        .where(Run.name == run)
    )
    return int(found) + 1 if found is not None else 1


def record_source_failure(session: Session, path: str, reason: str) -> SourceFailure:
    found = session.scalar(
        select(SourceFailure).where(SourceFailure.path == path, SourceFailure.resolved.is_(False))
    )
    if found is None:
        found = SourceFailure(path=path, reason=reason)
        session.add(found)
    else:
        found.reason = reason
        found.last_seen = utcnow()
    return found


def resolve_source_failure(session: Session, path: str) -> None:
    session.execute(
        update(SourceFailure)
        .where(SourceFailure.path == path, SourceFailure.resolved.is_(False))
        .values(resolved=True)
    )


def save_evaluation(
    session: Session, checkpoint: Checkpoint, result: SuiteResult, kind: str
) -> Evaluation:
    """Store a suite result with packed per-item outcomes; a second save returns the first."""
    found = session.scalar(
        select(Evaluation).where(
            Evaluation.checkpoint_id == checkpoint.id, Evaluation.suite_hash == result.suite_hash
        )
    )
    if found is not None:
        return found
    evaluation = Evaluation(
        checkpoint_id=checkpoint.id,
        kind=kind,
        suite_name=result.suite_name,
        suite_hash=result.suite_hash,
        versions=result.versions.model_dump(),
        seed=result.seed,
        started_at=result.started_at,
        duration_s=result.duration_s,
    )
    for task in result.tasks.values():
        item_set = get_or_create_item_set(session, task.items.doc_hashes)
        texts = task.items.texts
        answers = task.items.answers
        evaluation.scores.append(
            TaskScore(
                task=task.task,
                metric=task.metric,
                filter=task.filter,
                score=task.score,
                stderr=task.stderr,
                n_items=task.n_items,
                num_fewshot=task.num_fewshot,
                higher_is_better=task.higher_is_better,
                task_version=task.task_version,
                item_set=item_set,
                outcomes=pack_values(task.items.values),
                texts=get_or_create_texts(session, texts) if texts else None,
                answers=pack_answers(answers) if answers else None,
                alert_level=task.alert_level,
                critical_level=task.critical_level,
                level_verdict=task.level_verdict,
                profile=task.profile,
                elicitation=task.elicitation.model_dump() if task.elicitation else None,
                inference_tokens=task.inference_tokens,
                inference_flop=task.inference_flop,
                estimator=task.estimator,
                shared_se=task.shared_se,
            )
        )
    session.add(evaluation)
    session.flush()
    lock_decision_log(session)
    ledger.append(session, "evaluation", evaluation)
    return evaluation


def evaluation_for(session: Session, checkpoint_id: int, suite_hash: str) -> Evaluation | None:
    return session.scalar(
        select(Evaluation).where(
            Evaluation.checkpoint_id == checkpoint_id, Evaluation.suite_hash == suite_hash
        )
    )


# ---------------------------------------------------------------- decisions


def record_hash_of(prev_hash: str, fields: dict[str, Any]) -> str:
    """A decision's own chain hash (the decisions table keeps its chain beside the ledger)."""
    body = json.dumps(fields, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256((prev_hash + body).encode()).hexdigest()


def lock_decision_log(session: Session) -> None:
    """Take the decision log's write lock for the rest of the transaction."""
    result = session.execute(
        update(LogLock).where(LogLock.id == 1).values(counter=LogLock.counter + 1)
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        try:
            with session.begin_nested():
                session.add(LogLock(id=1, counter=1))
        except IntegrityError:
            session.execute(
                update(LogLock).where(LogLock.id == 1).values(counter=LogLock.counter + 1)
            )


def append_decision(session: Session, decision: Decision) -> Decision:
    """Append a decision to the hash-chained log (the caller holds the write lock)."""
    last = session.scalar(select(Decision).order_by(Decision.id.desc()).limit(1))
    decision.prev_hash = last.record_hash if last is not None else GENESIS_HASH
    if decision.decided_at is None:
        decision.decided_at = utcnow()
    decision.record_hash = record_hash_of(decision.prev_hash, decision_fields(decision))
    session.add(decision)
    session.flush()
    ledger.append(session, "decision", decision)
    return decision


def decisions_for(session: Session, checkpoint_id: int, policy_hash: str) -> list[Decision]:
    return list(
        session.scalars(
            select(Decision)
            .where(Decision.checkpoint_id == checkpoint_id, Decision.policy_hash == policy_hash)
            .order_by(Decision.id)
        )
    )


# ---------------------------------------------------------------- jobs


def ensure_job(
    session: Session,
    *,
    key: str,
    kind: JobKind,
    checkpoint_id: int,
    suite_path: str | None = None,
    suite_hash: str | None = None,
    payload: dict[str, Any] | None = None,
    max_attempts: int = 3,
) -> tuple[Job, bool]:
    """Insert a job with a unique key; inserting one that exists is a no-op. Returns (job, new)."""
    found = session.scalar(select(Job).where(Job.key == key))
    if found is not None:
        return found, False
    try:
        with session.begin_nested():
            job = Job(
                key=key,
                kind=kind,
                checkpoint_id=checkpoint_id,
                suite_path=suite_path,
                suite_hash=suite_hash,
                payload=payload or {},
                max_attempts=max_attempts,
            )
            session.add(job)
        return job, True
    except IntegrityError:
        return session.scalars(select(Job).where(Job.key == key)).one(), False


def claim_job(session: Session, job_id: int, owner: str, lease_s: float, now: datetime) -> bool:
    """Atomically take a pending job, or a running one whose lease expired.

    Returns False if the job is done, failed, out of attempts, or held by a live lease.
    """
    result = session.execute(
        update(Job)
        .where(
            Job.id == job_id,
            Job.attempts < Job.max_attempts,
            or_(
                Job.state == JobState.pending,
                and_(Job.state == JobState.running, Job.lease_until < now),
            ),
        )
        .values(
            state=JobState.running,
            owner=owner,
            lease_until=now + timedelta(seconds=lease_s),
            attempts=Job.attempts + 1,
            started_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def renew_lease(session: Session, job_id: int, owner: str, lease_s: float, now: datetime) -> bool:
    """Extend the lease; False if this owner no longer holds the job."""
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.owner == owner, Job.state == JobState.running)
        .values(lease_until=now + timedelta(seconds=lease_s))
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def finish_job(session: Session, job_id: int, owner: str, now: datetime) -> bool:
    """Mark done; only the lease owner may. False means another worker owns it now."""
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.owner == owner, Job.state == JobState.running)
        .values(state=JobState.done, finished_at=now, lease_until=None, error=None)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def release_job(
    session: Session, job_id: int, owner: str, error: str | None, *, count_attempt: bool = True
) -> JobState | None:
    """Give a claimed job back after an error: pending again, or failed after its last attempt."""
    job = session.get(Job, job_id, populate_existing=True)
    if job is None or job.owner != owner or job.state != JobState.running:
        return None
    if not count_attempt:
        job.attempts = max(job.attempts - 1, 0)
    job.error = error
    job.lease_until = None
    job.owner = None
    if error is not None and job.attempts >= job.max_attempts:
        job.state = JobState.failed
        job.finished_at = utcnow()
    else:
        job.state = JobState.pending
    return job.state


def fail_job(session: Session, job_id: int, error: str) -> None:
    """Fail a job for good (a permanent error: retrying cannot help)."""
    session.execute(
        update(Job)
        .where(Job.id == job_id)
        .values(state=JobState.failed, error=error, lease_until=None, finished_at=utcnow())
        .execution_options(synchronize_session=False)
    )


def jobs_to_enqueue(session: Session, now: datetime, resend_after_s: float) -> list[Job]:
    """Pending jobs, and running jobs whose lease expired, not sent in the last
    ``resend_after_s``."""
    cutoff = now - timedelta(seconds=resend_after_s)
    return list(
        session.scalars(
            select(Job)
            .where(
                or_(
                    Job.state == JobState.pending,
                    and_(Job.state == JobState.running, Job.lease_until < now),
                ),
                or_(Job.enqueued_at.is_(None), Job.enqueued_at < cutoff),
                Job.attempts < Job.max_attempts,
            )
            .order_by(Job.id)
        )
    )


def expire_exhausted_jobs(session: Session, now: datetime) -> list[int]:
    """Running jobs whose lease expired on their last attempt become failed; returns their ids.

    This is how a job whose worker keeps dying (OOM, SIGKILL) ends instead of looping.
    """
    ids = list(
        session.scalars(
            select(Job.id)
            .where(
                Job.state == JobState.running,
                Job.lease_until < now,
                Job.attempts >= Job.max_attempts,
            )
            .with_for_update(skip_locked=True)
        )
    )
    if ids:
        session.execute(
            update(Job)
            .where(Job.id.in_(ids), Job.state == JobState.running)
            .values(
                state=JobState.failed,
                finished_at=now,
                lease_until=None,
                error=func.coalesce(
                    Job.error, "the worker was lost on every attempt (lease expired)"
                ),
            )
            .execution_options(synchronize_session=False)
        )
    return ids


def set_checkpoint_state(
    session: Session, checkpoint_id: int, state: CheckpointState, error: str | None = None
) -> None:
    session.execute(
        update(Checkpoint)
        .where(Checkpoint.id == checkpoint_id)
        .values(state=state, error=error)
        .execution_options(synchronize_session=False)
    )
