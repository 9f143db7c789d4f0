"""Minimum detectable effects: can each rule decide its threshold with the suite's items?

For a comparison with standard error ``se`` tested one-sided at level ``alpha``, the minimum
detectable effect (MDE) is ``(z(1 - alpha) + z(power)) * se``, counted from the threshold:

- ``detected`` fires with probability ``power`` at a true rise of threshold + MDE;
- ``cannot_rule_out`` stays quiet with probability ``power`` at a true rise of threshold - MDE;
- ``point`` (``z(power) * se``) fires with probability ``power`` at threshold + MDE.

``alpha`` is the level one comparison is tested at on the planned last look: after the rule's
alpha spending (alpha / (looks + 1)), Holm's first step across its benchmarks (alpha / m) and a
combinator's first step across the children it corrects. A rule *cannot decide its threshold*
when its MDE exceeds the margin it must resolve (the threshold of a delta or gap; the distance
from the alert to the critical level; for a divergence, the general rise and the gap between
the general rise and the risk ceiling): ``detected`` mode then misses most true rises of twice
the threshold, and ``cannot_rule_out`` fires on most checkpoints where nothing changed.

For ``point`` and ``cannot_rule_out`` comparisons the no-change fire rate per look is given too:
``Phi(-t / se)`` and ``Phi(z(1 - alpha) - t / se)``. ``bench/validity.py`` checks every figure by
simulation through the engine.

Standard errors need assumptions, printed with the results (``Planning``): a paired change on n
binary items has se = sqrt(d / n), d the share of items whose outcome differs between the two
checkpoints (the discordance); a score near an alert level L has se = sqrt(L (1 - L) / n).
Pure: item counts and observed discordances come in as arguments.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

from scipy.special import ndtr

from tripwire.policy.compare import scale_factor
from tripwire.policy.inputs import benchmarks_of
from tripwire.policy.schema import (
    DEFAULT_DISCORDANCE,
    CadenceRule,
    Combinator,
    ComputeRule,
    DeltaRule,
    DivergenceRule,
    ElicitationGapRule,
    LevelRule,
    Policy,
    Rule,
)
from tripwire.policy.sizes import ItemCount
from tripwire.policy.stats import brentq, quantile, spent_alpha, tango_statistic

Status = Literal["ok", "underpowered", "unknown", "not_checked", "deterministic"]
SEVERITY_ORDER = {"underpowered": 4, "unknown": 3, "not_checked": 2, "ok": 1, "deterministic": 0}


@dataclass(frozen=True, slots=True)
class Planning:
    """Assumptions behind the standard errors."""

    discordance: float = DEFAULT_DISCORDANCE
    """Share of items whose outcome differs between two checkpoints (paired comparisons)."""
    power: float = 0.80
    base_score: float = 0.5
    """Reference score (fraction) that converts relative and error-rate scales to points."""
    by_task: dict[str, float] = field(default_factory=dict)
    """Observed discordance per task (from stored decisions); overrides ``discordance``."""
    source: str = "default"
    """Where ``discordance`` comes from: ``default``, ``policy``, ``option`` or ``stored``."""

    def for_task(self, task: str) -> float:
        return self.by_task.get(task, self.discordance)


@dataclass(frozen=True, slots=True)
class PartPower:
    """One comparison of a rule: a benchmark, a profile pair, or a pooled set."""

    label: str
    items: int | None
    approximate: bool
    mde: float | None
    """In the rule's unit; None when the item count is unknown."""
    margin: float | None
    """What the comparison must resolve, in the rule's unit; None when nothing is checked."""
    field: str = "threshold"
    """The rule's field that sets the margin (where a fix goes)."""
    threshold: float | None = None
    """The threshold the MDE is counted from, in the rule's unit."""
    mode: str = "detected"
    no_change_rate: float | None = None
    """``point`` and ``cannot_rule_out``: the chance one look fires when nothing changed."""
    discordance: float | None = None
    """The discordance assumed for this comparison (paired changes)."""
    band: float | None = None
    """Anchored tasks: the standard error of the comparison, in the rule's unit, from the
    anchor file (a comparison of 2PL estimates, not paired items)."""
    direction: int = 1
    """+1: the comparison fires on a rise past the threshold; -1: on staying at or below it
    (a divergence's risk set)."""

    @property
    def status(self) -> Status:
        if self.mde is None:
            return "unknown"
        if self.margin is None:
            return "not_checked"
        return "ok" if self.mde <= self.margin else "underpowered"

    @property
    def decides_at(self) -> float | None:
        """The true value at which the rule reaches its power: threshold + MDE for ``detected``
        and ``point`` (fires), threshold - MDE for ``cannot_rule_out`` (stays quiet); the other
        way round for a comparison that fires on staying low (``direction`` -1)."""
        if self.mde is None or self.threshold is None:
            return None
        sign = -self.direction if self.mode == "cannot_rule_out" else self.direction
        return self.threshold + sign * self.mde


