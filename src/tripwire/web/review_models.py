"""The JSON bodies of the review API and the deployment gate (``/api/reviews``,
``/api/checkpoints/{checkpoint}/reviews``, ``/api/gate/{checkpoint}``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from tripwire.gate import Gate, GateAnswerKind
from tripwire.reviews import MAX_COMMENT_CHARS, CheckpointReview, ReviewStatus
from tripwire.store.models import CheckpointState, Decision, Review, ReviewAction

REVIEW_API_VERSION: Literal[1] = 1
MAX_ID = 2**31 - 1
"""Row ids are 32-bit integers in the store."""


class ReviewIn(BaseModel):
    """A review action on a checkpoint."""

    model_config = ConfigDict(extra="forbid")

    action: ReviewAction
    comment: str = Field(default="", max_length=MAX_COMMENT_CHARS)
    """Required (non-blank) for ``escalate`` and ``hold``."""
    decision_id: int | None = Field(default=None, ge=1, le=MAX_ID)
    """The decision the action answers; none: every fired decision of the checkpoint so far."""


class ReviewOut(BaseModel):
    id: int
    checkpoint: str
    """Content hash."""
    decision_id: int | None
    action: ReviewAction
    comment: str
    actor: str
    """The token's name."""
    role: str
    created_at: datetime

    @classmethod
    def of(cls, review: Review, content_hash: str) -> ReviewOut:
        return cls(
            id=review.id,
            checkpoint=content_hash,
            decision_id=review.decision_id,
            action=review.action,
            comment=review.comment,
            actor=review.actor,
            role=review.role,
            created_at=review.created_at,
        )


class FiredDecision(BaseModel):
    """A fired decision that calls for a reviewer."""

    id: int
    policy_name: str
    rule_id: str
    rule_type: str
    severity: str
    explanation: str
    decided_at: datetime
    review_hold: bool
    """The rule placed a hold."""
    open: bool
    """Nobody has acknowledged or approved it yet."""

    @classmethod
    def of(cls, decision: Decision, open_: bool) -> FiredDecision:
        actions: dict[str, Any] = decision.actions or {}
        return cls(
            id=decision.id,
            policy_name=decision.policy_name,
            rule_id=decision.rule_id,
            rule_type=decision.rule_type,
            severity=decision.severity,
            explanation=decision.explanation,
            decided_at=decision.decided_at,
            review_hold=bool(actions.get("review_hold")),
            open=open_,
        )


class CheckpointReviewOut(BaseModel):
    """Where a checkpoint stands for its reviewers, and what they did."""

    checkpoint: str
    """Content hash (``sha256:...``); URLs take it without the prefix."""
    run: str
    step: int | None
    state: CheckpointState
    status: ReviewStatus
    held: bool
    hold_reason: str | None
    held_since: datetime | None
    severity: str | None
    """The highest severity among the open decisions (else among the fired ones)."""
    waiting_since: datetime | None
    """When the oldest open decision was made."""
    escalated: bool
    decisions: list[FiredDecision]
    reviews: list[ReviewOut]
    """Oldest first."""

    @classmethod
    def of(cls, state: CheckpointReview) -> CheckpointReviewOut:
        cp = state.checkpoint
        open_ids = {d.id for d in state.unanswered}
        return cls(
            checkpoint=cp.content_hash,
            run=cp.run.name,
            step=cp.step,
            state=cp.state,
            status=state.status,
            held=state.held,
            hold_reason=state.hold_reason,
            held_since=state.held_since,
            severity=state.severity,
            waiting_since=state.waiting_since,
            escalated=state.escalated,
            decisions=[FiredDecision.of(d, d.id in open_ids) for d in state.fired],
            reviews=[ReviewOut.of(r, cp.content_hash) for r in state.reviews],
        )


class ReviewQueueOut(BaseModel):
    schema_version: Literal[1] = REVIEW_API_VERSION
    holds: list[CheckpointReviewOut]
    """Every held checkpoint, longest held first."""
    open: list[CheckpointReviewOut]
    """Checkpoints not held whose fired decisions await acknowledgement or approval: critical
    first, then oldest first."""


class ReviewResult(BaseModel):
    """The action recorded, and where the checkpoint stands after it."""

    review: ReviewOut
    status: ReviewStatus
    held: bool


class GateOut(BaseModel):
    """The deployment gate's answer. ``tripwire gate`` exits 0, 1, 2 for the three answers."""

    checkpoint: str
    """The content hash; the identifier asked about when no single checkpoint matches."""
    answer: GateAnswerKind
    """``allowed``: decided and not held. ``held``: an active review hold. ``unknown``: not in
    the store, ambiguous, or not decided yet."""
    reason: str

    @classmethod
    def of(cls, gate: Gate) -> GateOut:
        return cls(checkpoint=gate.checkpoint, answer=gate.answer, reason=gate.reason)


class Problem(BaseModel):
    """An error: what is wrong and how to fix it."""

    detail: str | list[dict[str, Any]]
