"""Fill the report models from the store, and write the pages."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from tripwire.policy.schema import LoadedPolicy
from tripwire.reports.model import (
    ActionsRow,
    BaselineRef,
    CheckpointInfo,
    CheckpointReport,
    ComparisonRow,
    DecisionRow,
    DeepResult,
    JobRow,
    PolicyRef,
    RunReport,
    ScoreRow,
    SuiteRef,
    TrajectoryPoint,
)
from tripwire.reports.paths import checkpoint_href
from tripwire.reports.render import write_checkpoint_report, write_run_report, write_site_index
from tripwire.store.models import (
    Checkpoint,
    Decision,
    Evaluation,
    Job,
    JobKind,
    Run,
    TaskScore,
)


def _proxy(session: Session, checkpoint_id: int, suite_hash: str | None) -> Evaluation | None:
    query = select(Evaluation).where(
        Evaluation.checkpoint_id == checkpoint_id, Evaluation.kind == "proxy"
    )
    if suite_hash is not None:
        exact = session.scalar(query.where(Evaluation.suite_hash == suite_hash))
        if exact is not None:
            return exact
    return session.scalar(query.order_by(Evaluation.id.desc()).limit(1))


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


def _decision_row(decision: Decision, units: dict[str, str]) -> DecisionRow:
    unit = units.get(decision.rule_id)
    comparisons = [
        ComparisonRow(
            task=c["task"],
            estimate=c["estimate"] if c["estimate"] is not None else float("nan"),
            low=c["low"] if c["low"] is not None else float("-inf"),
            high=c["high"] if c["high"] is not None else float("inf"),
            unit=unit or "points",
            method=c["method"],
            paired_items=c["paired_items"],
            crossed=c["crossed"],
            p_value=c["p_value"],
        )
        for c in decision.inputs.get("comparisons", [])
    ]
    return DecisionRow(
        rule_id=decision.rule_id,
        rule_type=decision.rule_type,
        severity=decision.severity,
        verdict=decision.verdict,
        threshold=decision.inputs.get("threshold"),
        statistic=decision.statistic,
        interval_low=decision.interval_low,
        interval_high=decision.interval_high,
        unit=unit,
        p_value=decision.p_value,
        explanation=decision.explanation,
        comparisons=comparisons,
        actions=ActionsRow(
            deep_suites=[Path(p).name for p in decision.actions.get("deep_suites", [])],
            notify=list(decision.actions.get("notify", [])),
            review_hold=bool(decision.actions.get("review_hold", False)),
        ),
        decided_at=decision.decided_at,
        record_hash=decision.record_hash,
    )


def checkpoint_report(
    session: Session, policy: LoadedPolicy, checkpoint_id: int, now: datetime | None = None
) -> CheckpointReport:
    """Everything a reviewer needs about one checkpoint under ``policy``."""
    cp = session.get(Checkpoint, checkpoint_id)
    if cp is None:
        raise LookupError(f"no checkpoint with id {checkpoint_id}")
    decisions = list(
        session.scalars(
            select(Decision)
            .where(Decision.checkpoint_id == cp.id, Decision.policy_hash == policy.content_hash)
            .order_by(Decision.id)
        )
    )
    baseline_id = next(
        (d.baseline_checkpoint_id for d in decisions if d.baseline_checkpoint_id), None
    )
    baseline = session.get(Checkpoint, baseline_id) if baseline_id else None
    proxy = _proxy(session, cp.id, policy.proxy_suite.content_hash)
    base_eval = (
        _proxy(session, baseline.id, proxy.suite_hash if proxy else None) if baseline else None
    )
    units = {r.rule_id: r.unit for r in policy.policy.rules}
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
        policy=PolicyRef(name=policy.name, hash=policy.content_hash),
        baseline=BaselineRef(content_hash=baseline.content_hash, step=baseline.step)
        if baseline
        else None,
        proxy_suite=SuiteRef(
            name=proxy.suite_name if proxy else policy.proxy_suite.name,
            hash=proxy.suite_hash if proxy else policy.proxy_suite.content_hash,
        ),
        proxy_scores=_score_rows(proxy.scores, base_eval) if proxy else [],
        decisions=[_decision_row(d, units) for d in decisions],
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


def run_report(
    session: Session, policy: LoadedPolicy, run_id: int, now: datetime | None = None
) -> RunReport:
    """A run's capability trajectory under ``policy``."""
    run = session.get(Run, run_id)
    if run is None:
        raise LookupError(f"no run with id {run_id}")
    points = []
    tasks: list[str] = [t.task for t in policy.proxy_suite.suite.tasks]
    for cp in sorted(run.checkpoints, key=lambda c: (c.step is None, c.step or 0, c.id)):
        proxy = _proxy(session, cp.id, policy.proxy_suite.content_hash)
        fired = list(
            session.scalars(
                select(Decision).where(
                    Decision.checkpoint_id == cp.id,
                    Decision.policy_hash == policy.content_hash,
                    Decision.verdict == "fired",
                )
            )
        )
        deep = session.scalar(
            select(Job.id).where(Job.checkpoint_id == cp.id, Job.kind == JobKind.deep_eval).limit(1)
        )
        scores = {s.task: s.score for s in proxy.scores} if proxy else {}
        for task in scores:
            if task not in tasks:
                tasks.append(task)
        points.append(
            TrajectoryPoint(
                step=cp.step,
                content_hash=cp.content_hash,
                state=cp.state.value,
                scores=scores,
                stderrs={s.task: s.stderr for s in proxy.scores} if proxy else {},
                fired=bool(fired),
                fired_rules=[d.rule_id for d in fired],
                fired_severity="critical"
                if any(d.severity == "critical" for d in fired)
                else ("alert" if fired else None),
                deep_evaluated=deep is not None,
                report_href=checkpoint_href(cp.step, cp.content_hash),
            )
        )
    return RunReport(
        generated_at=now or datetime.now(UTC),
        run=run.name,
        policy=PolicyRef(name=policy.name, hash=policy.content_hash),
        points=points,
        tasks=tasks,
    )


def write_reports(
    session: Session, policy: LoadedPolicy, checkpoint_id: int, out_dir: Path
) -> dict[str, Path]:
    """Write one checkpoint's pages, its run's trajectory page and the site index."""
    report = checkpoint_report(session, policy, checkpoint_id)
    paths = write_checkpoint_report(report, out_dir)
    cp = session.get(Checkpoint, checkpoint_id)
    assert cp is not None
    paths["run"] = write_run_report(run_report(session, policy, cp.run_id), out_dir)
    runs = [
        run_report(session, policy, r.id) for r in session.scalars(select(Run).order_by(Run.id))
    ]
    paths["index"] = write_site_index(runs, out_dir)
    return paths


def write_all_reports(session: Session, policy: LoadedPolicy, out_dir: Path) -> Path:
    """Write every checkpoint's and run's pages; return the site index."""
    runs = []
    for run in session.scalars(select(Run).order_by(Run.id)):
        for cp in run.checkpoints:
            write_checkpoint_report(checkpoint_report(session, policy, cp.id), out_dir)
        report = run_report(session, policy, run.id)
        write_run_report(report, out_dir)
        runs.append(report)
    return write_site_index(runs, out_dir)
