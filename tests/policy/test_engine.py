"""The decision engine, with expectations computed by hand."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pytest

from tripwire.policy.engine import (
    BASELINE_RULE_ID,
    Score,
    Snapshot,
    compare,
    evaluate_delta,
    evaluate_policy,
)
from tripwire.policy.schema import Actions, DeltaRule, Policy

Z95 = 1.6448536269514722
NOW = datetime(2026, 11, 23, tzinfo=UTC)


def rule(**overrides: object) -> DeltaRule:
    fields: dict[str, object] = {
        "id": "r",
        "type": "delta",
        "benchmarks": ["t"],
        "threshold": 5.0,
        "mode": "point",
    }
    fields.update(overrides)
    return DeltaRule.model_validate(fields)


def paired(values: list[float], hashes: list[str] | None = None) -> Score:
    hashes = hashes or [f"h{i}" for i in range(len(values))]
    arr = np.asarray(values, dtype=np.float32)
    return Score("t", float(arr.mean()), None, len(values), True, tuple(hashes), arr)


def snap(score: Score, step: int = 1) -> Snapshot:
    return Snapshot("sha256:x", "run", step, {score.task: score})


def test_paired_comparison_uses_item_differences() -> None:
    current, baseline = paired([1, 1, 1, 0]), paired([0, 1, 0, 0])
    c = compare(current, baseline, rule(), 0.95)
    se = np.std([1, 0, 1, 0], ddof=1) / 2 * 100  # 28.87 points
    assert c.method == "paired" and c.paired_items == 4
    assert c.estimate == pytest.approx(50.0)
    assert c.low == pytest.approx(50 - Z95 * se)
    assert c.high == pytest.approx(50 + Z95 * se)


@pytest.mark.parametrize(
    ("mode", "fired"), [("point", True), ("detected", False), ("cannot_rule_out", True)]
)
def test_modes_read_the_estimate_the_lower_or_the_upper_bound(mode: str, fired: bool) -> None:
    # estimate +50, lower bound +2.5, upper bound +97.5 against a +5 threshold
    verdict = evaluate_delta(
        rule(mode=mode), snap(paired([1, 1, 1, 0])), snap(paired([0, 1, 0, 0])), 0.95
    )
    assert (verdict.verdict == "fired") is fired


def test_only_shared_items_are_paired() -> None:
    current = paired([1, 1, 0], ["a", "b", "c"])
    baseline = paired([0, 1, 1], ["b", "c", "d"])
    c = compare(current, baseline, rule(), 0.95)
    # shared b, c: current (1, 0), baseline (0, 1): diffs (+1, -1)
    assert c.paired_items == 2
    assert c.estimate == pytest.approx(0.0)


def test_unpaired_comparison_combines_standard_errors() -> None:
    current = Score("t", 0.60, 0.03, 200)
    baseline = Score("t", 0.50, 0.04, 200)
    c = compare(current, baseline, rule(), 0.95)
    assert c.method == "unpaired"
    assert c.estimate == pytest.approx(10.0)
    assert c.high - c.estimate == pytest.approx(Z95 * 5.0)  # sqrt(3^2 + 4^2) = 5 points
    assert c.p_value == pytest.approx(0.5 * math.erfc((10 - 5) / 5 / math.sqrt(2)))


def test_relative_and_error_rate_scales() -> None:
    current, baseline = Score("t", 0.90, 0.01, 100), Score("t", 0.80, 0.01, 100)
    rel = compare(current, baseline, rule(scale="relative"), 0.95)
    err = compare(current, baseline, rule(scale="error_rate_reduction"), 0.95)
    assert rel.estimate == pytest.approx(12.5)  # 10 points on a base of 80
    assert err.estimate == pytest.approx(50.0)  # errors fell from 20% to 10%


def test_lower_is_better_metrics_count_a_fall_as_a_rise() -> None:
    current = Score("t", 0.20, 0.01, 100, higher_is_better=False)
    baseline = Score("t", 0.30, 0.01, 100, higher_is_better=False)
    assert compare(current, baseline, rule(), 0.95).estimate == pytest.approx(10.0)


def test_any_named_benchmark_crossing_fires_the_rule() -> None:
    current = Snapshot(
        "c", "run", 2, {"a": Score("a", 0.5, 0.01, 100), "b": Score("b", 0.9, 0.01, 100)}
    )
    baseline = Snapshot(
        "b", "run", 1, {"a": Score("a", 0.5, 0.01, 100), "b": Score("b", 0.5, 0.01, 100)}
    )
    verdict = evaluate_delta(rule(benchmarks=["a", "b"]), current, baseline, 0.95)
    assert verdict.verdict == "fired"
    assert verdict.statistic == pytest.approx(40.0)
    assert "b +40.0 points" in verdict.explanation


def test_a_benchmark_missing_on_both_sides_is_undecidable() -> None:
    current = Snapshot("c", "run", 2, {"a": Score("a", 0.5, 0.01, 100)})
    verdict = evaluate_delta(rule(benchmarks=["zzz"]), current, current, 0.95)
    assert verdict.verdict == "undecidable"
    assert "zzz" in verdict.explanation


def test_a_runs_first_checkpoint_fires_the_baseline_rule() -> None:
    policy = Policy.model_validate(
        {"name": "p", "proxy_suite": "x.yaml", "rules": [rule().model_dump()]}
    )
    actions = Actions(deep_suites=["deep.yaml"])  # type: ignore[list-item]
    verdicts = evaluate_policy(policy, snap(paired([1, 0])), None, initial_actions=actions, now=NOW)
    assert [(v.rule_id, v.verdict) for v in verdicts] == [(BASELINE_RULE_ID, "fired")]
    assert verdicts[0].actions is actions
