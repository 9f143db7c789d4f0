"""Evaluators of the leaf rule types: delta, level, compute, cadence, elicitation_gap, divergence.

Each takes the rule and an :class:`Context` (the checkpoint, its baseline, its place in the run
and ``now``) and returns a :class:`RuleVerdict`. Pure: no I/O, no clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tripwire.policy.compare import Change, Comparer, scale_factor
from tripwire.policy.inputs import Lineage
from tripwire.policy.multiplicity import step_levels
from tripwire.policy.schema import (
    CadenceRule,
    ComputeRule,
    DeltaRule,
    DivergenceRule,
    ElicitationGapRule,
    LevelRule,
    Mode,
    format_duration,
)
from tripwire.policy.stats import Estimate, Pivot, spent_alpha
from tripwire.policy.verdicts import Comparison, RuleVerdict, Verdict

BOUND = {"point": "estimate", "detected": "lower bound", "cannot_rule_out": "upper bound"}


@dataclass(slots=True)
class Context:
    """Everything a rule may read about one checkpoint."""

    comparer: Comparer
    lineage: Lineage
    now: datetime
    confidence: float
    """The policy's default one-sided confidence."""

    @property
    def baseline_step(self) -> str:
        baseline = self.comparer.baseline
        return "none" if baseline is None else str(baseline.step)

    def alpha(
        self, rule: DeltaRule | LevelRule | ElicitationGapRule | DivergenceRule
    ) -> tuple[float, dict[str, Any]]:
        """The rule's one-sided error level for this look, and how it was reached."""
        confidence = rule.confidence or self.confidence
        alpha = 1.0 - confidence
        details: dict[str, Any] = {"mode": rule.mode, "confidence": confidence}
        if rule.sequential.method == "alpha_spending":
            look = (
                self.lineage.looks_since_baseline
                if rule.sequential.scope == "baseline"
                else self.lineage.looks_in_run
            )
            alpha = spent_alpha(alpha, look)
            details["sequential"] = {"method": "alpha_spending", "look": look, "alpha": alpha}
        details["alpha"] = alpha
        return alpha, details


def _verdict(
    rule: Any,
    verdict: Verdict,
    explanation: str,
    *,
    threshold: float | None = None,
    deciding: Comparison | None = None,
    comparisons: list[Comparison] | None = None,
    details: dict[str, Any] | None = None,
    statistic: float | None = None,
) -> RuleVerdict:
    return RuleVerdict(
        rule_id=rule.rule_id,
        rule_type=rule.type,
        severity=rule.severity,
        verdict=verdict,
        threshold=threshold,
        statistic=deciding.estimate if deciding is not None else statistic,
        interval=(deciding.low, deciding.high) if deciding is not None else None,
        p_value=deciding.p_value if deciding is not None else None,
        explanation=explanation,
        actions=rule.actions,
        comparisons=comparisons or [],
        unit=rule.unit,
        details=details or {},
    )


def _crossed_up(mode: Mode, est: Estimate, threshold: float, alpha: float) -> bool:
    """Whether ``est`` reached ``threshold`` (fraction units) under ``mode``."""
    if mode == "point":
        return est.estimate >= threshold
    if mode == "detected":
        return est.p_greater(threshold) <= alpha
    return est.upper(alpha) >= threshold


def _crossed_down(mode: Mode, est: Estimate, threshold: float, alpha: float) -> bool:
    """Whether ``est`` stayed at or below ``threshold`` under ``mode``."""
    if mode == "point":
        return est.estimate <= threshold
    if mode == "detected":
        return est.p_less(threshold) <= alpha
    return est.lower(alpha) <= threshold


def _comparison(
    task: str, est: Estimate, alpha: float, factor: float = 1.0, **fields: Any
) -> Comparison:
    """A comparison row from an estimate: its value and one-sided bounds at ``alpha``, scaled."""
    return Comparison(
        task=task,
        estimate=est.estimate * factor,
        low=est.lower(alpha) * factor,
        high=est.upper(alpha) * factor,
        alpha=alpha,
        **fields,
    )


def _describe(c: Comparison, unit: str) -> str:
    items = f", {c.paired_items} items" if c.paired_items else ""
    return f"{c.task} {c.estimate:+.1f} {unit} [{c.low:+.1f}, {c.high:+.1f}] ({c.method}{items})"


def _how(rule: Any, details: dict[str, Any], m: int) -> str:
    text = f"{rule.mode}, {details['confidence']:.0%} one-sided"
    correction = getattr(rule, "correction", "none")
    if rule.mode == "detected" and correction != "none" and m > 1:
        text += f", {correction} across {m}"
    if "sequential" in details:
        seq = details["sequential"]
        text += f", alpha spending look {seq['look']}: alpha {seq['alpha']:.2g}"
    return text


