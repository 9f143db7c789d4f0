"""Reviews: what a person did about a checkpoint, where each checkpoint stands, and the deployment
gate (``docs/review.md``).

A review action (acknowledge, approve, escalate, hold, release) is a ``Review`` row attributed to
a token's name and role, appended to the hash-chained ledger in the caller's transaction under
the log lock. Holds live in the checkpoint's ``meta`` (``review_hold``, ``review_released``),
the flags ``tripwire.decisions.inputs.is_held`` reads, so the gate and the choice of baselines
can never disagree. Everything else (open reviews, who held and why) is computed from the stored
decision and review rows.

Each function takes the caller's ``Session``; the caller owns the transaction.
"""

from __future__ import annotations

import enum
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, load_only, selectinload

from tripwire import notify
from tripwire.decisions.inputs import is_held
from tripwire.decisions.record import read_record
from tripwire.errors import (
    AmbiguousCheckpoint,
    CheckpointNotFound,
    InvalidReview,
    ReviewConflict,
)
from tripwire.notify.message import Message
from tripwire.policy.engine import BASELINE_RULE_ID
from tripwire.store import ledger, repo
from tripwire.store.models import (
    Checkpoint,
    Decision,
    Review,
    ReviewAction,
    Role,
)

HASH_PREFIX = "sha256:"
MIN_PREFIX_CHARS = 8
"""The shortest hash prefix accepted as a checkpoint identifier."""
MAX_COMMENT_CHARS = 10_000
COMMENT_REQUIRED = frozenset({ReviewAction.escalate, ReviewAction.hold})
"""Actions that need a comment saying why."""
ANSWERS = frozenset({ReviewAction.acknowledge, ReviewAction.approve})
"""Actions that close an open review."""
SEVERITY_RANK = {"critical": 0, "alert": 1}
"""Queue order: critical before alert before anything else."""
_HEX = re.compile(r"[0-9a-f]+")
_LATEST = datetime.max.replace(tzinfo=UTC)


class ReviewStatus(enum.StrEnum):
    """Where a checkpoint stands for its reviewers."""

    held = "held"
    """An active hold: never a baseline; the gate answers ``held``."""
    open = "open"
    """A rule fired and nobody has acknowledged or approved it yet."""
    approved = "approved"
    released = "released"
    acknowledged = "acknowledged"
    quiet = "quiet"
    """Nothing fired that needs a person, and nobody reviewed it."""


def short_hash(content_hash: str) -> str:
    """The content hash as it appears in URLs: without ``sha256:``."""
    return content_hash.removeprefix(HASH_PREFIX)


def find_checkpoint(session: Session, identifier: str) -> Checkpoint:
    """The checkpoint a URL or command names: its content hash (with or without ``sha256:``) or
    a unique prefix of at least 8 hex characters."""
    wanted = identifier.strip().lower().removeprefix(HASH_PREFIX)
    if len(wanted) < MIN_PREFIX_CHARS or len(wanted) > 64 or not _HEX.fullmatch(wanted):
        raise CheckpointNotFound(
            f"{identifier[:80]!r} is not a checkpoint identifier: give its content hash or at "
            f"least {MIN_PREFIX_CHARS} of its leading hex characters"
        )
    exact = session.scalar(
        select(Checkpoint).where(Checkpoint.content_hash == HASH_PREFIX + wanted)
    )
    if exact is not None:
        return exact
    found = [
        c
        for c in session.scalars(
            select(Checkpoint)
            .where(Checkpoint.content_hash.startswith(HASH_PREFIX + wanted, autoescape=True))
            .limit(5)
        )
        if c.content_hash.startswith(HASH_PREFIX + wanted)
    ]
    if not found:
        raise CheckpointNotFound(f"no checkpoint in the store matches {wanted!r}")
    if len(found) > 1:
        shown = ", ".join(short_hash(c.content_hash)[: len(wanted) + 4] for c in found[:3])
        raise AmbiguousCheckpoint(
            f"{wanted!r} matches several checkpoints ({shown}, ...): give more characters"
        )
    return found[0]


@dataclass(frozen=True, slots=True)
class CheckpointReview:
    """A checkpoint's review state, computed from its decision and review rows."""

    checkpoint: Checkpoint
    status: ReviewStatus
    fired: list[Decision]
    """Fired decisions that call for a person (the routine first-checkpoint baseline does not)."""
    unanswered: list[Decision]
    """Fired decisions nobody has acknowledged or approved yet."""
    reviews: list[Review]
    """Oldest first."""
    hold_reason: str | None = None
    """Who or what holds the checkpoint, when it is held."""
    held_since: datetime | None = None
    escalated: bool = False
    """Escalated, and not approved since."""

    @property
    def held(self) -> bool:
        return self.status == ReviewStatus.held

    @property
    def severity(self) -> str | None:
        """The highest severity among the decisions still open (else among those fired)."""
        pool = self.unanswered or self.fired
        if not pool:
            return None
        return min(pool, key=lambda d: SEVERITY_RANK.get(d.severity, 9)).severity

    @property
    def waiting_since(self) -> datetime | None:
        """When the oldest open decision was made (the review's age counts from it)."""
        return min((d.decided_at for d in self.unanswered), default=None)


