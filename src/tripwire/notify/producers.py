"""What puts notifications in the outbox: a fired rule, a job failed for good, an overdue review.

Each producer runs in the transaction that records its cause and keys its rows by that cause
(``rule_fired:<decision id>``, ``job_failed:<job id>``, ``review_overdue:<decision id>``), so a
cause notifies once however often it is seen. Reviews put their own ``review_hold`` rows in.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, exists, or_, select
from sqlalchemy.orm import Session

from tripwire.notify import enqueue
from tripwire.notify.message import Message
from tripwire.store.models import (
    Checkpoint,
    Decision,
    Job,
    Notification,
    Review,
    ReviewAction,
)

ANSWERING_ACTIONS = (ReviewAction.acknowledge, ReviewAction.approve, ReviewAction.release)
"""Review actions that answer a decision (an escalation or a hold does not: someone still has
to act)."""
ERROR_CHARS = 2000
"""A failed job's error is cut to this length in a message (tracebacks can be long)."""


def rule_fired(session: Session, checkpoint: Checkpoint, decision: Decision) -> list[Notification]:
    """Queue a fired decision's message to the channels its rule names (``actions.notify``)."""
    channels = _channels(decision)
    if not channels:
        return []
    message = _decision_message(
        checkpoint,
        decision,
        event="rule_fired",
        title=(
            f"{decision.severity} trigger fired: {decision.rule_id} on "
            f"{checkpoint.run.name} step {checkpoint.step}"
        ),
    )
    return enqueue(
        session,
        key=f"rule_fired:{decision.id}",
        event="rule_fired",
        channels=channels,
        payload=message.model_dump(mode="json"),
        checkpoint_id=checkpoint.id,
    )


def job_failed(
    session: Session, job_id: int, channels: list[str], reason: str | None = None
) -> list[Notification]:
    """Queue a message that a job failed for good (to ``TRIPWIRE_NOTIFY_FAILURES``)."""
    if not channels:
        return []
    job = session.get(Job, job_id, populate_existing=True)
    if job is None:
        return []
    checkpoint = job.checkpoint
    error = reason or job.error or "no reason recorded"
    message = Message(
        event="job_failed",
        title=(
            f"{job.kind.value} job failed for good on {checkpoint.run.name} step {checkpoint.step}"
        ),
        run=checkpoint.run.name,
        step=checkpoint.step,
        checkpoint=checkpoint.content_hash,
        explanation=error[:ERROR_CHARS],
        job={"id": job.id, "kind": job.kind.value, "key": job.key, "attempts": job.attempts},
    )
    return enqueue(
        session,
        key=f"job_failed:{job.id}",
        event="job_failed",
        channels=channels,
        payload=message.model_dump(mode="json"),
        checkpoint_id=checkpoint.id,
    )


def enqueue_overdue(session: Session, now: datetime, overdue_h: float) -> list[Notification]:
    """Queue ``review_overdue`` for every fired decision that asked for review (a review hold,
    or severity critical) and has had no acknowledge, approve or release for ``overdue_h``
    hours; once per decision, to its rule's channels.

    A review answers a decision when it names it, or when it names its checkpoint and no
    decision (an action on the checkpoint as a whole).
    """
    answered = exists().where(
        Review.action.in_(ANSWERING_ACTIONS),
        or_(
            Review.decision_id == Decision.id,
            and_(Review.decision_id.is_(None), Review.checkpoint_id == Decision.checkpoint_id),
        ),
    )
    candidates = session.scalars(
        select(Decision)
        .where(
            Decision.verdict == "fired",
            Decision.decided_at <= now - timedelta(hours=overdue_h),
            ~answered,
        )
        .order_by(Decision.id)
    ).all()
    notified = _overdue_notified(session)
    created: list[Notification] = []
    for decision in candidates:
        channels = _channels(decision)
        wants_review = decision.severity == "critical" or bool(
            (decision.actions or {}).get("review_hold")
        )
        if decision.id in notified or not channels or not wants_review:
            continue
        checkpoint = session.get(Checkpoint, decision.checkpoint_id)
        assert checkpoint is not None
        message = _decision_message(
            checkpoint,
            decision,
            event="review_overdue",
            title=(
                f"review overdue ({overdue_h:g} h): {decision.rule_id} on "
                f"{checkpoint.run.name} step {checkpoint.step}"
            ),
            overdue_h=overdue_h,
        )
        created += enqueue(
            session,
            key=f"review_overdue:{decision.id}",
            event="review_overdue",
            channels=channels,
            payload=message.model_dump(mode="json"),
            checkpoint_id=checkpoint.id,
        )
    return created


def _overdue_notified(session: Session) -> set[int]:
    """Decisions that already have their overdue notification (keys
    ``review_overdue:<decision id>:<channel>``)."""
    found = set()
    for key in session.scalars(
        select(Notification.key).where(Notification.event == "review_overdue")
    ):
        part = key.split(":", 2)[1] if key.count(":") >= 2 else ""
        if part.isdigit():
            found.add(int(part))
    return found


def _channels(decision: Decision) -> list[str]:
    return [str(name) for name in (decision.actions or {}).get("notify", [])]


def _decision_message(
    checkpoint: Checkpoint, decision: Decision, *, event: Any, title: str, **extra: Any
) -> Message:
    return Message(
        event=event,
        title=title,
        run=checkpoint.run.name,
        step=checkpoint.step,
        checkpoint=checkpoint.content_hash,
        rule=decision.rule_id,
        severity=decision.severity,
        policy=decision.policy_name,
        decision_id=decision.id,
        explanation=decision.explanation,
        review_hold=bool((decision.actions or {}).get("review_hold")),
        **extra,
    )
