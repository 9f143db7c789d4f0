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

Then **the seal** (``tripwire.store.seal``), when the process has the ledger key or its public
half: every signed entry's signature must verify (a forged append, or a chain recomputed after
an edit, fails here), no unsigned entry may come after the first anchored head, and every
anchored head must still be in the log with the same hash (a deleted tail or a rewritten log
fails here). ``--head`` still checks one head hash kept by hand.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from tripwire.store.ledger import (
    GENESIS_HASH,
    KINDS,
    MODELS,
    SEAL_KEY,
    body_hash,
    decision_fields,
    entry_hash,
    first,
)
from tripwire.store.models import Decision, Evaluation, LedgerEntry, Review
from tripwire.store.repo import record_hash_of

if TYPE_CHECKING:
    from tripwire.store.seal import AnchorReading, AnchorRecord, Seal, Verifier

BreakKind = Literal[
    "altered", "removed", "unlogged", "head_missing", "forged", "unsigned", "truncated", "anchor"
]


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
    signed: int = 0
    """Entries whose signature verified."""
    anchored: int = 0
    """Anchored heads found in the log with their hashes."""
    notes: tuple[str, ...] = ()
    """What was not checked, and why (no key, no anchor, entries after the last anchor)."""

    @property
    def ok(self) -> bool:
        return self.broken is None


def _describe(decision: Decision) -> str:
    return (
        f"decision {decision.id} (checkpoint {decision.checkpoint_id}, rule "
        f"{decision.rule_id!r}, {decision.verdict}, {decision.decided_at:%Y-%m-%d %H:%M:%S})"
    )