_DECISION_COLUMNS = (
    Decision.id,
    Decision.checkpoint_id,
    Decision.policy_name,
    Decision.rule_id,
    Decision.rule_type,
    Decision.severity,
    Decision.verdict,
    Decision.explanation,
    Decision.actions,
    Decision.decided_at,
)


def review_states(
    session: Session, checkpoints: Iterable[Checkpoint]
) -> dict[int, CheckpointReview]:
    """The review state of each checkpoint, in two queries."""
    by_id = {c.id: c for c in checkpoints}
    if not by_id:
        return {}
    fired: dict[int, list[Decision]] = defaultdict(list)
    for d in session.scalars(
        select(Decision)
        .options(load_only(*_DECISION_COLUMNS))
        .where(
            Decision.checkpoint_id.in_(list(by_id)),
            Decision.verdict == "fired",
            Decision.rule_id != BASELINE_RULE_ID,
        )
        .order_by(Decision.id)
    ):
        fired[d.checkpoint_id].append(d)
    reviews: dict[int, list[Review]] = defaultdict(list)
    for r in session.scalars(
        select(Review).where(Review.checkpoint_id.in_(list(by_id))).order_by(Review.id)
    ):
        reviews[r.checkpoint_id].append(r)
    return {cid: _state(c, fired[cid], reviews[cid]) for cid, c in by_id.items()}


def review_state(session: Session, checkpoint: Checkpoint) -> CheckpointReview:
    return review_states(session, [checkpoint])[checkpoint.id]


def _answered(decision: Decision, reviews: list[Review]) -> bool:
    """A decision is answered by an acknowledge or approve that names it, or that names no
    decision and came after it."""
    return any(
        r.action in ANSWERS
        and (
            r.decision_id == decision.id
            or (r.decision_id is None and r.created_at >= decision.decided_at)
        )
        for r in reviews
    )


def _holds(decision: Decision) -> bool:
    return bool((decision.actions or {}).get("review_hold"))


def _state(
    checkpoint: Checkpoint, fired: list[Decision], reviews: list[Review]
) -> CheckpointReview:
    unanswered = [d for d in fired if not _answered(d, reviews)]
    last_approval = max((r.id for r in reviews if r.action == ReviewAction.approve), default=0)
    escalated = any(r.action == ReviewAction.escalate and r.id > last_approval for r in reviews)
    hold_reason, held_since = None, None
    if is_held(checkpoint):
        status = ReviewStatus.held
        hold_reason, held_since = _hold_reason(fired, reviews)
    elif unanswered:
        status = ReviewStatus.open
    else:
        closing = [
            r
            for r in reviews
            if r.action in (ReviewAction.approve, ReviewAction.release, ReviewAction.acknowledge)
        ]
        status = (
            {
                ReviewAction.approve: ReviewStatus.approved,
                ReviewAction.release: ReviewStatus.released,
                ReviewAction.acknowledge: ReviewStatus.acknowledged,
            }[closing[-1].action]
            if closing
            else ReviewStatus.quiet
        )
    return CheckpointReview(
        checkpoint=checkpoint,
        status=status,
        fired=fired,
        unanswered=unanswered,
        reviews=reviews,
        hold_reason=hold_reason,
        held_since=held_since,
        escalated=escalated,
    )


def _hold_reason(fired: list[Decision], reviews: list[Review]) -> tuple[str, datetime | None]:
    """Who or what holds the checkpoint, and since when: the last review that held it, unless a
    later one released it; else the rule that held it."""
    turns = [
        r
        for r in reviews
        if r.action in (ReviewAction.hold, ReviewAction.release, ReviewAction.approve)
    ]
    if turns and turns[-1].action == ReviewAction.hold:
        r = turns[-1]
        return (
            f"held by {r.actor} ({r.role}) at {r.created_at:%Y-%m-%d %H:%M} UTC: {r.comment}",
            r.created_at,
        )
    by_rule = [d for d in fired if _holds(d)]
    if by_rule:
        d = by_rule[-1]
        return (
            f"held by rule {d.rule_id!r} ({d.severity}) of policy {d.policy_name!r}, "
            f"decision {d.id}, until a reviewer approves or releases it",
            d.decided_at,
        )
    return "held for review (the checkpoint carries a hold flag)", None


@dataclass(frozen=True, slots=True)
class Queue:
    """What awaits reviewers."""

    holds: list[CheckpointReview] = field(default_factory=list)
    """Every held checkpoint, longest held first."""
    open: list[CheckpointReview] = field(default_factory=list)
    """Checkpoints not held with fired decisions awaiting acknowledgement or approval: critical
    first, then oldest first."""


