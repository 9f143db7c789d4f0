"""``tripwire audit verify``: recompute the hash chains of the log.

Two chains are checked:

- **The ledger** (``tripwire.store.ledger``): one entry per decision, review and evaluation, in
  the order they were written. Each entry's ``body_hash`` is recomputed from its row and its
  ``entry_hash`` from the previous entry. This finds an **altered** row (its fields, a task score
  or an item-outcome vector, no longer match), a **removed** row (an entry whose row is gone), an
  **unlogged** row (a decision, review or evaluation with no entry), and a **removed or
  re-ordered entry** (the next entry does not follow its predecessor).
- **The decisions' own chain** (``record_hash`` over the previous decision's hash and the
  decision's fields), kept for records written before the ledger.

Removing the *last* entries leaves a shorter chain that is still consistent; to catch that,
keep the head hash this command prints somewhere the database's writers cannot change, and pass
it back with ``--head``. Someone able to rewrite every hash after a change can also forge a
consistent chain; the anchored head catches that too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from tripwire.store.ledger import (
    GENESIS_HASH,
    KINDS,
    MODELS,
    body_hash,
    decision_fields,
    entry_hash,
)
from tripwire.store.models import Decision, Evaluation, LedgerEntry, Review
from tripwire.store.repo import record_hash_of

BreakKind = Literal["altered", "removed", "unlogged", "head_missing"]


@dataclass(frozen=True, slots=True)
class ChainBreak:
    """The first place at which the log does not verify."""

    decision_id: int
    """The row's id (a decision's, or the ledger entry's row for other kinds)."""
    kind: BreakKind
    message: str
    record: str = "decision"
    """``decision``, ``review``, ``evaluation`` or ``ledger``."""


@dataclass(frozen=True, slots=True)
class AuditReport:
    checked: int
    """Decisions whose own chain hash was recomputed."""
    head: str
    """The last ledger entry's hash (the last decision's before the ledger existed; the
    genesis hash for an empty log)."""
    broken: ChainBreak | None
    entries: int = 0
    """Ledger entries verified."""

    @property
    def ok(self) -> bool:
        return self.broken is None


def _describe(decision: Decision) -> str:
    return (
        f"decision {decision.id} (checkpoint {decision.checkpoint_id}, rule "
        f"{decision.rule_id!r}, {decision.verdict}, {decision.decided_at:%Y-%m-%d %H:%M:%S})"
    )


def verify_chain(session: Session, *, expected_head: str | None = None) -> AuditReport:
    """Verify the decisions' chain, then the ledger; stop at the first break."""
    decisions = _verify_decisions(session)
    if decisions.broken is not None:
        return decisions
    ledger = _verify_ledger(session)
    head = ledger.head if ledger.entries else decisions.head
    report = AuditReport(decisions.checked, head, ledger.broken, ledger.entries)
    if report.broken is None and expected_head is not None:
        known = session.scalar(
            select(func.count())
            .select_from(LedgerEntry)
            .where(LedgerEntry.entry_hash == expected_head)
        ) or session.scalar(
            select(func.count()).select_from(Decision).where(Decision.record_hash == expected_head)
        )
        if not known:
            total = session.scalar(select(func.count()).select_from(LedgerEntry)) or 0
            return AuditReport(
                report.checked,
                head,
                ChainBreak(
                    0,
                    "head_missing",
                    f"the anchored head {expected_head} is not in the log of {total} entries: "
                    "entries at the end of the log were removed or the log was rewritten",
                    "ledger",
                ),
                report.entries,
            )
    return report


def _verify_decisions(session: Session) -> AuditReport:
    """The decisions' own chain, in id order."""
    prev_hash, prev_id = GENESIS_HASH, None
    checked = 0
    query = select(Decision).order_by(Decision.id).execution_options(yield_per=1000)
    for decision in session.scalars(query):
        if decision.prev_hash != prev_hash:
            after = "the start of the log" if prev_id is None else f"decision {prev_id}"
            gap = ""
            if prev_id is not None and decision.id > prev_id + 1:
                gap = f" (ids {prev_id + 1}..{decision.id - 1} are missing)"
            elif prev_id is None and decision.id > 1:
                gap = f" (ids 1..{decision.id - 1} are missing)"
            return AuditReport(
                checked,
                prev_hash,
                ChainBreak(
                    decision.id,
                    "removed",
                    f"{_describe(decision)} does not follow {after}: a record between them was "
                    f"removed or replaced{gap}",
                ),
            )
        if record_hash_of(decision.prev_hash, decision_fields(decision)) != decision.record_hash:
            return AuditReport(
                checked,
                prev_hash,
                ChainBreak(
                    decision.id,
                    "altered",
                    f"{_describe(decision)} was altered: its fields no longer match its hash",
                ),
            )
        checked += 1
        prev_hash, prev_id = decision.record_hash, decision.id
    return AuditReport(checked, prev_hash, None)


def _verify_ledger(session: Session) -> AuditReport:
    """Every entry against its row and its predecessor; then rows that have no entry."""
    prev = GENESIS_HASH
    prev_id: int | None = None
    count = 0
    logged: dict[str, set[int]] = {kind: set() for kind in KINDS}
    for entry in session.scalars(
        select(LedgerEntry).order_by(LedgerEntry.id).execution_options(yield_per=1000)
    ):
        where = f"ledger entry {entry.id} ({entry.kind} {entry.ref_id})"
        if entry.prev_hash != prev or entry.entry_hash != entry_hash(
            entry.prev_hash, entry.kind, entry.ref_id, entry.body_hash
        ):
            after = "the start of the log" if prev_id is None else f"entry {prev_id}"
            return AuditReport(
                0,
                prev,
                ChainBreak(
                    entry.ref_id,
                    "removed",
                    f"{where} does not follow {after}: entries were removed, re-ordered or "
                    "rewritten",
                    "ledger",
                ),
                count,
            )
        model = MODELS.get(entry.kind)
        row: object | None = None
        if model is Evaluation:
            row = session.scalar(
                select(Evaluation)
                .where(Evaluation.id == entry.ref_id)
                .options(selectinload(Evaluation.scores))
            )
        elif model is not None:
            row = session.get(model, entry.ref_id)
        if row is None:
            return AuditReport(
                0,
                prev,
                ChainBreak(
                    entry.ref_id,
                    "removed",
                    f"{where}: the {entry.kind} it records was deleted",
                    entry.kind,
                ),
                count,
            )
        if body_hash(entry.kind, row) != entry.body_hash:
            what = {
                "decision": "its fields",
                "review": "its fields",
                "evaluation": "its scores or item outcomes",
            }[entry.kind]
            return AuditReport(
                0,
                prev,
                ChainBreak(
                    entry.ref_id,
                    "altered",
                    f"{entry.kind} {entry.ref_id} was altered: {what} no longer match the hash "
                    f"logged in {where}",
                    entry.kind,
                ),
                count,
            )
        logged[entry.kind].add(entry.ref_id)
        prev, prev_id = entry.entry_hash, entry.id
        count += 1
    for kind, model in (("decision", Decision), ("review", Review), ("evaluation", Evaluation)):
        ids = set(session.scalars(select(model.id)))
        missing = sorted(ids - logged[kind])
        if missing:
            return AuditReport(
                0,
                prev,
                ChainBreak(
                    missing[0],
                    "unlogged",
                    f"{kind} {missing[0]} is not in the log: it was written outside Tripwire"
                    + (f" ({len(missing)} such {kind}s)" if len(missing) > 1 else ""),
                    kind,
                ),
                count,
            )
    return AuditReport(0, prev, None, count)
