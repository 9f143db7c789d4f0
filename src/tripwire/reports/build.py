"""Fill the report models from stored records, and write the pages.

Reports render what was recorded: the decision records (``tripwire.decisions``), the
evaluations they name, the jobs. No policy is loaded and nothing is decided again, so a report
written from any folder, with any policy file around, says what happened.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tripwire.decisions.inputs import is_held
from tripwire.decisions.read import DecisionSet, StoredDecision, decision_sets, sets_by_checkpoint
from tripwire.decisions.record import SubjectRecord
from tripwire.policy.backtest import compute_trigger
from tripwire.policy.engine import BASELINE_RULE_ID
from tripwire.reports.model import (
    ActionsRow,
    BaselineRef,
    CheckpointInfo,
    CheckpointReport,
    ComparisonRow,
    DecisionRow,
    DecisionSetRow,
    DeepResult,
    JobRow,
    PolicyRef,
    RuleBand,
    RunReport,
    ScoreRow,
    SuiteRef,
    TrajectoryPoint,
)
from tripwire.reports.paths import checkpoint_href
from tripwire.reports.render import write_checkpoint_report, write_run_report, write_site_index
from tripwire.store.models import (
    Checkpoint,
    Evaluation,
    Job,
    JobKind,
    Run,
    TaskScore,
)


def _latest_proxy(session: Session, checkpoint_id: int) -> Evaluation | None:
    return session.scalar(
        select(Evaluation)
        .where(Evaluation.checkpoint_id == checkpoint_id, Evaluation.kind == "proxy")
        .order_by(Evaluation.id.desc())
        .limit(1)
    )


def _evaluation_of(
    session: Session, subject: SubjectRecord | None, checkpoint_id: int | None
) -> Evaluation | None:
    """The evaluation a decision record names; the latest proxy one for older records."""
    if subject is not None and subject.evaluation_id is not None:
        found = session.get(Evaluation, subject.evaluation_id)
        if found is not None:
            return found
    return _latest_proxy(session, checkpoint_id) if checkpoint_id is not None else None


def _score_rows(scores: Sequence[TaskScore], baseline: Evaluation | None) -> list[ScoreRow]:
    base = {s.task: s.score for s in baseline.scores} if baseline is not None else {}
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
            )
        )
    return rows


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
    proxy = _evaluation_of(session, first.record.checkpoint if first else None, cp.id)
    baseline, base_subject = _baseline_checkpoint(session, first)
    base_eval = (
        _evaluation_of(session, base_subject, baseline.id if baseline else None)
        if baseline is not None
        else None
    )
    jobs = list(session.scalars(select(Job).where(Job.checkpoint_id == cp.id).order_by(Job.id)))
    deep = []
    for job in jobs:
        if job.kind != JobKind.deep_eval:
            continue
        evaluation = session.scalar(
            select(Evaluation).where(
                Evaluation.checkpoint_id == cp.id, Evaluation.suite_hash == job.suite_hash
            )
        )
        deep.append(
            DeepResult(
                suite_name=evaluation.suite_name if evaluation else Path(job.suite_path or "").stem,
                suite_hash=job.suite_hash or "",
                scores=_score_rows(evaluation.scores, None) if evaluation else [],
                state=job.state.value,
                error=job.error,
            )
        )
    return CheckpointReport(
        generated_at=now or datetime.now(UTC),
        checkpoint=CheckpointInfo(
            content_hash=cp.content_hash,
            run=cp.run.name,
            step=cp.step,
            stage=cp.stage,
            path=cp.path,
            locations=[loc.path for loc in cp.locations],
            training_flop=cp.training_flop,
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


def run_report(session: Session, run_id: int, now: datetime | None = None) -> RunReport:
    """A run's capability trajectory, from its stored evaluations and live decisions."""
    run = session.get(Run, run_id)
    if run is None:
        raise LookupError(f"no run with id {run_id}")
    checkpoints = sorted(run.checkpoints, key=lambda c: (c.step is None, c.step or 0, c.id))
    sets = sets_by_checkpoint(session, [c.id for c in checkpoints])
    deep_ids = set(
        session.scalars(
            select(Job.checkpoint_id).where(
                Job.checkpoint_id.in_([c.id for c in checkpoints]), Job.kind == JobKind.deep_eval
            )
        )
    )
    points = []
    tasks: list[str] = []
    policies: list[PolicyRef] = []
    bands: dict[tuple[str, str], RuleBand] = {}
    factor: float | None = None
    for cp in checkpoints:
        found = sets.get(cp.id)
        live = found[0] if found else None
        first = live.decisions[0] if live and live.decisions else None
        proxy = _evaluation_of(session, first.record.checkpoint if first else None, cp.id)
        all_fired = live.fired if live else []
        fired = [d for d in all_fired if d.row.rule_id != BASELINE_RULE_ID]
        baseline_evaluation = any(d.row.rule_id == BASELINE_RULE_ID for d in all_fired)
        if live is not None:
            ref = PolicyRef(name=live.policy_name, hash=live.policy_hash)
            if ref not in policies:
                policies.append(ref)
            for d in live.decisions:
                factor = factor or _compute_factor(d.record.rule)
                _collect_bands(d.record.rule, d.record.verdict.severity, bands)
        scores = {s.task: s.score for s in proxy.scores} if proxy else {}
        for task in scores:
            if task not in tasks:
                tasks.append(task)
        base = first.record.baseline if first else None
        points.append(
            TrajectoryPoint(
                step=cp.step,
                content_hash=cp.content_hash,
                state=cp.state.value,
                scores=scores,
                stderrs={s.task: s.stderr for s in proxy.scores} if proxy else {},
                fired=bool(fired),
                baseline_evaluation=baseline_evaluation,
                fired_rules=[d.row.rule_id for d in fired],
                fired_severity="critical"
                if any(d.record.verdict.severity == "critical" for d in fired)
                else ("alert" if fired else None),
                deep_evaluated=cp.id in deep_ids,
                held=is_held(cp),
                tokens_seen=cp.tokens_seen,
                training_flop=cp.training_flop,
                baseline_step=base.step if base else None,
                baseline_scores={
                    t: s.score
                    for t, s in (base.scores if base else {}).items()
                    if s.score is not None
                },
                report_href=checkpoint_href(cp.step, cp.content_hash),
            )
        )
    factor = factor or 4.0
    for point, fired_compute in zip(
        points, compute_trigger([p.training_flop for p in points], factor), strict=True
    ):
        point.compute_rule_fired = fired_compute
    expanded = [
        b.model_copy(update={"task": t})
        for b in bands.values()
        for t in (tasks if b.task == "*" else [b.task])
    ]
    return RunReport(
        generated_at=now or datetime.now(UTC),
        run=run.name,
        policies=policies,
        points=points,
        tasks=tasks,
        bands=list({(b.rule_id, b.task): b for b in expanded}.values()),
        compute_rule=f"every {factor:g}x training compute",
        compute_factor=factor,
    )