def review_queue(session: Session) -> Queue:
    """Open reviews and active holds. Candidates are the checkpoints with a fired decision or a
    review hold (a rule's hold always comes with its fired decision)."""
    ids = set(
        session.scalars(
            select(Decision.checkpoint_id).where(
                Decision.verdict == "fired", Decision.rule_id != BASELINE_RULE_ID
            )
        )
    )
    ids |= set(
        session.scalars(select(Review.checkpoint_id).where(Review.action == ReviewAction.hold))
    )
    checkpoints = session.scalars(
        select(Checkpoint).where(Checkpoint.id.in_(ids)).options(selectinload(Checkpoint.run))
    )
    states = review_states(session, checkpoints)
    holds = sorted(
        (s for s in states.values() if s.held),
        key=lambda s: (s.held_since or _LATEST, s.checkpoint.id),
    )
    open_ = sorted(
        (s for s in states.values() if s.status == ReviewStatus.open),
        key=lambda s: (
            SEVERITY_RANK.get(s.severity or "", 9),
            s.waiting_since or _LATEST,
            s.checkpoint.id,
        ),
    )
    return Queue(holds=holds, open=open_)


def act(
    session: Session,
    checkpoint: Checkpoint,
    *,
    action: ReviewAction,
    actor: str,
    role: Role,
    comment: str = "",
    decision_id: int | None = None,
    now: datetime,
) -> Review:
    """Record ``action`` on ``checkpoint`` by ``actor``: a review row in the ledger, and the hold
    flags it changes. A hold notifies the channels of the decision it names (else of the
    checkpoint's fired decisions) through the outbox, in the same transaction."""
    comment = comment.strip()
    _validate(action, comment)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    decision = _decision(session, checkpoint, decision_id)
    repo.lock_decision_log(session)
    session.refresh(checkpoint)
    meta = dict(checkpoint.meta or {})
    if action == ReviewAction.release and not is_held(checkpoint):
        raise ReviewConflict(
            f"checkpoint {short_hash(checkpoint.content_hash)[:12]} is not held: nothing to release"
        )
    if action == ReviewAction.hold:
        meta["review_hold"] = True
        meta.pop("review_released", None)
    elif action == ReviewAction.release or (action == ReviewAction.approve and is_held(checkpoint)):
        meta["review_released"] = True
    if meta != (checkpoint.meta or {}):
        checkpoint.meta = meta
    review = Review(
        checkpoint_id=checkpoint.id,
        decision_id=decision.id if decision is not None else None,
        action=action,
        comment=comment,
        actor=actor,
        role=str(role),
        created_at=now,
    )
    session.add(review)
    session.flush()
    ledger.append(session, "review", review)
    if action == ReviewAction.hold:
        _notify_hold(session, checkpoint, review, decision)
    return review


def _validate(action: ReviewAction, comment: str) -> None:
    if action in COMMENT_REQUIRED and not comment:
        raise InvalidReview(f"{action} needs a comment saying why", field="comment")
    if len(comment) > MAX_COMMENT_CHARS:
        raise InvalidReview(
            f"the comment has {len(comment)} characters; at most {MAX_COMMENT_CHARS}",
            field="comment",
        )
    if "\x00" in comment:
        raise InvalidReview("the comment contains a NUL character", field="comment")


def _decision(session: Session, checkpoint: Checkpoint, decision_id: int | None) -> Decision | None:
    if decision_id is None:
        return None
    decision = session.get(Decision, decision_id)
    if decision is None or decision.checkpoint_id != checkpoint.id:
        raise InvalidReview(
            f"decision {decision_id} is not a decision of checkpoint "
            f"{short_hash(checkpoint.content_hash)[:12]}",
            field="decision_id",
        )
    return decision


def _notify_hold(
    session: Session, checkpoint: Checkpoint, review: Review, decision: Decision | None
) -> None:
    answered = [decision] if decision is not None else review_state(session, checkpoint).fired
    channels = [c for d in answered for c in read_record(d).verdict.actions.notify]
    rules = sorted({d.rule_id for d in answered})
    message = Message(
        event="review_hold",
        title=(
            f"Held for review by {review.actor}: run {checkpoint.run.name}, step {checkpoint.step}"
        ),
        run=checkpoint.run.name,
        step=checkpoint.step,
        checkpoint=checkpoint.content_hash,
        rule=rules[0] if len(rules) == 1 else None,
        decision_id=review.decision_id,
        explanation=review.comment,
        review_hold=True,
        details={
            "actor": review.actor,
            "role": review.role,
            "comment": review.comment,
            "review_id": review.id,
            "rules": rules,
        },
    )
    payload: dict[str, Any] = message.model_dump(mode="json")
    notify.enqueue(
        session,
        key=f"review_hold:{review.id}",
        event="review_hold",
        channels=channels,
        payload=payload,
        checkpoint_id=checkpoint.id,
    )
