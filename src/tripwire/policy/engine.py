"""The decision engine: pure functions from (policy, scores, baseline, now) to verdicts.

No database, queue or clock here: everything arrives as arguments, so the same code decides live
checkpoints and replays history in backtests. Statistics are explained in ``docs/policies.md``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import numpy as np
from scipy.stats import norm

from tripwire.policy.schema import Actions, DeltaRule, Mode, Policy

Verdict = Literal["fired", "not_fired", "undecidable"]


@dataclass(frozen=True, slots=True)
class Score:
    """One benchmark scored on one checkpoint, as the engine sees it."""

    task: str
    score: float
    """Fraction in [0, 1]."""
    stderr: float | None
    n_items: int
    higher_is_better: bool = True
    item_hashes: tuple[str, ...] | None = None
    item_values: np.ndarray[Any, Any] | None = None


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A checkpoint's proxy results."""

    checkpoint: str
    """Content hash."""
    run: str
    step: int | None
    scores: dict[str, Score]
    training_flop: float | None = None
    evaluated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Comparison:
    """One benchmark compared with the baseline, in the rule's scale."""

    task: str
    estimate: float
    low: float
    """One-sided lower confidence bound."""
    high: float
    """One-sided upper confidence bound."""
    p_value: float | None
    """One-sided p-value against 'no rise beyond the threshold'."""
    paired_items: int
    method: str
    crossed: bool


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
    explanation: str
    actions: Actions
    comparisons: list[Comparison] = field(default_factory=list)


BASELINE_RULE_ID = "first-checkpoint-baseline"


def _paired(current: Score, baseline: Score) -> tuple[np.ndarray[Any, Any], int] | None:
    if current.item_hashes is None or baseline.item_hashes is None:
        return None
    if current.item_values is None or baseline.item_values is None:
        return None
    index = {h: i for i, h in enumerate(baseline.item_hashes)}
    pairs = [(i, index[h]) for i, h in enumerate(current.item_hashes) if h in index]
    if len(pairs) < 2:
        return None
    ci = np.fromiter((p[0] for p in pairs), dtype=np.int64, count=len(pairs))
    bi = np.fromiter((p[1] for p in pairs), dtype=np.int64, count=len(pairs))
    diffs = current.item_values[ci].astype(float) - baseline.item_values[bi].astype(float)
    return diffs, len(pairs)


def compare(current: Score, baseline: Score, rule: DeltaRule, confidence: float) -> Comparison:
    """The rise of ``current`` over ``baseline`` in the rule's scale, with one-sided bounds.

    Paired on shared items when both carry per-item outcomes (the mean of item differences and
    its standard error); otherwise unpaired from the two standard errors.
    """
    sign = 1.0 if current.higher_is_better else -1.0
    z = float(norm.ppf(confidence))
    paired = _paired(current, baseline)
    if paired is not None:
        diffs, n = paired
        diff = float(diffs.mean()) * sign
        se = float(diffs.std(ddof=1) / math.sqrt(n))
        method = "paired"
    else:
        n = 0
        diff = (current.score - baseline.score) * sign
        se_c = current.stderr if current.stderr is not None else _binomial_se(current)
        se_b = baseline.stderr if baseline.stderr is not None else _binomial_se(baseline)
        se = math.sqrt(se_c**2 + se_b**2)
        method = "unpaired"
    base_value = baseline.score if current.higher_is_better else 1.0 - baseline.score
    if rule.scale == "points":
        scale = 100.0
    elif rule.scale == "relative":
        scale = 100.0 / base_value if base_value > 0 else math.inf
    else:  # error_rate_reduction: share of the baseline's errors removed
        errors = 1.0 - base_value
        scale = 100.0 / errors if errors > 0 else math.inf
    estimate, se_scaled = diff * scale, se * scale
    low, high = estimate - z * se_scaled, estimate + z * se_scaled
    if math.isfinite(se_scaled) and se_scaled > 0:
        p_value = float(norm.sf((estimate - rule.threshold) / se_scaled))
    else:
        p_value = None
    crossed = _crossed(rule.mode, estimate, low, high, rule.threshold)
    return Comparison(current.task, estimate, low, high, p_value, n, method, crossed)