def verify_chain(
    session: Session, *, expected_head: str | None = None, seal: Seal | None = None
) -> AuditReport:
    """Verify the decisions' chain, the ledger, then its seal; stop at the first break.

    ``seal`` defaults to the one of the session's ``Database`` (``Database.for_settings``).
    """
    seal = seal if seal is not None else session.info.get(SEAL_KEY)
    decisions = _verify_decisions(session)
    if decisions.broken is not None:
        return decisions
    ledger, last_unsigned = _verify_ledger(session, seal.verifier if seal is not None else None)
    head = ledger.head if ledger.entries else decisions.head
    report = replace(ledger, checked=decisions.checked, head=head)
    if report.broken is None:
        report = _verify_seal(session, report, seal, last_unsigned)
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
            return replace(
                report,
                broken=ChainBreak(
                    0,
                    "head_missing",
                    f"the anchored head {expected_head} is not in the log of {total} entries: "
                    "entries at the end of the log were removed or the log was rewritten",
                    "ledger",
                ),
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


def _verify_ledger(session: Session, verifier: Verifier | None) -> tuple[AuditReport, int]:
    """Every entry against its row, its predecessor and its signature; then rows that have no
    entry. Also returns the last unsigned entry's id (0: none), judged against the anchor."""
    prev = GENESIS_HASH
    prev_id: int | None = None
    count = signed = last_unsigned = 0
    logged: dict[str, set[int]] = {kind: set() for kind in KINDS}

    def broken(ref_id: int, kind: BreakKind, message: str, record: str) -> tuple[AuditReport, int]:
        report = AuditReport(0, prev, ChainBreak(ref_id, kind, message, record), count, signed)
        return report, last_unsigned

    for entry in session.scalars(
        select(LedgerEntry).order_by(LedgerEntry.id).execution_options(yield_per=1000)
    ):
        where = f"ledger entry {entry.id} ({entry.kind} {entry.ref_id})"
        if entry.prev_hash != prev or entry.entry_hash != entry_hash(
            entry.prev_hash, entry.kind, entry.ref_id, entry.body_hash
        ):
            after = "the start of the log" if prev_id is None else f"entry {prev_id}"
            return broken(
                entry.ref_id,
                "removed",
                f"{where} does not follow {after}: entries were removed, re-ordered or rewritten",
                "ledger",
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
            return broken(
                entry.ref_id,
                "removed",
                f"{where}: the {entry.kind} it records was deleted",
                entry.kind,
            )
        if body_hash(entry.kind, row) != entry.body_hash:
            what = {
                "decision": "its fields",
                "review": "its fields",
                "evaluation": "its scores or item outcomes",
            }[entry.kind]
            return broken(
                entry.ref_id,
                "altered",
                f"{entry.kind} {entry.ref_id} was altered: {what} no longer match the hash "
                f"logged in {where}",
                entry.kind,
            )
        if entry.signature is None:
            last_unsigned = entry.id
        elif verifier:
            if not verifier.verify(entry.entry_hash, entry.key_id, entry.signature):
                unknown = entry.key_id not in verifier.keys
                return broken(
                    entry.ref_id,
                    "forged",
                    f"{where}: its signature does not verify"
                    + (f" (key {entry.key_id!r} is not a trusted key)" if unknown else "")
                    + ": it was written or rewritten without the ledger key",
                    "ledger",
                )
            signed += 1
        logged[entry.kind].add(entry.ref_id)
        prev, prev_id = entry.entry_hash, entry.id
        count += 1
    for kind, model in (("decision", Decision), ("review", Review), ("evaluation", Evaluation)):
        ids = set(session.scalars(select(model.id)))
        missing = sorted(ids - logged[kind])
        if missing:
            return broken(
                missing[0],
                "unlogged",
                f"{kind} {missing[0]} is not in the log: it was written outside Tripwire"
                + (f" ({len(missing)} such {kind}s)" if len(missing) > 1 else ""),
                kind,
            )
    return AuditReport(0, prev, None, count, signed), last_unsigned


def _records_of_this_log(
    session: Session, seal: Seal, reading: AnchorReading | None, notes: list[str]
) -> list[AnchorRecord]:
    """The anchored heads that belong to this log.

    Several databases may share one anchor (one home moved from SQLite to PostgreSQL); each
    head names its log by the hash of the log's first entry. Heads of another log are set
    aside only when this log's first entry carries a valid signature: a log rewritten from its
    first entry without the key must not escape its anchored heads by looking like another log.
    """
    if reading is None:
        return []
    start = first(session)
    genuine = (
        start is not None
        and start.signature is not None
        and bool(seal.verifier)
        and seal.verifier.verify(start.entry_hash, start.key_id, start.signature)
    )
    if not genuine or start is None:
        return list(reading.records)
    mine = [r for r in reading.records if not r.log or r.log == start.entry_hash]
    others = {r.log for r in reading.records if r.log and r.log != start.entry_hash}
    if others:
        notes.append(
            f"{len(reading.records) - len(mine)} anchored heads belong to "
            f"{len(others)} other log(s) sharing this anchor: not compared with this one"
        )
    return mine


def _verify_seal(
    session: Session, report: AuditReport, seal: Seal | None, last_unsigned: int
) -> AuditReport:
    """Signatures were checked with the ledger; here: unsigned entries and the anchor."""
    last_entry = session.scalar(select(func.max(LedgerEntry.id))) or 0
    notes: list[str] = []
    if seal is None or (not seal.verifier and seal.anchor is None):
        notes.append("the log is not sealed here: no ledger key and no anchor were configured")
        return replace(report, notes=tuple(notes))
    if not seal.verifier:
        notes.append(
            "signatures not checked: no ledger key or public key here "
            "(TRIPWIRE_LEDGER_KEY, TRIPWIRE_LEDGER_PUBLIC_KEYS)"
        )
    reading = seal.anchor.read() if seal.anchor is not None else None
    if reading is not None and reading.unreadable:
        return replace(
            report,
            notes=tuple(notes),
            broken=ChainBreak(
                0,
                "anchor",
                f"the anchor holds records that cannot be read ({', '.join(reading.unreadable[:3])}"
                f"{'...' if len(reading.unreadable) > 3 else ''}): it was edited",
                "anchor",
            ),
        )
    records = _records_of_this_log(session, seal, reading, notes)
    hashes = (
        dict(
            session.execute(
                select(LedgerEntry.id, LedgerEntry.entry_hash).where(
                    LedgerEntry.id.in_({r.entry_id for r in records})
                )
            ).all()
        )
        if records
        else {}
    )
    for record in sorted(records, key=lambda r: r.entry_id):
        where = (
            f"anchored head {record.entry_id} ({record.entry_hash[:16]}..., {record.anchored_at})"
        )
        if seal.verifier and not seal.verifier.verify(
            record.entry_hash, record.key_id, record.signature
        ):
            return replace(
                report,
                notes=tuple(notes),
                broken=ChainBreak(
                    record.entry_id,
                    "anchor",
                    f"{where}: its signature does not verify: the anchor was edited",
                    "anchor",
                ),
            )
        stored = hashes.get(record.entry_id)
        if stored is None:
            return replace(
                report,
                notes=tuple(notes),
                broken=ChainBreak(
                    record.entry_id,
                    "truncated",
                    f"{where} is gone from the log of {report.entries} entries: entries were "
                    "deleted",
                    "ledger",
                ),
            )
        if stored != record.entry_hash:
            return replace(
                report,
                notes=tuple(notes),
                broken=ChainBreak(
                    record.entry_id,
                    "truncated",
                    f"{where} now has hash {stored[:16]}...: the log up to it was rewritten",
                    "ledger",
                ),
            )
    last_anchored = max((r.entry_id for r in records), default=0)
    if seal.anchor is None:
        notes.append("no anchor configured: a deleted tail or unsigned entries would not show")
    elif not records and report.signed:
        return replace(
            report,
            notes=tuple(notes),
            broken=ChainBreak(
                0,
                "anchor",
                f"{report.signed} entries are signed but the anchor at {seal.anchor.location} "
                "holds no heads: it was removed or replaced; restore it from its copy",
                "anchor",
            ),
        )
    elif not records and last_entry:
        notes.append(
            "the log is not sealed yet (written without a ledger key): run `tripwire audit "
            "anchor` to seal it as it stands"
        )
        return replace(report, notes=tuple(notes))
    elif seal.verifier and last_unsigned > last_anchored:
        return replace(
            report,
            notes=tuple(notes),
            broken=ChainBreak(
                last_unsigned,
                "unsigned",
                f"ledger entry {last_unsigned} has no signature and no anchored head covers "
                "it: it was written without the ledger key",
                "ledger",
            ),
        )
    if seal.anchor is not None and last_entry > last_anchored:
        notes.append(
            f"{last_entry - last_anchored} entries after the last anchored head "
            f"({last_anchored}): a tail deleted there would not show"
        )
    return replace(report, notes=tuple(notes), anchored=len(records))
