"""``tripwire audit verify``: recompute the decision log's hash chain.

Each decision's ``record_hash`` is sha256 over its predecessor's hash and its own fields
(``repo.decision_fields``). Walking the log in id order and recomputing every hash finds:

- an **altered** record: its fields no longer hash to its ``record_hash``;
- a **removed** record: the next record's ``prev_hash`` names a hash no longer in the chain;
- a **reordered or re-linked** record: the same check, since ``prev_hash`` is hashed too.

Removing the *last* records leaves a shorter chain that is still consistent; to catch that,
keep the head hash this command prints somewhere the database's writers cannot change, and pass
it back with ``--head``. Someone able to rewrite every hash after a change can also forge a
consistent chain; the anchored head catches that too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tripwire.store.models import Decision
from tripwire.store.repo import GENESIS_HASH, decision_fields, record_hash_of


@dataclass(frozen=True, slots=True)
class ChainBreak:
    """The first record at which the chain does not verify."""

    decision_id: int
    kind: Literal["altered", "removed", "head_missing"]
    message: str


@dataclass(frozen=True, slots=True)
class AuditReport:
    checked: int
    """Records whose hash was recomputed."""
    head: str
    """The last record's hash (the genesis hash for an empty log)."""
    broken: ChainBreak | None

    @property
    def ok(self) -> bool:
        return self.broken is None


def _describe(decision: Decision) -> str:
    return (
        f"decision {decision.id} (checkpoint {decision.checkpoint_id}, rule "
        f"{decision.rule_id!r}, {decision.verdict}, {decision.decided_at:%Y-%m-%d %H:%M:%S})"
    )


def verify_chain(session: Session, *, expected_head: str | None = None) -> AuditReport:
    """Recompute every record's hash in id order; stop at the first break."""
    prev_hash, prev_id = GENESIS_HASH, None
    checked = 0
    seen_head = expected_head is None
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
        seen_head = seen_head or decision.record_hash == expected_head
    if not seen_head:
        total = session.scalar(select(func.count()).select_from(Decision)) or 0
        return AuditReport(
            checked,
            prev_hash,
            ChainBreak(
                prev_id or 0,
                "head_missing",
                f"the anchored head {expected_head} is not in the chain of {total} records: "
                "records at the end of the log were removed or the chain was rewritten",
            ),
        )
    return AuditReport(checked, prev_hash, None)
