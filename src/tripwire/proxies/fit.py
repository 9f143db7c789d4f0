"""``tripwire proxy fit``: read every checkpoint's stored full-item outcomes of a suite's task,
fit the 2PL, choose the anchors, validate on held-out checkpoints, and build the anchor file."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from tripwire.errors import TripwireError
from tripwire.proxies.anchors import choose_anchors, cross_validate
from tripwire.proxies.file import Anchor, AnchorFile, HeldOut, ItemTable, Provenance
from tripwire.proxies.irt import fit_2pl
from tripwire.store.models import Checkpoint, Evaluation, TaskScore
from tripwire.store.outcomes import unpack_hashes, unpack_values
from tripwire.suites import LoadedSuite

MIN_CHECKPOINTS = 8
"""Fewer checkpoints than this cannot both fit a 2PL and hold some out."""


class ProxyFitError(TripwireError):
    """The store holds too little to fit anchors for a task (which, and what to run)."""


def full_outcomes(
    session: Session, suite: LoadedSuite, task: str
) -> tuple[list[str], list[str], np.ndarray, str]:
    """(checkpoint hashes, item keys, outcomes by checkpoint and item, metric) of every
    checkpoint evaluated with ``suite`` on the task's most common item set (its full items)."""
    rows = session.execute(
        select(TaskScore, Checkpoint.content_hash)
        .join(Evaluation, TaskScore.evaluation_id == Evaluation.id)
        .join(Checkpoint, Evaluation.checkpoint_id == Checkpoint.id)
        .where(Evaluation.suite_hash == suite.content_hash, TaskScore.task == task)
        .options(selectinload(TaskScore.item_set))
        .order_by(Evaluation.id)
    ).all()
    if not rows:
        raise ProxyFitError(
            f"no stored results of task {task!r} under suite {suite.name} "
            f"({suite.content_hash[:12]}): evaluate checkpoints with it first and store the "
            "results (tripwire watch with it as the proxy suite, or as a deep suite)"
        )
    common, _ = Counter(s.item_set.digest for s, _ in rows).most_common(1)[0]
    latest: dict[str, TaskScore] = {}
    for score, checkpoint in rows:
        if score.item_set.digest == common:
            latest[checkpoint] = score
    first = next(iter(latest.values()))
    items = unpack_hashes(first.item_set)
    matrix = np.vstack([unpack_values(s.outcomes).astype(np.float64) for s in latest.values()])
    return list(latest), items, matrix, first.metric


def fit_anchor_file(
    session: Session,
    suite: LoadedSuite,
    task: str,
    *,
    n_anchors: int,
    folds: int = 5,
    seed: int = 0,
    floor: float = 0.0,
    version: str = "",
) -> AnchorFile:
    """The anchor file of ``task``: fitted on every checkpoint's full items, validated by
    ``folds``-fold cross-validation over checkpoints."""
    checkpoints, items, y, metric = full_outcomes(session, suite, task)
    if len(checkpoints) < MIN_CHECKPOINTS:
        raise ProxyFitError(
            f"{task}: {len(checkpoints)} checkpoints evaluated on the full items; the fit needs "
            f"at least {MIN_CHECKPOINTS}"
        )
    if np.any((y < 0) | (y > 1)):
        raise ProxyFitError(f"{task}: metric {metric} is not in [0, 1]; the 2PL needs accuracy")
    if n_anchors >= len(items):
        raise ProxyFitError(f"{task}: {n_anchors} anchors but only {len(items)} items")
    validation = cross_validate(y, n_anchors, folds=folds, seed=seed, floor=floor)
    fit = fit_2pl(y, floor=floor)
    chosen = choose_anchors(fit.items, n_anchors, seed)
    return AnchorFile(
        task=task,
        metric=metric,
        floor=floor,
        anchors=[
            Anchor(item=items[int(j)], weight=float(w))
            for j, w in zip(chosen.index, chosen.weight, strict=True)
        ],
        full=ItemTable(
            items=items,
            a=[round(float(v), 6) for v in fit.items.a],
            b=[round(float(v), 6) for v in fit.items.b],
        ),
        misfit_sd=validation.misfit_sd,
        held_out=HeldOut(
            folds=min(folds, len(checkpoints)),
            checkpoints=len(checkpoints),
            mae_points=100 * validation.mae,
            random_mae_points=100 * validation.random_mae,
            coverage_95=validation.coverage(),
        ),
        provenance=Provenance(
            suite=suite.name,
            suite_hash=suite.content_hash,
            checkpoints=checkpoints,
            created_at=datetime.now(UTC),
            tripwire=version,
        ),
    )
