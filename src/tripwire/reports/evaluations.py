"""Which stored evaluation a page shows: the one a decision record names."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session, selectinload

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


def preload(
    session: Session, subjects: Iterable[tuple[SubjectRecord | None, int]]
) -> dict[int, Evaluation]:
    """:func:`evaluation_of` for many (subject, checkpoint id) pairs, with their scores, in
    three queries: by checkpoint id."""
    pairs = list(subjects)
    named = {s.evaluation_id for s, _ in pairs if s is not None and s.evaluation_id is not None}
    loaded = {e.id: e for e in _with_scores(session, Evaluation.id.in_(named))} if named else {}
    out: dict[int, Evaluation] = {}
    missing: list[int] = []
    for subject, checkpoint_id in pairs:
        found = loaded.get(subject.evaluation_id) if subject and subject.evaluation_id else None
        if found is not None:
            out[checkpoint_id] = found
        else:
            missing.append(checkpoint_id)
    if missing:
        latest = (
            select(func.max(Evaluation.id))
            .where(Evaluation.checkpoint_id.in_(missing), Evaluation.kind == "proxy")
            .group_by(Evaluation.checkpoint_id)
        )
        for evaluation in _with_scores(session, Evaluation.id.in_(latest.scalar_subquery())):
            out[evaluation.checkpoint_id] = evaluation
    return out


def _with_scores(session: Session, where: ColumnElement[bool]) -> list[Evaluation]:
    return list(
        session.scalars(select(Evaluation).where(where).options(selectinload(Evaluation.scores)))
    )