@dataclass(frozen=True, slots=True)
class RulePower:
    """Power of one rule (and of a combinator's nested rules)."""

    path: str
    rule_id: str
    rule_type: str
    mode: str
    confidence: float | None
    alpha: float | None
    """One-sided error level of one comparison at the planned last look, after corrections."""
    unit: str
    note: str
    parts: list[PartPower] = field(default_factory=list)
    children: list[RulePower] = field(default_factory=list)
    looks: int | None = None
    """Planned looks (``sequential.looks``)."""
    spending: str = "none"

    @property
    def status(self) -> Status:
        statuses: list[Status] = [p.status for p in self.parts]
        statuses += [c.status for c in self.children]
        if self.mode == "point":
            statuses = [s if s != "underpowered" else "not_checked" for s in statuses]
        if not statuses:
            return "deterministic"
        return max(statuses, key=lambda s: SEVERITY_ORDER[s])

    @property
    def run_no_change_bound(self) -> float | None:
        """Union bound on a fire with no true change over the planned looks (point and
        cannot_rule_out): looks x the sum of the per-look rates of its comparisons."""
        rates = [p.no_change_rate for p in self.parts if p.no_change_rate is not None]
        if not rates or self.looks is None:
            return None
        return min(1.0, self.looks * sum(rates))


def _alpha(
    rule: DeltaRule | LevelRule | ElicitationGapRule | DivergenceRule,
    policy: Policy,
    m: int,
    factor: float,
) -> float:
    """One comparison's level at the planned last look."""
    alpha = 1.0 - (rule.confidence or policy.confidence)
    spending = rule.spending
    if spending.method == "alpha_spending":
        alpha = spent_alpha(alpha, spending.looks, spending.looks)
    correction = getattr(rule, "correction", "none")
    if rule.mode == "detected" and correction != "none" and m > 1:
        alpha /= m  # the first step of Holm and of Benjamini-Hochberg
    if rule.mode == "detected":
        alpha *= factor
    return alpha


def _mde(se: float, alpha: float, mode: str, planning: Planning) -> float:
    z_power = quantile(1.0 - planning.power)
    if mode == "point":
        return z_power * se
    return (quantile(alpha) + z_power) * se


def paired_mde(n: int, d: float, t: float, alpha: float, power: float, mode: str) -> float:
    """The MDE (fraction) of a paired binary comparison on ``n`` items, read off the engine's
    own statistic: how far from the threshold ``t`` the true change must be for ``detected``
    and ``point`` to fire, or ``cannot_rule_out`` to stay quiet, with probability ``power``.

    Planning model: ``d`` is the discordance between the checkpoint and its baseline at the
    true change D (at least |D|: :func:`discordance_at`), split (d' + D) / 2 newly right and
    (d' - D) / 2 newly wrong; b - c is normal around n D with variance n (d' - D^2), and the
    statistic's denominator is taken at the expected counts.
    """
    z = quantile(alpha)

    def chance(true: float) -> float:
        dd = discordance_at(d, true)
        b, c = n * (dd + true) / 2, n * (dd - true) / 2
        sd = math.sqrt(max(n * (dd - true * true), 1e-12))
        if mode == "point":
            return float(ndtr((n * true - n * t) / sd))
        # the counts of b - c at which the statistic reaches -z or z at the threshold
        if mode == "cannot_rule_out":
            edge = _edge(lambda x: tango_statistic(b + x / 2, c - x / 2, n, t) + z, n, b - c)
            return float(ndtr((edge - n * true) / sd))
        edge = _edge(lambda x: tango_statistic(b + x / 2, c - x / 2, n, t) - z, n, b - c)
        return float(ndtr((n * true - edge) / sd))

    if mode == "cannot_rule_out":
        lo, hi = -1.0 + 1e-9, t
        if chance(lo) < power:
            return math.inf
        found = brentq(lambda x: chance(x) - power, lo, hi, xtol=1e-9)
        return float(t - found)
    lo, hi = t, 1.0 - 1e-9
    if chance(hi) < power:
        return math.inf
    return float(brentq(lambda x: chance(x) - power, lo, hi, xtol=1e-9) - t)


