"""Minimum detectable effects: can each rule decide its threshold with the suite's items?

For a comparison with standard error ``se`` tested one-sided at level ``alpha``, the minimum
detectable effect (MDE) is ``(z(1 - alpha) + z(power)) * se``: the smallest true change that
is told apart from no change with probability ``power``. A rule *cannot decide its threshold*
when its MDE exceeds the margin it must resolve (the threshold of a delta or gap; the distance
from the alert to the critical level; for a divergence, the general rise and the gap between
the general rise and the risk ceiling): then ``detected`` mode misses most rises of that size
and ``cannot_rule_out`` mode fires on most checkpoints where nothing changed.

Standard errors need assumptions, printed with the results (``Planning``): a paired change
on n binary items has se = sqrt(d / n), d the share of items whose outcome differs between
the two checkpoints (the discordance); a score near an alert level L has se = sqrt(L (1 - L) / n).
Pure: item counts come in as arguments (``tripwire.policy.sizes`` finds them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from tripwire.policy.compare import scale_factor
from tripwire.policy.schema import (
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
from tripwire.policy.stats import quantile, spent_alpha

Status = Literal["ok", "underpowered", "unknown", "not_checked", "deterministic"]
SEVERITY_ORDER = {"underpowered": 4, "unknown": 3, "not_checked": 2, "ok": 1, "deterministic": 0}


@dataclass(frozen=True, slots=True)
class Planning:
    """Assumptions behind the standard errors."""

    discordance: float = 0.25
    """Share of items whose outcome differs between two checkpoints (paired comparisons)."""
    power: float = 0.80
    base_score: float = 0.5
    """Reference score (fraction) that converts relative and error-rate scales to points."""


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

    @property
    def status(self) -> Status:
        if self.mde is None:
            return "unknown"
        if self.margin is None:
            return "not_checked"
        return "ok" if self.mde <= self.margin else "underpowered"


@dataclass(frozen=True, slots=True)
class RulePower:
    """Power of one rule (and of a combinator's nested rules)."""

    path: str
    rule_id: str
    rule_type: str
    mode: str
    confidence: float | None
    alpha: float | None
    """One-sided error level of one comparison at the first look, after correction."""
    unit: str
    note: str
    parts: list[PartPower] = field(default_factory=list)
    children: list[RulePower] = field(default_factory=list)

    @property
    def status(self) -> Status:
        statuses: list[Status] = [p.status for p in self.parts]
        statuses += [c.status for c in self.children]
        if self.mode == "point":
            statuses = [s if s != "underpowered" else "not_checked" for s in statuses]
        if not statuses:
            return "deterministic"
        return max(statuses, key=lambda s: SEVERITY_ORDER[s])


def _alpha(
    rule: DeltaRule | LevelRule | ElicitationGapRule | DivergenceRule, policy: Policy, m: int
) -> float:
    alpha = 1.0 - (rule.confidence or policy.confidence)
    if rule.sequential.method == "alpha_spending":
        alpha = spent_alpha(alpha, 1)
    correction = getattr(rule, "correction", "none")
    if rule.mode == "detected" and correction != "none" and m > 1:
        alpha /= m  # the first step of Holm and of Benjamini-Hochberg
    return alpha


def _mde(se: float, alpha: float, planning: Planning) -> float:
    return (quantile(alpha) + quantile(1.0 - planning.power)) * se


def _items(counts: dict[str, ItemCount], name: str) -> ItemCount:
    return counts.get(name) or ItemCount(None, "not in the proxy suite")


def rule_power(
    rule: Rule, policy: Policy, counts: dict[str, ItemCount], planning: Planning, path: str
) -> RulePower:
    """The MDE of every comparison ``rule`` makes, against the margin it must resolve."""
    if isinstance(rule, Combinator):
        children = [
            rule_power(child, policy, counts, planning, f"{path}.rules.{i}")
            for i, child in enumerate(rule.rules)
        ]
        return RulePower(
            path, rule.rule_id, rule.type, "-", None, None, "", "nested rules", children=children
        )
    if isinstance(rule, ComputeRule | CadenceRule):
        note = "training compute" if isinstance(rule, ComputeRule) else "elapsed time"
        return RulePower(path, rule.rule_id, rule.type, "-", None, None, rule.unit, note)
    r, base = planning.discordance, planning.base_score
    parts: list[PartPower] = []
    if isinstance(rule, DeltaRule | ElicitationGapRule):
        if isinstance(rule, DeltaRule):
            names = sorted(counts) if rule.benchmarks == ["*"] else rule.benchmarks
            pairs = [(name, _items(counts, name)) for name in names]
        else:
            default = _items(counts, rule.default)
            pairs = [
                (f"{e} over {rule.default}", _smaller(_items(counts, e), default))
                for e in rule.elicited
            ]
        alpha = _alpha(rule, policy, len(pairs))
        factor = scale_factor(rule.scale, base)
        margin = rule.threshold if rule.threshold > 0 else None
        for label, count in pairs:
            mde = None
            if count.items:
                mde = _mde(math.sqrt(r / count.items), alpha, planning) * factor
            parts.append(PartPower(label, count.items, count.approximate, mde, margin))
        note = "" if margin is not None else "threshold 0: any established rise"
    elif isinstance(rule, LevelRule):
        names = sorted(counts) if rule.benchmarks == ["*"] else rule.benchmarks
        alpha = _alpha(rule, policy, len(names))
        level = rule.level / 100
        margin = (rule.critical_level - rule.level) if rule.critical_level else None
        for name in names:
            count = _items(counts, name)
            mde = None
            if count.items:
                mde = _mde(math.sqrt(level * (1 - level) / count.items), alpha, planning) * 100
            parts.append(
                PartPower(name, count.items, count.approximate, mde, margin, "critical_level")
            )
        note = "margin: critical minus alert level" if margin else "no critical level to resolve"
    else:
        alpha = _alpha(rule, policy, 1)
        factor = scale_factor(rule.scale, base)
        margins = {
            "general": (rule.general_rise, "general_rise"),
            "risk": (rule.general_rise - rule.risk_max_rise, "risk_max_rise"),
        }
        for label, names in (("general", rule.general), ("risk", rule.risk)):
            found = [_items(counts, n) for n in names]
            known = [c.items for c in found if c.items]
            mde = None
            if len(known) == len(found):
                se = math.sqrt(sum(r / n for n in known)) / len(known)
                mde = _mde(se, alpha, planning) * factor
            parts.append(
                PartPower(
                    f"{label}: {', '.join(names)}",
                    sum(known) if len(known) == len(found) else None,
                    any(c.approximate for c in found),
                    mde,
                    *margins[label],
                )
            )
        note = "risk margin: general_rise minus risk_max_rise"
    confidence = rule.confidence or policy.confidence
    return RulePower(
        path, rule.rule_id, rule.type, rule.mode, confidence, alpha, rule.unit, note, parts
    )


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
