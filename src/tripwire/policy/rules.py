"""Evaluators of the leaf rule types: delta, level, compute, cadence, elicitation_gap, divergence.

Each takes the rule and an :class:`Context` (the checkpoint, its baseline, its place in the run
and ``now``) and returns a :class:`RuleVerdict`. Pure: no I/O, no clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from tripwire.policy.compare import Change, Comparer, scale_factor
from tripwire.policy.inputs import Lineage, benchmarks_of
from tripwire.policy.multiplicity import adjusted, step_levels
from tripwire.policy.schema import (
    DEFAULT_DISCORDANCE,
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

StatisticalRule = DeltaRule | LevelRule | ElicitationGapRule | DivergenceRule


@dataclass(slots=True)
class Context:
    """Everything a rule may read about one checkpoint."""

    comparer: Comparer
    lineage: Lineage
    now: datetime
    confidence: float
    """The policy's default one-sided confidence."""
    assumed_discordance: float = DEFAULT_DISCORDANCE
    """The policy's planning assumption; a decision warns when the observed one exceeds it."""
    factor: float = 1.0
    """Multiplies every alpha: a combinator's correction across its children (Holm)."""

    @property
    def baseline_step(self) -> str:
        baseline = self.comparer.baseline
        return "none" if baseline is None else str(baseline.step)

    def scaled(self, factor: float) -> Context:
        """The same context with every alpha multiplied by ``factor``."""
        return replace(self, factor=self.factor * factor)

    def base_alpha(self, rule: StatisticalRule) -> float:
        """The rule's alpha before spending and correction."""
        return 1.0 - (rule.confidence or self.confidence)

    def alpha(self, rule: StatisticalRule) -> tuple[float, dict[str, Any]]:
        """The rule's one-sided error level for this look, and how it was reached."""
        confidence = rule.confidence or self.confidence
        alpha = 1.0 - confidence
        details: dict[str, Any] = {"mode": rule.mode, "confidence": confidence}
        spending = rule.spending
        if spending.method == "alpha_spending":
            look = (
                self.lineage.looks_since_baseline
                if spending.scope == "baseline"
                else self.lineage.looks_in_run
            )
            alpha = spent_alpha(alpha, look, spending.looks)
            details["sequential"] = {
                "method": "alpha_spending",
                "scope": spending.scope,
                "look": look,
                "planned_looks": spending.looks,
                "alpha": alpha,
            }
        if self.factor != 1.0:
            alpha *= self.factor
            details["combinator_factor"] = self.factor
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
    p_value: float | None = None,
    alpha: float | None = None,
    ratio: float | None = None,
    warnings: list[str] | None = None,
    severity: str | None = None,
) -> RuleVerdict:
    return RuleVerdict(
        rule_id=rule.rule_id,
        rule_type=rule.type,
        severity=severity or rule.severity,
        verdict=verdict,
        threshold=threshold,
        statistic=deciding.estimate if deciding is not None else statistic,
        interval=(deciding.low, deciding.high) if deciding is not None else None,
        p_value=p_value,
        explanation=explanation,
        actions=rule.actions,
        comparisons=comparisons or [],
        unit=rule.unit,
        details=details or {},
        mode=getattr(rule, "mode", None),
        alpha=alpha,
        ratio=ratio,
        warnings=warnings or [],
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
        text += f", alpha spending over the {seq['scope']} look {seq['look']}"
    if "combinator_factor" in details:
        text += f", x{details['combinator_factor']:.3g} for the combinator's correction"
    if "sequential" in details or "combinator_factor" in details:
        text += f": alpha {details['alpha']:.2g}"
    return text


def _discordance_warnings(ctx: Context, comparisons: list[Comparison]) -> list[str]:
    """A warning per comparison whose observed discordance exceeds the policy's assumption."""
    out = []
    for c in comparisons:
        d = c.discordance
        if d is not None and d > ctx.assumed_discordance:
            out.append(
                f"{c.task}: observed discordance {d:.2f} ({c.discordant[0] if c.discordant else 0}"
                f" + {c.discordant[1] if c.discordant else 0} of {c.paired_items} items changed) "
                f"exceeds the policy's assumed {ctx.assumed_discordance:.2f}: its power and "
                "no-change fire rate are worse than `tripwire policy check` reported"
            )
    return out


def _decision_p(
    mode: Mode, p_cross: list[float], p_exclude: list[float], correction: str
) -> tuple[float | None, list[float] | None]:
    """The rule's recorded p-value and, in detected mode, the corrected p-values."""
    if mode == "detected":
        adj = adjusted(p_cross, correction)  # type: ignore[arg-type]
        return min(adj), adj
    if mode == "cannot_rule_out":
        return max(p_exclude), None
    return None, None


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
        return _verdict(
            rule, "undecidable", f"no comparison possible: {why}", details=details, alpha=alpha
        )
    cut = [rule.threshold / f for _, _, f in usable]
    p_values = [c.est.p_greater(t) for (_, c, _), t in zip(usable, cut, strict=True)]
    p_exclude = [c.est.p_less(t) for (_, c, _), t in zip(usable, cut, strict=True)]
    p_rule, adj = _decision_p(rule.mode, p_values, p_exclude, rule.correction)
    if rule.mode == "detected":
        rejected, levels = step_levels(p_values, alpha, rule.correction)
    else:
        rejected, levels = [False] * len(usable), [alpha] * len(usable)
    comparisons = []
    for i, ((name, change, f), t, p, level, rej) in enumerate(
        zip(usable, cut, p_values, levels, rejected, strict=True)
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
                adjusted_p=adj[i] if adj is not None else None,
                paired_items=est.n,
                method=est.method,
                crossed=crossed,
                threshold=rule.threshold,
                discordant=change.discordant,
                unshared=change.unshared,
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
        p_value=p_rule,
        alpha=alpha,
        ratio=p_rule / alpha if rule.mode == "detected" and p_rule is not None else None,
        warnings=_discordance_warnings(ctx, comparisons),
    )


def evaluate_delta(rule: DeltaRule, ctx: Context) -> RuleVerdict:
    """Fires if any named benchmark rose by at least the threshold since the baseline."""
    if ctx.comparer.baseline is None:
        return _verdict(rule, "undecidable", "no baseline yet (the run's first checkpoint)")
    current = ctx.comparer.current
    names = benchmarks_of(current.scores) if rule.benchmarks == ["*"] else rule.benchmarks
    tests, missing = [], []
    for name in names:
        change = ctx.comparer.change(name)
        if change is None:
            missing.append(ctx.comparer.missing(name))
        else:
            tests.append((name, change))
    return _any_rise(rule, ctx, tests, missing, f"since baseline step {ctx.baseline_step}")


def evaluate_gap(rule: ElicitationGapRule, ctx: Context) -> RuleVerdict:
    """Fires if an elicited profile beats the default one by at least the threshold."""
    tests, missing = [], []
    for name in rule.elicited:
        label = f"{name} over {rule.default}"
        change = ctx.comparer.gap(name, rule.default)
        if change is None:
            missing.append(ctx.comparer.missing(label))
        else:
            tests.append((label, change))
    return _any_rise(rule, ctx, tests, missing, "on this checkpoint")


# ---------------------------------------------------------------- level


def _p_reach(est: Estimate, level: float, up: bool) -> tuple[float, float]:
    """(p against "not reached", p against "reached") for a level."""
    if up:
        return est.p_greater(level), est.p_less(level)
    return est.p_less(level), est.p_greater(level)


def evaluate_level(rule: LevelRule, ctx: Context) -> RuleVerdict:
    """Fires if a benchmark newly reached the alert level, or reached the critical level.

    The baseline counts as having reached a level only when that was *detected* there (its
    lower bound at the rule's confidence crossed), whatever the rule's mode: a baseline whose
    upper bound merely touched the level must not silence the rule for the rest of the run.
    Reaching ``critical_level`` (in the rule's mode) always fires, with critical severity.
    """
    alpha, details = ctx.alpha(rule)
    base_alpha = ctx.base_alpha(rule)
    current = ctx.comparer.current
    names = benchmarks_of(current.scores) if rule.benchmarks == ["*"] else rule.benchmarks
    level = rule.level / 100.0
    critical = rule.critical_level / 100.0 if rule.critical_level is not None else None
    found: list[tuple[str, Estimate, bool, bool]] = []
    missing = []
    for name in names:
        est = ctx.comparer.score(name)
        if est is None:
            missing.append(name)
            continue
        up = current.scores[name].higher_is_better
        base_est = ctx.comparer.score(name, of_baseline=True)
        before = base_est is not None and _reached("detected", base_est, level, base_alpha, up)
        found.append((name, est, up, before))
    if not found:
        why = ", ".join(missing)
        return _verdict(rule, "undecidable", f"no scores for {why}", details=details, alpha=alpha)
    # the test that decides each benchmark: the alert level unless the baseline had reached it,
    # then the critical level (if any)
    p_cross, p_exclude = [], []
    for _, est, up, before in found:
        target = critical if before else level
        if target is None:
            p_cross.append(1.0)
            p_exclude.append(0.0)
        else:
            pc, pe = _p_reach(est, target, up)
            p_cross.append(pc)
            p_exclude.append(pe)
    p_rule, adj = _decision_p(rule.mode, p_cross, p_exclude, rule.correction)
    if rule.mode == "detected":
        rejected, levels = step_levels(p_cross, alpha, rule.correction)
    else:
        rejected, levels = [False] * len(found), [alpha] * len(found)
    comparisons = []
    notes = []
    at_critical = []
    for i, ((name, est, up, before), a) in enumerate(zip(found, levels, strict=True)):
        reached = _reached(rule.mode, est, level, a, up)
        reached_critical = critical is not None and _reached(rule.mode, est, critical, a, up)
        if rule.mode == "detected":
            crossed = rejected[i] or reached_critical
        else:
            crossed = (reached and not before) or reached_critical
        if reached_critical:
            at_critical.append(name)
        elif reached and before:
            notes.append(
                f"{name} had already reached it (detected) at baseline step {ctx.baseline_step}"
            )
        comparisons.append(
            _comparison(
                name,
                est,
                a,
                100,
                p_value=_p_reach(est, level, up)[0],
                adjusted_p=adj[i] if adj is not None else None,
                paired_items=0,
                method=f"{est.method}, {est.n} items" if est.n else est.method,
                crossed=crossed,
                threshold=rule.critical_level if before and critical is not None else rule.level,
                note="critical level reached"
                if reached_critical
                else ("alert level reached (detected) at the baseline" if before else ""),
            )
        )
    fired = [c for c in comparisons if c.crossed]
    deciding = max(fired or comparisons, key=lambda c: c.estimate)
    crit_text = f" (critical level {rule.critical_level:g})" if rule.critical_level else ""
    parts = [f"{c.task} {c.estimate:.1f} [{c.low:.1f}, {c.high:.1f}] points" for c in comparisons]
    verb = "reached" if fired else "did not newly reach"
    explanation = (
        f"{', '.join(parts)}; the {BOUND[rule.mode]} ({_how(rule, details, len(comparisons))}) "
        f"{verb} the alert level {rule.level:g}{crit_text}"
    )
    if fired:
        explanation += f" on {', '.join(c.task for c in fired)}"
    if at_critical:
        explanation += (
            f"; {', '.join(at_critical)} reached the critical level {rule.critical_level:g}, "
            "which fires whatever the baseline had reached"
        )
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
        details={**details, "critical_reached": at_critical},
        p_value=p_rule,
        alpha=alpha,
        ratio=p_rule / alpha if rule.mode == "detected" and p_rule is not None else None,
        severity="critical"
        if any(c.crossed for c in comparisons if c.task in at_critical)
        else None,
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
    """Fires when the baseline was evaluated at least ``every`` before this checkpoint."""
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
        f"{elapsed_days:.1f} days since the baseline was evaluated (step "
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
            missing.append(ctx.comparer.missing(name))
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
        return _verdict(rule, "undecidable", "no baseline yet", details=details, alpha=alpha)
    general, miss_g, _ = _pooled(ctx, rule.general, rule.scale)
    risk, miss_r, _ = _pooled(ctx, rule.risk, rule.scale)
    if general is None or risk is None:
        why = ", ".join(miss_g + miss_r)
        return _verdict(
            rule, "undecidable", f"no comparison for {why}", details=details, alpha=alpha
        )
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
    # intersection-union: detected fires iff both parts reject (the larger p decides);
    # cannot_rule_out fires iff neither part is excluded (the smaller exclusion p decides)
    p_rule: float | None = None
    if rule.mode == "detected":
        p_rule = max(p_general, p_risk)
    elif rule.mode == "cannot_rule_out":
        p_rule = min(general.p_less(rule.general_rise), risk.p_greater(rule.risk_max_rise))
    return _verdict(
        rule,
        "fired" if fired else "not_fired",
        explanation,
        threshold=rule.general_rise,
        deciding=g,
        comparisons=comparisons,
        details=details,
        p_value=p_rule,
        alpha=alpha,
        ratio=p_rule / alpha if rule.mode == "detected" and p_rule is not None else None,
    )