def _binomial_se(score: Score) -> float:
    if score.n_items <= 0:
        return math.inf
    p = min(max(score.score, 0.0), 1.0)
    return math.sqrt(max(p * (1 - p), 0.25 / score.n_items) / score.n_items)


def _crossed(mode: Mode, estimate: float, low: float, high: float, threshold: float) -> bool:
    if mode == "point":
        return estimate >= threshold
    if mode == "detected":
        return low >= threshold
    return high >= threshold


def _unit(rule: DeltaRule) -> str:
    return {"points": "points", "relative": "% relative", "error_rate_reduction": "% of errors"}[
        rule.scale
    ]


def evaluate_delta(
    rule: DeltaRule, current: Snapshot, baseline: Snapshot, confidence: float
) -> RuleVerdict:
    """A ``delta`` rule: fires if any named benchmark rose by at least the threshold."""
    names = sorted(current.scores) if rule.benchmarks == ["*"] else rule.benchmarks
    conf = rule.confidence or confidence
    comparisons = []
    missing = []
    for name in names:
        cur, base = current.scores.get(name), baseline.scores.get(name)
        if cur is None or base is None:
            missing.append(name)
            continue
        comparisons.append(compare(cur, base, rule, conf))
    unit = _unit(rule)
    if not comparisons:
        return RuleVerdict(
            rule.id,
            rule.type,
            rule.severity,
            "undecidable",
            rule.threshold,
            None,
            None,
            None,
            f"no scores for {', '.join(missing)} on this checkpoint and its baseline",
            rule.actions,
        )
    fired = [c for c in comparisons if c.crossed]
    deciding = max(fired or comparisons, key=lambda c: c.estimate)
    bound = {"point": "estimate", "detected": "lower bound", "cannot_rule_out": "upper bound"}[
        rule.mode
    ]
    parts = [
        f"{c.task} {c.estimate:+.1f} {unit} [{c.low:+.1f}, {c.high:+.1f}]"
        f" ({c.method}{f', {c.paired_items} items' if c.paired_items else ''})"
        for c in comparisons
    ]
    verb = "crossed" if fired else "did not cross"
    explanation = (
        f"{', '.join(parts)} since baseline step {baseline.step}; the {bound} ({rule.mode}, "
        f"{conf:.0%} one-sided) {verb} +{rule.threshold:g} {unit}"
    )
    if fired:
        explanation += f" on {', '.join(c.task for c in fired)}"
    if missing:
        explanation += f"; no scores for {', '.join(missing)}"
    return RuleVerdict(
        rule.id,
        rule.type,
        rule.severity,
        "fired" if fired else "not_fired",
        rule.threshold,
        deciding.estimate,
        (deciding.low, deciding.high),
        deciding.p_value,
        explanation,
        rule.actions,
        comparisons,
    )


def evaluate_policy(
    policy: Policy,
    current: Snapshot,
    baseline: Snapshot | None,
    *,
    initial_actions: Actions,
    now: datetime,
) -> list[RuleVerdict]:
    """Every rule of ``policy`` for ``current``.

    With no baseline (the run's first decided checkpoint) the only verdict is the baseline rule,
    which fires so the checkpoint is evaluated deeply and becomes the run's first baseline.
    """
    del now  # time-based rules (cadence) arrive with the full policy language
    if baseline is None:
        return [
            RuleVerdict(
                BASELINE_RULE_ID,
                "baseline",
                "alert",
                "fired",
                None,
                None,
                None,
                None,
                f"first checkpoint of run {current.run!r}: evaluated deeply to become its "
                "first baseline",
                initial_actions,
            )
        ]
    return [evaluate_delta(rule, current, baseline, policy.confidence) for rule in policy.rules]