# ---------------------------------------------------------------- rises: delta, elicitation gap


def _any_rise(
    rule: DeltaRule | ElicitationGapRule,
    ctx: Context,
    tests: list[tuple[str, Change]],
    missing: list[str],
    reference: str,
) -> RuleVerdict:
    """Fires if any change crosses ``rule.threshold``; the shared core of delta and gap."""
    alpha, details = ctx.alpha(rule)
    unit = rule.unit
    usable: list[tuple[str, Change, float]] = []
    for name, change in tests:
        factor = scale_factor(rule.scale, change.base)
        if math.isfinite(factor):
            usable.append((name, change, factor))
        else:
            missing.append(f"{name} ({rule.scale} undefined at a reference of {change.base:.0%})")
    if not usable:
        why = ", ".join(missing) or "no benchmarks"
        return _verdict(rule, "undecidable", f"no comparison possible: {why}", details=details)
    cut = [rule.threshold / f for _, _, f in usable]
    p_values = [c.est.p_greater(t) for (_, c, _), t in zip(usable, cut, strict=True)]
    if rule.mode == "detected":
        rejected, levels = step_levels(p_values, alpha, rule.correction)
    else:
        rejected, levels = [False] * len(usable), [alpha] * len(usable)
    comparisons = []
    for (name, change, f), t, p, level, rej in zip(
        usable, cut, p_values, levels, rejected, strict=True
    ):
        est = change.est
        if rule.mode == "point":
            crossed = est.estimate >= t
        elif rule.mode == "detected":
            crossed = rej
        else:
            crossed = est.upper(level) >= t
        comparisons.append(
            _comparison(
                name,
                est,
                level,
                f,
                p_value=p,
                paired_items=est.n,
                method=est.method,
                crossed=crossed,
                threshold=rule.threshold,
                discordant=change.discordant,
            )
        )
    fired = [c for c in comparisons if c.crossed]
    deciding = max(fired or comparisons, key=lambda c: c.estimate)
    verb = "crossed" if fired else "did not cross"
    explanation = (
        f"{', '.join(_describe(c, unit) for c in comparisons)} {reference}; the "
        f"{BOUND[rule.mode]} ({_how(rule, details, len(comparisons))}) {verb} "
        f"+{rule.threshold:g} {unit}"
    )
    if fired:
        explanation += f" on {', '.join(c.task for c in fired)}"
    if missing:
        explanation += f"; no comparison for {', '.join(missing)}"
    return _verdict(
        rule,
        "fired" if fired else "not_fired",
        explanation,
        threshold=rule.threshold,
        deciding=deciding,
        comparisons=comparisons,
        details=details,
    )


def evaluate_delta(rule: DeltaRule, ctx: Context) -> RuleVerdict:
    """Fires if any named benchmark rose by at least the threshold since the baseline."""
    if ctx.comparer.baseline is None:
        return _verdict(rule, "undecidable", "no baseline yet (the run's first checkpoint)")
    current = ctx.comparer.current
    names = sorted(current.scores) if rule.benchmarks == ["*"] else rule.benchmarks
    tests, missing = [], []
    for name in names:
        change = ctx.comparer.change(name)
        if change is None:
            missing.append(name)
        else:
            tests.append((name, change))
    return _any_rise(rule, ctx, tests, missing, f"since baseline step {ctx.baseline_step}")


def evaluate_gap(rule: ElicitationGapRule, ctx: Context) -> RuleVerdict:
    """Fires if an elicited profile beats the default one by at least the threshold."""
    tests, missing = [], []
    for name in rule.elicited:
        change = ctx.comparer.gap(name, rule.default)
        if change is None:
            missing.append(name)
        else:
            tests.append((f"{name} over {rule.default}", change))
    return _any_rise(rule, ctx, tests, missing, "on this checkpoint")


# ---------------------------------------------------------------- level


