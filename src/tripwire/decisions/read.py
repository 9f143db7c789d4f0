"""Reading stored decisions back: by checkpoint, grouped by the policy that made them.

A checkpoint may carry decisions of several policies: the live loop's, and any appended later
by ``tripwire decide --policy``. The *primary* set is the live one (the one that dispatched);
the others are shown beside it, never instead of it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from tripwire.decisions.record import DecisionRecord, read_record
from tripwire.store.models import Decision


@dataclass(frozen=True, slots=True)
class StoredDecision:
    """A decision-log row with its typed record."""

    row: Decision
    record: DecisionRecord


@dataclass(frozen=True, slots=True)
class DecisionSet:
    """Every rule of one policy evaluated for one checkpoint."""

    policy_name: str
    policy_hash: str
    origin: str
    decisions: list[StoredDecision] = field(default_factory=list)

    @property
    def fired(self) -> list[StoredDecision]:
        return [d for d in self.decisions if d.row.verdict == "fired"]


def decision_sets(session: Session, checkpoint_id: int) -> list[DecisionSet]:
    """The checkpoint's decisions, one set per policy: the live set first, then the others in
    the order they were appended."""
    return sets_by_checkpoint(session, [checkpoint_id]).get(checkpoint_id, [])


def sets_by_checkpoint(
    session: Session, checkpoint_ids: Iterable[int]
) -> dict[int, list[DecisionSet]]:
    """:func:`decision_sets` for many checkpoints in one query."""
    ids = list(checkpoint_ids)
    if not ids:
        return {}
    grouped: dict[int, dict[str, DecisionSet]] = defaultdict(dict)
    for row in session.scalars(
        select(Decision).where(Decision.checkpoint_id.in_(ids)).order_by(Decision.id)
    ):
        record = read_record(row)
        sets = grouped[row.checkpoint_id]
        if row.policy_hash not in sets:
            sets[row.policy_hash] = DecisionSet(row.policy_name, row.policy_hash, record.origin)
        sets[row.policy_hash].decisions.append(StoredDecision(row, record))
    out: dict[int, list[DecisionSet]] = {}
    for checkpoint_id, sets in grouped.items():
        ordered = list(sets.values())
        ordered.sort(key=lambda s: (s.origin != "live", s.decisions[0].row.id))
        out[checkpoint_id] = ordered
    return out


def primary(sets: list[DecisionSet]) -> DecisionSet | None:
    """The set that stands for the checkpoint: the live one (the first by construction)."""
    return sets[0] if sets else None


def observed_discordance(session: Session, limit: int = 5000) -> dict[str, list[float]]:
    """Discordance observed in stored paired comparisons (the latest ``limit`` decisions), per
    task: what ``tripwire policy check`` plans with when the policy states none."""
    found: dict[str, list[float]] = defaultdict(list)
    seen: set[tuple[int, str]] = set()
    rows = session.scalars(select(Decision).order_by(Decision.id.desc()).limit(limit))
    for row in rows:
        record = read_record(row)
        for c in _comparisons(record):
            key = (row.checkpoint_id, c[0])
            if key in seen:  # one figure per checkpoint and task, whatever the rules
                continue
            seen.add(key)
            found[c[0]].append(c[1])
    return dict(found)


def _comparisons(record: DecisionRecord) -> list[tuple[str, float]]:
    out = []
    stack = [record.verdict]
    while stack:
        verdict = stack.pop()
        stack.extend(verdict.children)
        if verdict.rule_type != "delta":
            continue
        for c in verdict.comparisons:
            d = c.discordance
            if d is None and c.discordant is not None and c.paired_items:
                d = (c.discordant[0] + c.discordant[1]) / c.paired_items
            if d is not None:
                out.append((c.task, d))
    return out