def _scores_of(subject: SubjectRecord | None) -> dict[str, float]:
    if subject is None:
        return {}
    return {t: s.score for t, s in subject.scores.items() if s.score is not None}


def _compute_factor(rule: dict[str, Any] | None) -> float | None:
    """The growth factor of a compute rule in a recorded rule definition (nested too)."""
    if not rule:
        return None
    if rule.get("type") == "compute" and rule.get("factor"):
        return float(rule["factor"])
    for child in rule.get("rules") or []:
        found = _compute_factor(child)
        if found:
            return found
    return None


def _collect_bands(
    rule: dict[str, Any] | None, severity: str, out: dict[tuple[str, str], RuleBand]
) -> None:
    """The delta and level rules (nested ones too) of a recorded rule definition."""
    if not rule:
        return
    kind = rule.get("type")
    sev = rule.get("severity", severity) if kind not in ("any", "all", "at_least") else severity
    for child in rule.get("rules") or []:
        _collect_bands(child, severity if kind in ("any", "all", "at_least") else sev, out)
    if kind not in ("delta", "level"):
        return
    for task in rule.get("benchmarks") or []:
        key = (str(rule.get("id")), str(task))
        if key in out:
            continue
        out[key] = RuleBand(
            rule_id=str(rule.get("id")),
            task=str(task),
            kind=kind,
            severity="critical" if sev == "critical" else "alert",
            threshold=rule.get("threshold"),
            scale=str(rule.get("scale", "points")),
            level=rule.get("level"),
            critical_level=rule.get("critical_level"),
        )


def write_reports(session: Session, checkpoint_id: int, out_dir: Path) -> dict[str, Path]:
    """Write one checkpoint's pages, its run's trajectory page and the site index."""
    report = checkpoint_report(session, checkpoint_id)
    paths = write_checkpoint_report(report, out_dir)
    cp = session.get(Checkpoint, checkpoint_id)
    assert cp is not None
    paths["run"] = write_run_report(run_report(session, cp.run_id), out_dir)
    runs = [run_report(session, r.id) for r in session.scalars(select(Run).order_by(Run.id))]
    paths["index"] = write_site_index(runs, out_dir)
    return paths


def write_all_reports(session: Session, out_dir: Path) -> Path:
    """Write every checkpoint's and run's pages from stored records; return the site index."""
    runs = []
    for run in session.scalars(select(Run).order_by(Run.id)):
        for cp in run.checkpoints:
            write_checkpoint_report(checkpoint_report(session, cp.id), out_dir)
        report = run_report(session, run.id)
        write_run_report(report, out_dir)
        runs.append(report)
    return write_site_index(runs, out_dir)