def evaluate_level(rule: LevelRule, ctx: Context) -> RuleVerdict:
    """Fires if a benchmark reached the alert level and had not at the baseline."""
    alpha, details = ctx.alpha(rule)
    current = ctx.comparer.current
    names = sorted(current.scores) if rule.benchmarks == ["*"] else rule.benchmarks
    level = rule.level / 100.0
    found: list[tuple[str, Estimate, bool]] = []
    missing = []
    for name in names:
        est = ctx.comparer.score(name)
        if est is None:
            missing.append(name)
        else:
            found.append((name, est, current.scores[name].higher_is_better))
    if not found:
        why = ", ".join(missing)
        return _verdict(rule, "undecidable", f"no scores for {why}", details=details)
    p_values = [est.p_greater(level) if up else est.p_less(level) for _, est, up in found]
    if rule.mode == "detected":
        rejected, levels = step_levels(p_values, alpha, rule.correction)
    else:
        rejected, levels = [False] * len(found), [alpha] * len(found)
    comparisons = []
    notes = []
    for (name, est, up), p, a, rej in zip(found, p_values, levels, rejected, strict=True):
        reached = rej if rule.mode == "detected" else _reached(rule.mode, est, level, a, up)
        base_est = ctx.comparer.score(name, of_baseline=True)
        before = base_est is not None and _reached(rule.mode, base_est, level, a, up)
        if reached and before:
            notes.append(f"{name} had already reached it at baseline step {ctx.baseline_step}")
        comparisons.append(
            _comparison(
                name,
                est,
                a,
                100,
                p_value=p,
                paired_items=0,
                method=f"{est.method}, {est.n} items" if est.n else est.method,
                crossed=reached and not before,
                threshold=rule.level,
                note="reached at the baseline" if before else "",
            )
        )
    fired = [c for c in comparisons if c.crossed]
    deciding = max(fired or comparisons, key=lambda c: c.estimate)
    critical = f" (critical level {rule.critical_level:g})" if rule.critical_level else ""
    parts = [f"{c.task} {c.estimate:.1f} [{c.low:.1f}, {c.high:.1f}] points" for c in comparisons]
    verb = "reached" if fired else "did not newly reach"
    explanation = (
        f"{', '.join(parts)}; the {BOUND[rule.mode]} ({_how(rule, details, len(comparisons))}) "
        f"{verb} the alert level {rule.level:g}{critical}"
    )
    if fired:
        explanation += f" on {', '.join(c.task for c in fired)}"
    if notes:
        explanation += "; " + "; ".join(notes)
    if missing:
        explanation += f"; no scores for {', '.join(missing)}"
    return _verdict(
        rule,
        "fired" if fired else "not_fired",
        explanation,
        threshold=rule.level,
        deciding=deciding,
        comparisons=comparisons,
        details=details,
    )


def _reached(mode: Mode, est: Estimate, level: float, alpha: float, higher_is_better: bool) -> bool:
    if higher_is_better:
        return _crossed_up(mode, est, level, alpha)
    return _crossed_down(mode, est, level, alpha)


# ---------------------------------------------------------------- compute and cadence


def evaluate_compute(rule: ComputeRule, ctx: Context) -> RuleVerdict:
    """Fires on ``factor`` x the baseline's training compute, or on crossing ``above_flop``."""
    flop = ctx.comparer.current.training_flop
    baseline = ctx.comparer.baseline
    base_flop = baseline.training_flop if baseline is not None else None
    details: dict[str, Any] = {"training_flop": flop, "baseline_training_flop": base_flop}
    if flop is None:
        return _verdict(
            rule, "undecidable", "training compute unknown for this checkpoint", details=details
        )
    reasons, checks = [], []
    ratio = None
    if rule.factor is not None:
        if base_flop is not None and base_flop > 0:
            ratio = flop / base_flop
            details["factor"] = ratio
            hit = ratio >= rule.factor
            checks.append(hit)
            reasons.append(
                f"{flop:.3g} FLOP is {ratio:.2f}x the baseline's {base_flop:.3g} "
                f"({'at or above' if hit else 'below'} {rule.factor:g}x)"
            )
        else:
            reasons.append("no baseline compute to grow from")
    if rule.above_flop is not None:
        below_before = base_flop is None or base_flop < rule.above_flop
        hit = flop >= rule.above_flop and below_before
        checks.append(hit)
        if flop >= rule.above_flop and not below_before:
            reasons.append(f"the baseline was already at or above {rule.above_flop:.3g} FLOP")
        else:
            side = "crossed" if hit else "is below"
            reasons.append(f"{flop:.3g} FLOP {side} {rule.above_flop:.3g} FLOP")
    if not checks:
        return _verdict(rule, "undecidable", "; ".join(reasons), details=details)
    fired = any(checks)
    return _verdict(
        rule,
        "fired" if fired else "not_fired",
        "training compute: " + "; ".join(reasons),
        threshold=rule.factor if rule.factor is not None else rule.above_flop,
        statistic=ratio if rule.factor is not None else flop,
        details=details,
    )


