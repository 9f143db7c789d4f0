"""What the decision engine returns: one verdict per rule, with the numbers behind it."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

from tripwire.policy.schema import Actions
from tripwire.policy.stats import mcnemar_midp

Verdict = Literal["fired", "not_fired", "undecidable"]


@dataclass(frozen=True, slots=True)
class Comparison:
    """One benchmark (or set) compared with its reference, in the rule's unit."""

    task: str
    estimate: float
    low: float
    """One-sided lower confidence bound at level ``alpha``."""
    high: float
    """One-sided upper confidence bound at level ``alpha``."""
    p_value: float | None
    """One-sided p-value against "the threshold was not crossed"."""
    paired_items: int
    method: str
    crossed: bool
    alpha: float | None = None
    """One-sided error level of the bounds (after correction and alpha spending)."""
    threshold: float | None = None
    """The threshold this comparison was held to, in the rule's unit."""
    discordant: tuple[int, int] | None = None
    """Paired binary items newly right and newly wrong (McNemar's b and c)."""
    note: str = ""
    adjusted_p: float | None = None
    """``p_value`` corrected across the rule's comparisons (``detected`` mode): the comparison
    crosses exactly when this is at most the rule's alpha."""
    unshared: tuple[int, int] = (0, 0)
    """Items scored only on the checkpoint, and only on the reference (not paired)."""

    @property
    def discordance(self) -> float | None:
        """Observed share of paired items whose outcome differs (b + c) / n."""
        if self.discordant is None or self.paired_items <= 0:
            return None
        return (self.discordant[0] + self.discordant[1]) / self.paired_items

    @property
    def p_no_rise(self) -> float | None:
        """Exact one-sided McNemar mid-p against "no rise at all" (paired binary items)."""
        return mcnemar_midp(*self.discordant) if self.discordant is not None else None

    def as_json(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "estimate": finite(self.estimate),
            "low": finite(self.low),
            "high": finite(self.high),
            "p_value": finite(self.p_value),
            "paired_items": self.paired_items,
            "method": self.method,
            "crossed": self.crossed,
            "alpha": finite(self.alpha),
            "threshold": finite(self.threshold),
            "discordant": list(self.discordant) if self.discordant else None,
            "p_no_rise": finite(self.p_no_rise),
            "adjusted_p": finite(self.adjusted_p),
            "discordance": finite(self.discordance),
            "unshared": list(self.unshared),
            "note": self.note,
        }


@dataclass(frozen=True, slots=True)
class RuleVerdict:
    """One rule evaluated for one checkpoint."""

    rule_id: str
    rule_type: str
    severity: str
    verdict: Verdict
    threshold: float | None
    statistic: float | None
    """The deciding comparison's estimate (e.g. the rise in points)."""
    interval: tuple[float, float] | None
    p_value: float | None
    """The p-value that made the decision. ``detected``: the smallest corrected p-value against
    "the threshold was not crossed"; the rule fired iff it is at most ``alpha``.
    ``cannot_rule_out``: the largest p-value against "the threshold was crossed"; the rule fired
    iff it is above ``alpha`` (the crossing could not be excluded). ``point`` and rules without
    statistics: None."""
    explanation: str
    actions: Actions
    comparisons: list[Comparison] = field(default_factory=list)
    unit: str = ""
    children: list[RuleVerdict] = field(default_factory=list)
    """Verdicts of a combinator's nested rules."""
    details: dict[str, Any] = field(default_factory=dict)
    """Rule-specific inputs (compute, elapsed time, error levels, looks), JSON-safe."""
    mode: str | None = None
    """The statistical mode; None for rules without statistics."""
    alpha: float | None = None
    """The one-sided error level the decision was made at (after alpha spending and any
    correction across a combinator's children)."""
    ratio: float | None = None
    """``detected`` mode: the factor on ``alpha`` at which the verdict would flip, p / alpha
    (at most 1 when fired). A combinator corrects across its children with it."""
    warnings: list[str] = field(default_factory=list)
    """What a reviewer should know: observed discordance above the policy's assumption, ..."""

    @property
    def fired(self) -> bool:
        return self.verdict == "fired"

    def as_json(self) -> dict[str, Any]:
        """Everything but the actions, JSON-safe (no NaN or infinity)."""
        return {
            "rule_id": self.rule_id,
            "rule_type": self.rule_type,
            "severity": self.severity,
            "verdict": self.verdict,
            "threshold": finite(self.threshold),
            "statistic": finite(self.statistic),
            "interval": [finite(v) for v in self.interval] if self.interval else None,
            "p_value": finite(self.p_value),
            "mode": self.mode,
            "alpha": finite(self.alpha),
            "ratio": finite(self.ratio),
            "warnings": list(self.warnings),
            "unit": self.unit,
            "explanation": self.explanation,
            "comparisons": [c.as_json() for c in self.comparisons],
            "details": self.details,
            "children": [c.as_json() for c in self.children],
        }


def finite(value: float | None) -> float | None:
    """``value`` as a plain float, or None when missing, NaN or infinite."""
    if value is None or not math.isfinite(value):
        return None
    return float(value)
