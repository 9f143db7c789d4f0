"""The lineage graph in the store: a checkpoint's previous step in its run and the parents its
metadata names (content hashes, URIs or paths where they were seen), and the training compute
summed along it.

Compute is counted once per run: a checkpoint's own declared (or estimated) compute covers its
run from the start, so the compute of its lineage is its own plus, for every other run among its
ancestors, the most any ancestor of that run reached. A merge of two fine-tunes of one base
counts the base once.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from sqlalchemy import Text, and_, cast, or_, select
from sqlalchemy.orm import Session

from tripwire.sources.metadata import CONTENT_HASH_PATTERN
from tripwire.store.models import Checkpoint, CheckpointLocation

NO_PARENTS = "[]"
"""How an empty ``parents`` list is stored (JSON text)."""


def order_key(checkpoint: Checkpoint) -> tuple[float, int]:
    """Checkpoints of a run are decided in step order (no step: last, in discovery order)."""
    return (checkpoint.step if checkpoint.step is not None else math.inf, checkpoint.id)


def resolve_parent(session: Session, ref: str) -> Checkpoint | None:
    """The stored checkpoint a parent reference names: by content hash, or by a location (a
    path or URI, ``file://`` and a trailing ``/`` ignored). None when it is not stored (yet)."""
    if re.match(CONTENT_HASH_PATTERN, ref):
        return session.scalar(select(Checkpoint).where(Checkpoint.content_hash == ref))
    path = ref.removeprefix("file://").rstrip("/") or "/"
    return session.scalar(
        select(Checkpoint)
        .join(CheckpointLocation, CheckpointLocation.checkpoint_id == Checkpoint.id)
        .where(CheckpointLocation.path == path)
        .limit(1)
    )


def previous_in_run(session: Session, checkpoint: Checkpoint) -> Checkpoint | None:
    """The run's checkpoint just before ``checkpoint`` in decision order (``order_key``), in one
    indexed query."""
    same_run = select(Checkpoint).where(Checkpoint.run_id == checkpoint.run_id)
    if checkpoint.step is None:  # after every stepped one, and unstepped ones by id
        found = session.scalar(
            same_run.where(Checkpoint.step.is_(None), Checkpoint.id < checkpoint.id)
            .order_by(Checkpoint.id.desc())
            .limit(1)
        )
        if found is not None:
            return found
        return session.scalar(
            same_run.where(Checkpoint.step.is_not(None))
            .order_by(Checkpoint.step.desc(), Checkpoint.id.desc())
            .limit(1)
        )
    return session.scalar(
        same_run.where(
            or_(
                Checkpoint.step < checkpoint.step,
                and_(Checkpoint.step == checkpoint.step, Checkpoint.id < checkpoint.id),
            )
        )
        .order_by(Checkpoint.step.desc(), Checkpoint.id.desc())
        .limit(1)
    )


def with_parents(session: Session, run_id: int) -> list[Checkpoint]:
    """The run's checkpoints that name parents, in decision order (usually few: the query
    leaves the others in the database)."""
    found = session.scalars(
        select(Checkpoint).where(
            Checkpoint.run_id == run_id, cast(Checkpoint.parents, Text) != NO_PARENTS
        )
    )
    return sorted((c for c in found if c.parents), key=order_key)


def declared_parents(checkpoint: Checkpoint) -> list[str]:
    return [str(p) for p in (checkpoint.parents or [])]


def run_parents(session: Session, checkpoint: Checkpoint) -> list[str]:
    """The parents of ``checkpoint``'s run: its own, else those of the nearest earlier
    checkpoint of its run that names some (a fine-tune may name its base only once)."""
    own = declared_parents(checkpoint)
    if own:
        return own
    mine = order_key(checkpoint)
    for other in reversed(with_parents(session, checkpoint.run_id)):
        if order_key(other) < mine:
            return declared_parents(other)
    return []


@dataclass(frozen=True, slots=True)
class Compute:
    """Training compute in FLOP; None where unknown."""

    declared: float | None
    """From the metadata (``training_flop``), every term declared."""
    estimated: float | None
    """6·N·D from each config and token count, every term estimable."""
    effective: float | None
    """Each term declared where it is, else estimated: what compute rules use."""


@dataclass(frozen=True, slots=True)
class ComputeSummary:
    """A checkpoint's own run's compute and its lineage's (own plus every ancestor run once)."""

    own: Compute
    cumulative: Compute
    runs: list[str] = field(default_factory=list)
    """The ancestor runs counted, nearest first (the checkpoint's own excluded)."""
    unresolved: list[str] = field(default_factory=list)
    """Parent references not in the store: their compute is missing from the sums."""


def _own(c: Checkpoint) -> Compute:
    effective = c.training_flop if c.training_flop is not None else c.estimated_flop
    return Compute(c.training_flop, c.estimated_flop, effective)


def _add(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a + b


def _best(values: list[float | None]) -> float | None:
    return None if any(v is None for v in values) else max(v for v in values if v is not None)


def compute_of(session: Session, checkpoint: Checkpoint, *, limit: int = 1000) -> ComputeSummary:
    """Own and cumulative compute of ``checkpoint`` along its parents (each run counted once,
    at the most any of its ancestors reached)."""
    own = _own(checkpoint)
    by_run: dict[int, list[Compute]] = {}
    names: dict[int, str] = {}
    unresolved: list[str] = []
    seen = {checkpoint.id}
    queue = [checkpoint]
    while queue and len(seen) <= limit:
        node = queue.pop(0)
        for ref in run_parents(session, node):
            parent = resolve_parent(session, ref)
            if parent is None:
                unresolved.append(ref)
                continue
            if parent.id in seen:
                continue
            seen.add(parent.id)
            queue.append(parent)
            if parent.run_id != checkpoint.run_id:
                by_run.setdefault(parent.run_id, []).append(_own(parent))
                names[parent.run_id] = parent.run.name
    declared, estimated, effective = own.declared, own.estimated, own.effective
    for terms in by_run.values():
        declared = _add(declared, _best([t.declared for t in terms]))
        estimated = _add(estimated, _best([t.estimated for t in terms]))
        effective = _add(effective, _best([t.effective for t in terms]))
    if unresolved:  # a parent not stored: declared and estimated sums are unknown; the
        # effective one is a lower bound (the known part), so compute rules still see growth
        declared = estimated = None
    return ComputeSummary(
        own,
        Compute(declared, estimated, effective),
        [names[r] for r in by_run],
        unresolved,
    )
