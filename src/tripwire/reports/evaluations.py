"""Which stored evaluation a page shows: the one a decision record names."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from tripwire.decisions.record import SubjectRecord
from tripwire.store.models import Evaluation


def latest_proxy(session: Session, checkpoint_id: int) -> Evaluation | None:
    return session.scalar(
        select(Evaluation)
        .where(Evaluation.checkpoint_id == checkpoint_id, Evaluation.kind == "proxy")
        .order_by(Evaluation.id.desc())
        .limit(1)
    )


def evaluation_of(
    session: Session, subject: SubjectRecord | None, checkpoint_id: int | None
) -> Evaluation | None:
    """The evaluation a decision record names; the latest proxy one for older records."""
    if subject is not None and subject.evaluation_id is not None:
        found = session.get(Evaluation, subject.evaluation_id)
        if found is not None:
            return found
    return latest_proxy(session, checkpoint_id) if checkpoint_id is not None else None
