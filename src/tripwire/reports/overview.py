"""The overview and the audit view: what needs a reviewer now, and the log with its chain status.

Both read stored rows only.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import Field
from sqlalchemy import case, func, select, true
from sqlalchemy.orm import Session

from tripwire.audit import verify_chain
from tripwire.decisions.inputs import is_held
from tripwire.decisions.read import sets_by_checkpoint
from tripwire.policy.engine import BASELINE_RULE_ID
from tripwire.reports.model import CheckpointRef, PolicyRef, SiteRow, _Model
from tripwire.store.models import (
    Checkpoint,
    CheckpointState,
    Decision,
    Evaluation,
    JobKind,
    LedgerEntry,
    Review,
    Run,
)
from tripwire.store.models import Job as JobRow


class RunRow(_Model):
    name: str
    checkpoints: int
    latest: CheckpointRef | None = None
    latest_state: str | None = None
    fired: int = 0
    """Checkpoints where a rule fired (the first baseline not counted)."""
    held: int = 0
    deep: int = 0


class CheckpointRow(_Model):
    checkpoint: CheckpointRef
    state: str
    discovered_at: datetime
    fired_rules: list[str] = Field(default_factory=list)
    severity: str | None = None
    held: bool = False


class OpenReview(_Model):
    """A checkpoint with a fired rule that no reviewer has acknowledged, approved or released."""

    checkpoint: CheckpointRef
    rules: list[str]
    severity: str
    fired_at: datetime
    """When the oldest unanswered decision was recorded."""
    age_h: float
    held: bool = False
    escalated: bool = False


class Overview(_Model):
    generated_at: datetime
    runs: list[RunRow] = Field(default_factory=list)
    latest: list[CheckpointRow] = Field(default_factory=list)
    open_reviews: list[OpenReview] = Field(default_factory=list)
    """Critical first, then the oldest."""
    holds: list[CheckpointRef] = Field(default_factory=list)


def _ref(checkpoint: Checkpoint) -> CheckpointRef:
    return CheckpointRef(
        content_hash=checkpoint.content_hash, step=checkpoint.step, run=checkpoint.run.name
    )


def open_reviews(session: Session, now: datetime | None = None) -> list[OpenReview]:
    """The review queue's open reviews (``tripwire.reviews.review_queue``: fired decisions
    nobody has acknowledged or approved) and its holds, held first, then critical, then oldest."""
    from tripwire.reviews import review_queue

    now = now or datetime.now(UTC)
    queue = review_queue(session)
    out = []
    for state in [*queue.holds, *queue.open]:
        since = state.waiting_since or state.held_since
        if since is None:
            continue
        out.append(
            OpenReview(
                checkpoint=_ref(state.checkpoint),
                rules=sorted({d.rule_id for d in state.unanswered or state.fired}),
                severity=state.severity or "alert",
                fired_at=since,
                age_h=max((now - since).total_seconds() / 3600, 0.0),
                held=state.held,
                escalated=state.escalated,
            )
        )
    return out


def overview(session: Session, now: datetime | None = None, latest: int = 12) -> Overview:
    """Runs, the latest checkpoints, open reviews and active holds."""
    now = now or datetime.now(UTC)
    runs = []
    for run in session.scalars(select(Run).order_by(Run.name)):
        checkpoints = sorted(run.checkpoints, key=lambda c: (c.step is None, c.step or 0, c.id))
        sets = sets_by_checkpoint(session, [c.id for c in checkpoints])
        deep = set(
            session.scalars(
                select(JobRow.checkpoint_id).where(
                    JobRow.checkpoint_id.in_([c.id for c in checkpoints]),
                    JobRow.kind == JobKind.deep_eval,
                )
            )
        )
        fired_count = sum(
            any(d.row.rule_id != BASELINE_RULE_ID for d in s[0].fired) for s in sets.values() if s
        )
        last = checkpoints[-1] if checkpoints else None
        runs.append(
            RunRow(
                name=run.name,
                checkpoints=len(checkpoints),
                latest=_ref(last) if last else None,
                latest_state=last.state.value if last else None,
                fired=fired_count,
                held=sum(is_held(c) for c in checkpoints),
                deep=len(deep),
            )
        )
    recent = session.scalars(
        select(Checkpoint)
        .order_by(Checkpoint.discovered_at.desc(), Checkpoint.id.desc())
        .limit(latest)
    ).all()
    recent_sets = sets_by_checkpoint(session, [c.id for c in recent])
    rows = []
    for c in recent:
        found = recent_sets.get(c.id)
        live = found[0] if found else None
        fired = [d for d in live.fired if d.row.rule_id != BASELINE_RULE_ID] if live else []
        rows.append(
            CheckpointRow(
                checkpoint=_ref(c),
                state=c.state.value,
                discovered_at=c.discovered_at,
                fired_rules=[d.row.rule_id for d in fired],
                severity="critical"
                if any(d.row.severity == "critical" for d in fired)
                else ("alert" if fired else None),
                held=is_held(c),
            )
        )
    holds = [
        _ref(c) for c in session.scalars(select(Checkpoint).order_by(Checkpoint.id)) if is_held(c)
    ]
    return Overview(
        generated_at=now,
        runs=runs,
        latest=rows,
        open_reviews=open_reviews(session, now),
        holds=holds,
    )


# ---------------------------------------------------------------- the audit view


class LedgerRow(_Model):
    seq: int
    kind: str
    ref_id: int
    checkpoint: CheckpointRef | None = None
    summary: str
    body_hash: str
    entry_hash: str
    created_at: datetime


class AuditPage(_Model):
    """The log, newest first, with the result of verifying its chains now."""

    generated_at: datetime
    ok: bool
    message: str
    """``intact`` or the first break ``tripwire audit verify`` names."""
    entries: int
    decisions_checked: int
    head: str
    signed: int = 0
    """Entries whose Ed25519 signature verified."""
    anchored: int = 0
    """Anchored heads found in the log with their hashes."""
    notes: list[str] = Field(default_factory=list)
    """What could not be checked, and why."""
    rows: list[LedgerRow] = Field(default_factory=list)
    page: int = 1
    pages: int = 1


def audit_page(session: Session, page: int = 1, per_page: int = 100) -> AuditPage:
    """One page of the ledger, newest first, and the chain status."""
    report = verify_chain(session)
    total = session.scalar(select(func.count()).select_from(LedgerEntry)) or 0
    pages = max(1, -(-total // per_page))
    page = min(max(page, 1), pages)
    entries = session.scalars(
        select(LedgerEntry)
        .order_by(LedgerEntry.id.desc())
        .offset((page - 1) * per_page)
        .limit(per_page)
    ).all()
    rows = [_ledger_row(session, e) for e in entries]
    return AuditPage(
        generated_at=datetime.now(UTC),
        ok=report.ok,
        message="intact" if report.broken is None else report.broken.message,
        entries=report.entries,
        decisions_checked=report.checked,
        head=report.head,
        signed=report.signed,
        anchored=report.anchored,
        notes=list(report.notes),
        rows=rows,
        page=page,
        pages=pages,
    )


def _ledger_row(session: Session, entry: LedgerEntry) -> LedgerRow:
    checkpoint: Checkpoint | None = None
    summary = f"{entry.kind} {entry.ref_id} (row deleted)"
    if entry.kind == "decision":
        d = session.get(Decision, entry.ref_id)
        if d is not None:
            checkpoint = session.get(Checkpoint, d.checkpoint_id)
            summary = f"{d.rule_id}: {d.verdict.replace('_', ' ')} ({d.policy_name})"
    elif entry.kind == "review":
        r = session.get(Review, entry.ref_id)
        if r is not None:
            checkpoint = session.get(Checkpoint, r.checkpoint_id)
            comment = f": {r.comment}" if r.comment else ""
            summary = f"{r.action.value} by {r.actor} ({r.role}){comment}"
    elif entry.kind == "evaluation":
        e = session.get(Evaluation, entry.ref_id)
        if e is not None:
            checkpoint = session.get(Checkpoint, e.checkpoint_id)
            summary = f"{e.kind} evaluation {e.suite_name} ({len(e.scores)} tasks)"
    return LedgerRow(
        seq=entry.id,
        kind=entry.kind,
        ref_id=entry.ref_id,
        checkpoint=_ref(checkpoint) if checkpoint is not None else None,
        summary=summary,
        body_hash=entry.body_hash,
        entry_hash=entry.entry_hash,
        created_at=entry.created_at,
    )


def site_rows(session: Session, run_ids: list[int] | None = None) -> list[SiteRow]:
    """Every run's line on the site index (or only those of ``run_ids``), in a few grouped
    queries (a report job updates its run's line without building every run's report)."""

    def of_runs(column: Any) -> Any:
        return column.in_(run_ids) if run_ids is not None else true()

    runs = {r.id: r.name for r in session.scalars(select(Run).where(of_runs(Run.id)))}
    counts = {
        run_id: (n, last, failed)
        for run_id, n, last, failed in session.execute(
            select(
                Checkpoint.run_id,
                func.count(Checkpoint.id),
                func.max(Checkpoint.step),
                func.sum(case((Checkpoint.state == CheckpointState.failed, 1), else_=0)),
            )
            .where(of_runs(Checkpoint.run_id))
            .group_by(Checkpoint.run_id)
        ).tuples()
    }
    fired: dict[int, set[int]] = {}
    critical: set[int] = set()
    policies: dict[int, list[PolicyRef]] = {}
    for run_id, checkpoint_id, severity, verdict, rule_id, name, digest in session.execute(
        select(
            Checkpoint.run_id,
            Decision.checkpoint_id,
            Decision.severity,
            Decision.verdict,
            Decision.rule_id,
            Decision.policy_name,
            Decision.policy_hash,
        )
        .join(Checkpoint, Checkpoint.id == Decision.checkpoint_id)
        .where(of_runs(Checkpoint.run_id))
        .order_by(Decision.id)
    ).tuples():
        ref = PolicyRef(name=name, hash=digest)
        if ref not in policies.setdefault(run_id, []):
            policies[run_id].append(ref)
        if verdict == "fired" and rule_id != BASELINE_RULE_ID:
            fired.setdefault(run_id, set()).add(checkpoint_id)
            if severity == "critical":
                critical.add(run_id)
    deep: dict[int, int] = {
        run_id: int(n)
        for run_id, n in session.execute(
            select(Checkpoint.run_id, func.count(func.distinct(JobRow.checkpoint_id)))
            .join(Checkpoint, Checkpoint.id == JobRow.checkpoint_id)
            .where(JobRow.kind == JobKind.deep_eval, of_runs(Checkpoint.run_id))
            .group_by(Checkpoint.run_id)
        ).tuples()
    }
    held: dict[int, int] = {}
    for run_id, meta in session.execute(
        select(Checkpoint.run_id, Checkpoint.meta).where(of_runs(Checkpoint.run_id))
    ).tuples():
        if (meta or {}).get("review_hold") and not (meta or {}).get("review_released"):
            held[run_id] = held.get(run_id, 0) + 1
    now = datetime.now(UTC)
    return [
        SiteRow(
            run=name,
            policies=policies.get(run_id, []),
            checkpoints=counts.get(run_id, (0, None, 0))[0],
            latest_step=counts.get(run_id, (0, None, 0))[1],
            fired=len(fired.get(run_id, ())),
            fired_severity="critical" if run_id in critical else "alert",
            deep=deep.get(run_id, 0),
            failed=int(counts.get(run_id, (0, None, 0))[2] or 0),
            held=held.get(run_id, 0),
            updated_at=now,
        )
        for run_id, name in sorted(runs.items(), key=lambda kv: kv[1])
    ]