def discordance_at(discordance: float, change: float) -> float:
    """The discordance between two checkpoints ``change`` apart (fraction): the assumed one,
    or, when the change is larger, the change and 2 points of churn (every item that moved
    changed its answer, and some answers always change both ways)."""
    return max(discordance, abs(change) + 0.02)


def _edge(f: Any, n: int, centre: float) -> float:
    """The value of b - c (as an offset from ``centre``, then absolute) where ``f`` crosses 0."""
    lo, hi = -2.0 * n, 2.0 * n
    if f(lo) * f(hi) > 0:
        return centre + (hi if f(hi) < 0 else lo)
    return centre + float(brentq(f, lo, hi, xtol=1e-9))


def _no_change(margin_se: float, alpha: float, mode: str) -> float | None:
    """Per-look fire rate with no true change, for a threshold ``margin_se`` se away."""
    if mode == "point":
        return float(ndtr(-margin_se))
    if mode == "cannot_rule_out":
        return float(ndtr(quantile(alpha) - margin_se))
    return None


def _change_variance(task: str, count: ItemCount, planning: Planning) -> float:
    """Variance (fraction^2) of one task's change: paired items, or two anchored estimates."""
    change_se = count.change_se()
    if change_se is not None:
        return change_se**2
    assert count.items
    return planning.for_task(task) / count.items


def _items(counts: dict[str, ItemCount], name: str) -> ItemCount:
    return counts.get(name) or ItemCount(None, "not in the proxy suite")


