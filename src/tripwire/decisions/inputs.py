"""The one join from stored results to the policy engine.

Which proxy evaluation counts for a checkpoint, the engine's view of it (a ``Snapshot`` with
per-item outcomes), and where the checkpoint stands in its run (a ``RunState``: the baseline,
its time, the looks) are answered here and nowhere else. The live decision, ``tripwire decide``
and ``tripwire backtest`` all read through these functions, and the run state is the fold of
``RunState.after`` that the pure replay (``tripwire.policy.backtest``) uses too.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, object_session, selectinload

from tripwire.lineage.graph import (
    compute_of,
    declared_parents,
    order_key,
    previous_in_run,
    resolve_parent,
    with_parents,
)
from tripwire.policy.backtest import RunState, nearest_ancestor
from tripwire.policy.inputs import Score, Snapshot
from tripwire.store.models import (
    Checkpoint,
    CheckpointState,
    Evaluation,
    Job,
    JobKind,
    TaskScore,
    review_held,
)
from tripwire.store.outcomes import unpack_hashes, unpack_values


def counted_evaluations(
    session: Session, checkpoint_ids: Iterable[int], suite_hash: str | None
) -> dict[int, Evaluation]:
    """The proxy evaluation that counts for each checkpoint: the one of ``suite_hash`` (the
    policy's proxy suite) when there is one, else the latest proxy evaluation."""
    ids = list(checkpoint_ids)
    if not ids:
        return {}
    chosen: dict[int, Evaluation] = {}
    for evaluation in session.scalars(
        select(Evaluation)
        .where(Evaluation.checkpoint_id.in_(ids), Evaluation.kind == "proxy")
        .order_by(Evaluation.id)
    ):
        held = chosen.get(evaluation.checkpoint_id)
        if held is None or held.suite_hash != suite_hash:
            chosen[evaluation.checkpoint_id] = evaluation
    return chosen


def counted_evaluation(
    session: Session, checkpoint_id: int, suite_hash: str | None
) -> Evaluation | None:
    """:func:`counted_evaluations` for one checkpoint."""
    return counted_evaluations(session, [checkpoint_id], suite_hash).get(checkpoint_id)


_HASHES: dict[str, tuple[str, ...]] = {}


def _item_hashes(score: TaskScore) -> tuple[str, ...]:
    """Item sets are shared by many evaluations: unpack each once per process.

    Keyed by the item set's content digest, never its row id: one process may read several
    databases (a worker after a re-configuration, the tests), and row ids repeat across them.
    """
    digest = score.item_set.digest
    found = _HASHES.get(digest)
    if found is None:
        if len(_HASHES) > 2048:
            _HASHES.clear()
        found = _HASHES[digest] = tuple(unpack_hashes(score.item_set))
    return found


def score_of(s: TaskScore) -> Score:
    """The engine's view of one stored task score, per-item outcomes included."""
    return Score(
        task=s.task,
        score=s.score,
        stderr=s.stderr,
        n_items=s.n_items,
        higher_is_better=s.higher_is_better,
        item_hashes=_item_hashes(s),
        item_values=unpack_values(s.outcomes),
        item_key=s.item_set.digest,
        estimator=s.estimator,
        shared_se=s.shared_se,
    )


def snapshot(checkpoint: Checkpoint, evaluation: Evaluation, run: str) -> Snapshot:
    """The engine's view of an evaluation, per-item outcomes included."""
    scores = {s.task: score_of(s) for s in evaluation.scores}
    session = object_session(checkpoint)
    flop = (
        compute_of(session, checkpoint).cumulative.effective
        if session is not None
        else checkpoint.training_flop
    )
    return Snapshot(
        checkpoint=checkpoint.content_hash,
        run=run,
        step=checkpoint.step,
        scores=scores,
        training_flop=flop,
        evaluated_at=evaluation.created_at,
    )


def with_scores(session: Session, evaluation_ids: Iterable[int]) -> list[Evaluation]:
    """Evaluations with their scores and item sets loaded in two queries."""
    return list(
        session.scalars(
            select(Evaluation)
            .where(Evaluation.id.in_(list(evaluation_ids)))
            .options(selectinload(Evaluation.scores).selectinload(TaskScore.item_set))
            .order_by(Evaluation.id)
        )
    )


def is_held(checkpoint: Checkpoint) -> bool:
    """Whether the checkpoint is held for review (a held checkpoint never becomes a baseline)."""
    return review_held(checkpoint.meta)


def deep_dispatched(session: Session, checkpoint_ids: Iterable[int]) -> set[int]:
    """The checkpoints among ``checkpoint_ids`` with a deep evaluation dispatched."""
    ids = list(checkpoint_ids)
    if not ids:
        return set()
    return set(
        session.scalars(
            select(Job.checkpoint_id).where(
                Job.checkpoint_id.in_(ids), Job.kind == JobKind.deep_eval
            )
        )
    )


def earlier_in_run(session: Session, checkpoint: Checkpoint) -> list[Checkpoint]:
    """The run's checkpoints decided before ``checkpoint`` would be, in step order."""
    mine = order_key(checkpoint)
    found = [
        c
        for c in session.scalars(select(Checkpoint).where(Checkpoint.run_id == checkpoint.run_id))
        if c.id != checkpoint.id and order_key(c) < mine
    ]
    return sorted(found, key=order_key)


def run_state(session: Session, checkpoint: Checkpoint, suite_hash: str | None) -> RunState | None:
    """Where ``checkpoint`` stands in its run: the fold of ``RunState.after`` over the run's
    earlier decided checkpoints (a deep evaluation dispatched makes one the baseline unless it
    is held). None while an earlier checkpoint is still undecided: decide in step order.

    Reads the columns the fold needs, in three indexed queries, not the run's rows: a decision
    costs little more at the run's 10,000th checkpoint than at its tenth."""
    mine = order_key(checkpoint)
    earlier = sorted(
        (
            row
            for row in session.execute(
                select(
                    Checkpoint.step,
                    Checkpoint.id,
                    Checkpoint.state,
                    Checkpoint.content_hash,
                    Checkpoint.meta,
                ).where(Checkpoint.run_id == checkpoint.run_id, Checkpoint.id != checkpoint.id)
            ).tuples()
            if _key(row[0], row[1]) < mine
        ),
        key=lambda row: _key(row[0], row[1]),
    )
    if any(r[2] not in (CheckpointState.decided, CheckpointState.failed) for r in earlier):
        return None
    decided = [r for r in earlier if r[2] == CheckpointState.decided]
    times = _counted_times(session, [r[1] for r in decided], suite_hash)
    deep = deep_dispatched(session, [r[1] for r in decided])
    state = RunState()
    for _, checkpoint_id, _, content_hash, meta in decided:
        state = state.after(
            content_hash, times.get(checkpoint_id), checkpoint_id in deep, held=review_held(meta)
        )
    if state.baseline is None:  # no baseline in the run yet: the nearest across runs
        found = lineage_baseline(session, checkpoint, suite_hash)
        if found is not None:
            evaluation = counted_evaluation(session, found.checkpoint.id, suite_hash)
            at = evaluation.created_at if evaluation is not None else None
            looks = state.looks_in_run
            state = RunState(found.checkpoint.content_hash, at, looks, looks)
    return state


def _key(step: int | None, checkpoint_id: int) -> tuple[float, int]:
    """:func:`order_key` of a row's columns."""
    return (step if step is not None else math.inf, checkpoint_id)


def _counted_times(
    session: Session, checkpoint_ids: list[int], suite_hash: str | None
) -> dict[int, datetime]:
    """The ``created_at`` of :func:`counted_evaluations`, from three columns (same choice)."""
    if not checkpoint_ids:
        return {}
    chosen: dict[int, tuple[str, datetime]] = {}
    for checkpoint_id, digest, created_at in session.execute(
        select(Evaluation.checkpoint_id, Evaluation.suite_hash, Evaluation.created_at)
        .where(Evaluation.checkpoint_id.in_(checkpoint_ids), Evaluation.kind == "proxy")
        .order_by(Evaluation.id)
    ).tuples():
        held = chosen.get(checkpoint_id)
        if held is None or held[0] != suite_hash:
            chosen[checkpoint_id] = (digest, created_at)
    return {k: v[1] for k, v in chosen.items()}


@dataclass(frozen=True, slots=True)
class LineageBaseline:
    """The nearest deep-evaluated ancestor of a checkpoint, and how it was reached."""

    checkpoint: Checkpoint
    hops: int
    """1 for a parent or the run's previous checkpoint, 2 for theirs, ..."""


def can_be_baseline(session: Session, checkpoint: Checkpoint, suite_hash: str | None) -> bool:
    """Decided, a deep evaluation dispatched, not held, and a proxy evaluation to compare with:
    the same test the run's own fold applies (``RunState.after``)."""
    return (
        checkpoint.state == CheckpointState.decided
        and not is_held(checkpoint)
        and bool(deep_dispatched(session, [checkpoint.id]))
        and counted_evaluation(session, checkpoint.id, suite_hash) is not None
    )


def lineage_baseline(
    session: Session, checkpoint: Checkpoint, suite_hash: str | None
) -> LineageBaseline | None:
    """The baseline across runs: the nearest ancestor (previous checkpoint of a run, or a
    parent named in the metadata; ties go to the one with more training compute) that can be a
    baseline. None for a checkpoint whose lineage holds none (the baseline rule then fires)."""
    if not checkpoint.parents and not _run_has_parents(session, checkpoint):
        return None  # the common case, a run without parents: nothing outside it to look at
    rows: dict[int, Checkpoint] = {checkpoint.id: checkpoint}

    def neighbours(node: int) -> list[int]:
        c = rows[node]
        found = [previous_in_run(session, c)]
        found += [resolve_parent(session, ref) for ref in declared_parents(c)]
        out = []
        for n in found:
            if n is not None:
                rows[n.id] = n
                out.append(n.id)
        return out

    def rank(node: int) -> float:
        flop = compute_of(session, rows[node]).cumulative.effective
        return -1.0 if flop is None else flop

    hit = nearest_ancestor(
        checkpoint.id, neighbours, lambda n: can_be_baseline(session, rows[n], suite_hash), rank
    )
    return None if hit is None else LineageBaseline(rows[hit[0]], hit[1])


def _run_has_parents(session: Session, checkpoint: Checkpoint) -> bool:
    return bool(with_parents(session, checkpoint.run_id))