def evaluate_cadence(rule: CadenceRule, ctx: Context) -> RuleVerdict:
    """Fires when the baseline's deep evaluation is at least ``every`` old."""
    since = ctx.lineage.baseline_at
    days = rule.every.total_seconds() / 86400
    if since is None:
        return _verdict(
            rule, "undecidable", "no deep evaluation time known for the baseline", threshold=days
        )
    elapsed = ctx.now - since
    elapsed_days = elapsed.total_seconds() / 86400
    fired = elapsed >= rule.every
    details = {"baseline_at": since.isoformat(), "now": ctx.now.isoformat()}
    verb = "reached" if fired else "is below"
    return _verdict(
        rule,
        "fired" if fired else "not_fired",
        f"{elapsed_days:.1f} days since the baseline's deep evaluation (step "
        f"{ctx.baseline_step}) {verb} the cadence of {format_duration(rule.every)}",
        threshold=days,
        statistic=elapsed_days,
        details=details,
    )


# ---------------------------------------------------------------- divergence


def _pooled(
    ctx: Context, names: list[str], scale: str
) -> tuple[Pivot | None, list[str], list[str]]:
    """The mean change of a set of benchmarks in ``scale`` units, with its standard error."""
    parts: list[tuple[Estimate, float]] = []
    missing, methods = [], []
    for name in names:
        change = ctx.comparer.change(name)
        factor = scale_factor(scale, change.base) if change is not None else math.inf
        if change is None or not math.isfinite(factor):
            missing.append(name)
            continue
        parts.append((change.est, factor))
        methods.append(change.est.method)
    if not parts:
        return None, missing, methods
    m = len(parts)
    estimate = sum(e.estimate * f for e, f in parts) / m
    centre = sum(getattr(e, "centre", e.estimate) * f for e, f in parts) / m
    se = math.sqrt(sum((e.se * f) ** 2 for e, f in parts)) / m
    n = sum(e.n for e, _ in parts)
    method = methods[0] if m == 1 else f"mean of {m}"
    return Pivot(estimate, centre, se, method, n), missing, methods


def evaluate_divergence(rule: DivergenceRule, ctx: Context) -> RuleVerdict:
    """Fires if the general set rose by ``general_rise`` while the risk set rose by at most
    ``risk_max_rise``: an intersection-union test, each part at the rule's level."""
    alpha, details = ctx.alpha(rule)
    if ctx.comparer.baseline is None:
        return _verdict(rule, "undecidable", "no baseline yet", details=details)
    general, miss_g, _ = _pooled(ctx, rule.general, rule.scale)
    risk, miss_r, _ = _pooled(ctx, rule.risk, rule.scale)
    if general is None or risk is None:
        why = ", ".join(miss_g + miss_r)
        return _verdict(rule, "undecidable", f"no comparison for {why}", details=details)
    rose = _crossed_up(rule.mode, general, rule.general_rise, alpha)
    flat = _crossed_down(rule.mode, risk, rule.risk_max_rise, alpha)
    p_general = general.p_greater(rule.general_rise)
    p_risk = risk.p_less(rule.risk_max_rise)
    unit = rule.unit
    comparisons = [
        _comparison(
            "general: " + ", ".join(rule.general),
            general,
            alpha,
            p_value=p_general,
            paired_items=general.n,
            method=general.method,
            crossed=rose,
            threshold=rule.general_rise,
        ),
        _comparison(
            "risk: " + ", ".join(rule.risk),
            risk,
            alpha,
            p_value=p_risk,
            paired_items=risk.n,
            method=risk.method,
            crossed=flat,
            threshold=rule.risk_max_rise,
            note="crossed means: stayed at or below the threshold",
        ),
    ]
    fired = rose and flat
    g, r = comparisons
    risk_bound = {"point": "estimate", "detected": "upper bound", "cannot_rule_out": "lower bound"}
    explanation = (
        f"since baseline step {ctx.baseline_step} ({_how(rule, details, 1)}): general "
        f"{g.estimate:+.1f} {unit} [{g.low:+.1f}, {g.high:+.1f}], its {BOUND[rule.mode]} "
        f"{'reached' if rose else 'did not reach'} +{rule.general_rise:g}; risk "
        f"{r.estimate:+.1f} {unit} [{r.low:+.1f}, {r.high:+.1f}], its {risk_bound[rule.mode]} "
        f"{'stayed at or below' if flat else 'exceeded'} {rule.risk_max_rise:+g}"
    )
    if miss_g or miss_r:
        explanation += f"; no comparison for {', '.join(miss_g + miss_r)}"
    details["p_general"] = p_general
    details["p_risk"] = p_risk
    return RuleVerdict(
        rule_id=rule.rule_id,
        rule_type=rule.type,
        severity=rule.severity,
        verdict="fired" if fired else "not_fired",
        threshold=rule.general_rise,
        statistic=g.estimate,
        interval=(g.low, g.high),
        p_value=max(p_general, p_risk),
        explanation=explanation,
        actions=rule.actions,
        comparisons=comparisons,
        unit=unit,
        details=details,
    )