def rule_power(
    rule: Rule,
    policy: Policy,
    counts: dict[str, ItemCount],
    planning: Planning,
    path: str,
    factor: float = 1.0,
) -> RulePower:
    """The MDE of every comparison ``rule`` makes, against the margin it must resolve.

    ``factor``: the correction a parent combinator applies to this rule's alpha.
    """
    if isinstance(rule, Combinator):
        tested = [c for c in rule.rules if _detected(c)]
        child_factor = factor / len(tested) if rule.corrects and len(tested) > 1 else factor
        children = [
            rule_power(
                child,
                policy,
                counts,
                planning,
                f"{path}.rules.{i}",
                child_factor if _detected(child) else factor,
            )
            for i, child in enumerate(rule.rules)
        ]
        note = "nested rules"
        if rule.corrects and len(tested) > 1:
            note += f"; Holm across {len(tested)} detected children"
        return RulePower(
            path, rule.rule_id, rule.type, "-", None, None, "", note, children=children
        )
    if isinstance(rule, ComputeRule | CadenceRule):
        note = "training compute" if isinstance(rule, ComputeRule) else "elapsed time"
        return RulePower(path, rule.rule_id, rule.type, "-", None, None, rule.unit, note)
    base = planning.base_score
    parts: list[PartPower] = []
    mode = rule.mode
    if isinstance(rule, DeltaRule | ElicitationGapRule):
        if isinstance(rule, DeltaRule):
            names = benchmarks_of(counts) if rule.benchmarks == ["*"] else rule.benchmarks
            pairs = [(name, name, _items(counts, name)) for name in names]
        else:
            default = _items(counts, rule.default)
            pairs = [
                (f"{e} over {rule.default}", e, _smaller(_items(counts, e), default))
                for e in rule.elicited
            ]
        alpha = _alpha(rule, policy, len(pairs), factor)
        scale = scale_factor(rule.scale, base)
        margin = rule.threshold if rule.threshold > 0 else None
        for label, task, count in pairs:
            mde = rate = band = None
            d: float | None = planning.for_task(task)
            change_se = count.change_se()
            if change_se is not None:  # anchored: a normal comparison of two estimates
                d = None
                band = change_se * scale
                mde = _mde(band, alpha, mode, planning)
                rate = _no_change(rule.threshold / band, alpha, mode)
            elif count.items and d is not None:
                se = math.sqrt(d / count.items) * scale
                cut = rule.threshold / scale
                mde = paired_mde(count.items, d, cut, alpha, planning.power, mode) * scale
                rate = _no_change(rule.threshold / se, alpha, mode)
            parts.append(
                PartPower(
                    label,
                    count.items,
                    count.approximate,
                    mde,
                    margin,
                    "threshold",
                    rule.threshold,
                    mode,
                    rate,
                    d,
                    band=band,
                )
            )
        note = "" if margin is not None else "threshold 0: any established rise"
    elif isinstance(rule, LevelRule):
        names = benchmarks_of(counts) if rule.benchmarks == ["*"] else rule.benchmarks
        alpha = _alpha(rule, policy, len(names), factor)
        level = rule.level / 100
        margin = (rule.critical_level - rule.level) if rule.critical_level else None
        for name in names:
            count = _items(counts, name)
            mde = band = None
            if count.estimate_se is not None:
                band = count.estimate_se * 100
                mde = _mde(band, alpha, mode, planning)
            elif count.items:
                se = math.sqrt(level * (1 - level) / count.items) * 100
                mde = _mde(se, alpha, mode, planning)
            parts.append(
                PartPower(
                    name,
                    count.items,
                    count.approximate,
                    mde,
                    margin,
                    "critical_level",
                    rule.level,
                    mode,
                    band=band,
                )
            )
        note = "margin: critical minus alert level" if margin else "no critical level to resolve"
    else:
        alpha = _alpha(rule, policy, 1, factor)
        scale = scale_factor(rule.scale, base)
        margins = {
            "general": (rule.general_rise, "general_rise"),
            "risk": (rule.general_rise - rule.risk_max_rise, "risk_max_rise"),
        }
        for label, names in (("general", rule.general), ("risk", rule.risk)):
            found = [(n, _items(counts, n)) for n in names]
            known = [(n, c) for n, c in found if c.items]
            mde = None
            if len(known) == len(found):
                se = math.sqrt(sum(_change_variance(n, c, planning) for n, c in known))
                mde = _mde(se / len(known) * scale, alpha, mode, planning)
            parts.append(
                PartPower(
                    f"{label}: {', '.join(names)}",
                    sum(c.items or 0 for _, c in known) if len(known) == len(found) else None,
                    any(c.approximate for _, c in found),
                    mde,
                    *margins[label],
                    rule.general_rise if label == "general" else rule.risk_max_rise,
                    mode,
                    direction=1 if label == "general" else -1,
                )
            )
        note = "risk margin: general_rise minus risk_max_rise"
    confidence = rule.confidence or policy.confidence
    spending = rule.spending
    return RulePower(
        path,
        rule.rule_id,
        rule.type,
        rule.mode,
        confidence,
        alpha,
        rule.unit,
        note,
        parts,
        looks=spending.looks,
        spending=f"alpha spending over the {spending.scope}"
        if spending.method == "alpha_spending"
        else "none",
    )


def _detected(rule: Rule) -> bool:
    """Whether a rule's verdict carries an error rate a combinator corrects for."""
    if isinstance(rule, Combinator):
        return any(_detected(c) for c in rule.rules)
    return isinstance(rule, _STATISTICAL) and rule.mode == "detected"


_STATISTICAL = (DeltaRule, LevelRule, ElicitationGapRule, DivergenceRule)


def _smaller(a: ItemCount, b: ItemCount) -> ItemCount:
    if a.items is None or b.items is None:
        return ItemCount(None, "unknown")
    return a if a.items <= b.items else b


def policy_power(
    policy: Policy, counts: dict[str, ItemCount], planning: Planning
) -> list[RulePower]:
    """Power of every rule of ``policy``."""
    return [
        rule_power(rule, policy, counts, planning, f"rules.{i}")
        for i, rule in enumerate(policy.rules)
    ]


def flatten(rows: list[RulePower]) -> list[RulePower]:
    """Rules and their nested rules, parents first."""
    out: list[RulePower] = []
    for row in rows:
        out.append(row)
        out.extend(flatten(row.children))
    return out
