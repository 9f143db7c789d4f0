"""Fill the report models from stored records, and write the pages.

Reports render what was recorded: the decision records (``tripwire.decisions``), the
evaluations they name, the jobs. No policy is loaded and nothing is decided again, so a report
written from any folder, with any policy file around, says what happened.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from tripwire.decisions.inputs import earlier_in_run, is_held, score_of
from tripwire.decisions.read import DecisionSet, StoredDecision, decision_sets
from tripwire.decisions.record import SubjectRecord
from tripwire.lineage.graph import compute_of, order_key
from tripwire.policy.compare import measure_change
from tripwire.policy.stats import mcnemar_midp
from tripwire.reports.evaluations import evaluation_of
from tripwire.reports.model import (
    ActionsRow,
    BaselineRef,
    ChangeRow,
    CheckpointInfo,
    CheckpointRef,
    CheckpointReport,
    ComparisonRow,
    DecisionRow,
    DecisionSetRow,
    DeepResult,
    JobRow,
    PolicyRef,
    ReviewRow,
    ScoreRow,
    SuiteRef,
)
from tripwire.reports.render import (
    read_site_rows,
    site_lock,
    write_audit_page,
    write_checkpoint_report,
    write_items_report,
    write_run_report,
    write_site_index,
)
from tripwire.reports.trajectory import run_report
from tripwire.store.models import (
    Checkpoint,
    Evaluation,
    Job,
    JobKind,
    Review,
    Run,
    TaskScore,
)


def _score_rows(
    scores: Sequence[TaskScore], baseline: Evaluation | None, previous: Evaluation | None = None
) -> list[ScoreRow]:
    base = {s.task: s.score for s in baseline.scores} if baseline is not None else {}
    before = {s.task: s for s in previous.scores} if previous is not None else {}
    rows = []
    for s in scores:
        b = base.get(s.task)
        sign = 1.0 if s.higher_is_better else -1.0
        rows.append(
            ScoreRow(
                task=s.task,
                metric=s.metric,
                score=s.score,
                stderr=s.stderr,
                n_items=s.n_items,
                num_fewshot=s.num_fewshot,
                baseline_score=b,
                delta_points=None if b is None else 100.0 * sign * (s.score - b),
                alert_level=s.alert_level,
                critical_level=s.critical_level,
                level_verdict=s.level_verdict,
                change=change_row(s, before[s.task]) if s.task in before else None,
            )
        )
    return rows


def change_row(current: TaskScore, reference: TaskScore) -> ChangeRow | None:
    """How ``current`` moved from ``reference``, paired on shared items: the estimate with a
    two-sided 95% interval and the p-value against no change (a view of two stored results,
    made when the page is written)."""
    change = measure_change(score_of(current), score_of(reference))
    if isinstance(change, str):
        return None
    est = change.est
    p = None
    if change.discordant is not None:
        p = min(
            1.0, 2 * min(mcnemar_midp(*change.discordant), mcnemar_midp(*change.discordant[::-1]))
        )
    return ChangeRow(
        estimate=100 * est.estimate,
        low=100 * est.lower(0.025),
        high=100 * est.upper(0.025),
        method=est.method,
        paired_items=est.n,
        discordant=change.discordant,
        p_no_change=p,
    )


def decision_row(stored: StoredDecision) -> DecisionRow:
    """A report row from a stored decision record."""
    row, record = stored.row, stored.record
    v = record.verdict
    unit = v.unit or None
    nan = float("nan")
    comparisons = [
        ComparisonRow(
            task=c.task,
            estimate=c.estimate if c.estimate is not None else nan,
            low=c.low if c.low is not None else float("-inf"),
            high=c.high if c.high is not None else float("inf"),
            unit=unit or "points",
            method=c.method,
            paired_items=c.paired_items,
            crossed=c.crossed,
            p_value=c.p_value,
            adjusted_p=c.adjusted_p,
            alpha=c.alpha,
            discordant=c.discordant,
            discordance=c.discordance,
            unshared=c.unshared,
            note=c.note,
        )
        for c in v.comparisons
    ]
    interval = v.interval or (None, None)
    return DecisionRow(
        rule_id=v.rule_id,
        rule_type=v.rule_type,
        severity=v.severity,
        verdict=v.verdict,
        threshold=v.threshold,
        statistic=v.statistic,
        interval_low=interval[0],
        interval_high=interval[1],
        unit=unit,
        p_value=v.p_value,
        mode=v.mode,
        alpha=v.alpha,
        explanation=v.explanation,
        warnings=list(v.warnings),
        comparisons=comparisons,
        actions=ActionsRow(
            deep_suites=[Path(p).name for p in v.actions.deep_suites],
            notify=list(v.actions.notify),
            review_hold=v.actions.review_hold,
        ),
        decided_at=row.decided_at,
        record_hash=row.record_hash,
    )


def _ref(checkpoint: Checkpoint) -> CheckpointRef:
    return CheckpointRef(
        content_hash=checkpoint.content_hash, step=checkpoint.step, run=checkpoint.run.name
    )


def _previous_deep(
    session: Session, earlier: list[Checkpoint], suite_name: str
) -> tuple[Checkpoint, Evaluation] | None:
    """The latest earlier checkpoint of the run with a deep evaluation of ``suite_name``."""
    by_id = {c.id: c for c in earlier}
    if not by_id:
        return None
    found = session.scalars(
        select(Evaluation).where(
            Evaluation.checkpoint_id.in_(list(by_id)),
            Evaluation.kind == "deep",
            Evaluation.suite_name == suite_name,
        )
    ).all()
    if not found:
        return None
    latest = max(found, key=lambda e: (order_key(by_id[e.checkpoint_id]), e.id))
    return by_id[latest.checkpoint_id], latest


def _set_row(decisions: DecisionSet) -> DecisionSetRow:
    return DecisionSetRow(
        policy=PolicyRef(name=decisions.policy_name, hash=decisions.policy_hash),
        origin=decisions.origin,
        decisions=[decision_row(d) for d in decisions.decisions],
    )


def _baseline_checkpoint(
    session: Session, stored: StoredDecision | None
) -> tuple[Checkpoint | None, SubjectRecord | None]:
    if stored is None:
        return None, None
    subject = stored.record.baseline
    if stored.row.baseline_checkpoint_id is not None:
        return session.get(Checkpoint, stored.row.baseline_checkpoint_id), subject
    if subject is not None and subject.checkpoint:
        found = session.scalar(
            select(Checkpoint).where(Checkpoint.content_hash == subject.checkpoint)
        )
        return found, subject
    return None, subject


def checkpoint_report(
    session: Session, checkpoint_id: int, now: datetime | None = None
) -> CheckpointReport:
    """Everything a reviewer needs about one checkpoint, from its stored records."""
    cp = session.get(Checkpoint, checkpoint_id)
    if cp is None:
        raise LookupError(f"no checkpoint with id {checkpoint_id}")
    sets = decision_sets(session, cp.id)
    live = sets[0] if sets else None
    first = live.decisions[0] if live and live.decisions else None
    proxy = evaluation_of(session, first.record.checkpoint if first else None, cp.id)
    baseline, base_subject = _baseline_checkpoint(session, first)
    base_eval = (
        evaluation_of(session, base_subject, baseline.id if baseline else None)
        if baseline is not None
        else None
    )
    jobs = list(session.scalars(select(Job).where(Job.checkpoint_id == cp.id).order_by(Job.id)))
    earlier = earlier_in_run(session, cp)
    later = [c for c in cp.run.checkpoints if order_key(c) > order_key(cp)]
    previous_cp = earlier[-1] if earlier else None
    next_cp = min(later, key=order_key) if later else None
    deep = []
    for job in jobs:
        if job.kind != JobKind.deep_eval:
            continue
        evaluation = session.scalar(
            select(Evaluation).where(
                Evaluation.checkpoint_id == cp.id, Evaluation.suite_hash == job.suite_hash
            )
        )
        name = evaluation.suite_name if evaluation else Path(job.suite_path or "").stem
        before = _previous_deep(session, earlier, name)
        deep.append(
            DeepResult(
                suite_name=name,
                suite_hash=job.suite_hash or "",
                scores=_score_rows(evaluation.scores, None, before[1] if before else None)
                if evaluation
                else [],
                state=job.state.value,
                error=job.error,
                previous=_ref(before[0]) if before else None,
                logs=[str(x) for x in (evaluation.versions or {}).get("logs") or []]
                if evaluation
                else [],
            )
        )
    compute = compute_of(session, cp).cumulative
    return CheckpointReport(
        generated_at=now or datetime.now(UTC),
        checkpoint=CheckpointInfo(
            content_hash=cp.content_hash,
            run=cp.run.name,
            step=cp.step,
            stage=cp.stage,
            path=cp.path,
            locations=[loc.path for loc in cp.locations],
            training_flop=compute.effective,
            declared_flop=compute.declared,
            estimated_flop=compute.estimated,
            params_total=cp.params_total,
            params_active=cp.params_active,
            tokens_seen=cp.tokens_seen,
            state=cp.state.value,
            error=cp.error,
        ),
        policy=PolicyRef(name=live.policy_name, hash=live.policy_hash) if live else None,
        baseline=BaselineRef(content_hash=baseline.content_hash, step=baseline.step)
        if baseline
        else None,
        proxy_suite=SuiteRef(name=proxy.suite_name, hash=proxy.suite_hash) if proxy else None,
        proxy_scores=_score_rows(proxy.scores, base_eval) if proxy else [],
        decisions=[decision_row(d) for d in live.decisions] if live else [],
        other_decisions=[_set_row(s) for s in sets[1:]],
        review_hold=is_held(cp),
        previous=_ref(previous_cp) if previous_cp else None,
        next=_ref(next_cp) if next_cp else None,
        reviews=[
            ReviewRow(
                created_at=r.created_at,
                action=r.action.value,
                actor=r.actor,
                role=r.role,
                comment=r.comment,
                decision_id=r.decision_id,
            )
            for r in session.scalars(
                select(Review).where(Review.checkpoint_id == cp.id).order_by(Review.id)
            )
        ],
        deep=deep,
        jobs=[
            JobRow(
                kind=j.kind.value,
                state=j.state.value,
                attempts=j.attempts,
                error=j.error,
                created_at=j.created_at,
                finished_at=j.finished_at,
            )
            for j in jobs
        ],
        versions={k: str(v) for k, v in (proxy.versions if proxy else {}).items()},
    )


def write_reports(session: Session, checkpoint_id: int, out_dir: Path) -> dict[str, Path]:
    """Write one checkpoint's pages, its run's trajectory page and the site index (its run's
    row replaced in the rows last written, ``site.json``): a report job costs what its run
    costs, whatever else the store holds."""
    from tripwire.reports.items import baseline_items
    from tripwire.reports.overview import site_rows

    report = checkpoint_report(session, checkpoint_id)
    paths = write_checkpoint_report(report, out_dir)
    items = baseline_items(session, checkpoint_id)
    if items is not None:
        paths["items"] = write_items_report(items, out_dir)
    cp = session.get(Checkpoint, checkpoint_id)
    assert cp is not None
    paths["run"] = write_run_report(run_report(session, cp.run_id), out_dir)
    with site_lock(out_dir):  # two report jobs of two runs: neither loses the other's row
        listed = read_site_rows(out_dir)
        if listed is None:
            rows = site_rows(session)
        else:
            rows = [r for r in listed if r.run != cp.run.name] + site_rows(session, [cp.run_id])
        paths["index"] = write_site_index(rows, out_dir)
    return paths


def write_all_reports(session: Session, out_dir: Path) -> Path:
    """Write every checkpoint's, run's and item page, and the audit page, from stored records
    (a self-contained folder for auditors); return the site index."""
    from tripwire.reports.items import baseline_items
    from tripwire.reports.overview import audit_page

    runs = []
    for run in session.scalars(select(Run).order_by(Run.id)):
        for cp in run.checkpoints:
            write_checkpoint_report(checkpoint_report(session, cp.id), out_dir)
            items = baseline_items(session, cp.id)
            if items is not None:
                write_items_report(items, out_dir)
        report = run_report(session, run.id)
        write_run_report(report, out_dir)
        runs.append(report)
    write_audit_page(audit_page(session, 1, per_page=1_000_000), out_dir)
    return write_site_index(runs, out_dir)
