"""A run's capability trajectory, from its stored evaluations and live decision records."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tripwire.decisions.inputs import is_held
from tripwire.decisions.read import sets_by_checkpoint
from tripwire.decisions.record import SubjectRecord
from tripwire.lineage.graph import compute_of
from tripwire.policy.backtest import compute_trigger
from tripwire.policy.engine import BASELINE_RULE_ID
from tripwire.reports.evaluations import preload
from tripwire.reports.model import PolicyRef, RuleBand, RunReport, TrajectoryPoint
from tripwire.reports.paths import checkpoint_href
from tripwire.store.models import Job, JobKind, Run


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
    proxies = preload(
        session,
        (
            (
                found[0].decisions[0].record.checkpoint if found and found[0].decisions else None,
                c.id,
            )
            for c in checkpoints
            for found in [sets.get(c.id)]
        ),
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
        proxy = proxies.get(cp.id)
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
        compute = compute_of(session, cp).cumulative
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
                training_flop=compute.effective,
                declared_flop=compute.declared,
                estimated_flop=compute.estimated,
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
