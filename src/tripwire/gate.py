"""The deployment gate: may a checkpoint ship? ``GET /api/gate/{checkpoint}`` and ``tripwire
gate`` answer ``allowed`` (decided and not held), ``held`` (an active review hold) or ``unknown``
(not in the store, or not decided yet), with the reason in one line.

A hold is read with ``tripwire.decisions.inputs.is_held``, the function that keeps a held
checkpoint from becoming a baseline: the gate and the baselines cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sqlalchemy.orm import Session

from tripwire.decisions.inputs import is_held
from tripwire.reviews import CheckpointReview, review_state
from tripwire.store.models import Checkpoint, CheckpointState, ReviewAction

GateAnswerKind = Literal["allowed", "held", "unknown"]


@dataclass(frozen=True, slots=True)
class Gate:
    """The deployment gate's answer for one checkpoint."""

    checkpoint: str
    """The content hash, or the identifier asked about when no checkpoint matches."""
    answer: GateAnswerKind
    reason: str


def gate(session: Session, checkpoint: Checkpoint) -> Gate:
    """``held`` (an active hold), ``allowed`` (decided and not held) or ``unknown`` (not decided
    yet, or failed)."""
    if is_held(checkpoint):
        state = review_state(session, checkpoint)
        return Gate(checkpoint.content_hash, "held", state.hold_reason or "held for review")
    if checkpoint.state == CheckpointState.failed:
        return Gate(
            checkpoint.content_hash,
            "unknown",
            f"the checkpoint failed before it was decided: {checkpoint.error or 'no reason'}",
        )
    if checkpoint.state != CheckpointState.decided:
        return Gate(
            checkpoint.content_hash,
            "unknown",
            f"not decided yet (state: {checkpoint.state}); ask again when it is",
        )
    state = review_state(session, checkpoint)
    return Gate(checkpoint.content_hash, "allowed", _allowed_reason(state))


def _allowed_reason(state: CheckpointReview) -> str:
    last = next(
        (
            r
            for r in reversed(state.reviews)
            if r.action in (ReviewAction.approve, ReviewAction.release)
        ),
        None,
    )
    parts = ["decided and not held"]
    if last is not None:
        verb = "approved" if last.action == ReviewAction.approve else "released"
        parts.append(
            f"{verb} by {last.actor} ({last.role}) at {last.created_at:%Y-%m-%d %H:%M} UTC"
        )
    if state.unanswered:
        parts.append(f"{len(state.unanswered)} fired rule(s) await review")
    return "; ".join(parts)


EXIT_CODES: dict[GateAnswerKind, int] = {"allowed": 0, "held": 1, "unknown": 2}
"""``tripwire gate``'s exit status for each answer."""
