"""The decision engine, rule type by rule type, with expectations computed by hand."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from tripwire.policy.compare import Comparer
from tripwire.policy.engine import (
    BASELINE_RULE_ID,
    Score,
    Snapshot,
    compare,
    evaluate_delta,
    evaluate_policy,
    evaluate_rule,
)
from tripwire.policy.inputs import Lineage
from tripwire.policy.rules import Context
from tripwire.policy.schema import Actions, DeltaRule, Policy, Rule

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


def parse(fields: dict[str, Any]) -> Rule:
    """A rule as a policy file would give it (nested rules named, checks run)."""
    policy = Policy.model_validate({"name": "p", "proxy_suite": "x.yaml", "rules": [fields]})
    return policy.rules[0]


def paired(values: list[float], hashes: list[str] | None = None, task: str = "t") -> Score:
    hashes = hashes or [f"h{i}" for i in range(len(values))]
    arr = np.asarray(values, dtype=np.float32)
    return Score(task, float(arr.mean()), None, len(values), True, tuple(hashes), arr)


def snap(*scores: Score, step: int = 1, flop: float | None = None) -> Snapshot:
    return Snapshot(f"sha256:{step}", "run", step, {s.task: s for s in scores}, flop)


def run(
    rule_: Rule,
    current: Snapshot,
    baseline: Snapshot | None,
    lineage: Lineage | None = None,
    now: datetime = NOW,
) -> Any:
    ctx = Context(Comparer(current, baseline), lineage or Lineage(), now, 0.95)
    return evaluate_rule(rule_, ctx)


def wilson(p: float, n: int, z: float) -> tuple[float, float]:
    """Wilson's score interval, written out."""
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


# ---------------------------------------------------------------- delta: statistics


def tango(b: int, c: int, n: int, d: float) -> float:
    """Tango's score statistic with a 1/2 continuity correction, written out."""
    big_b = -b - c + (2 * n - b + c) * d
    big_c = -c * d * (1 - d)
    q = (math.sqrt(big_b**2 - 4 * 2 * n * big_c) - big_b) / (2 * 2 * n)
    excess = b - c - n * d
    excess = math.copysign(max(abs(excess) - 0.5, 0.0), excess)
    return excess / math.sqrt(n * (2 * q + d * (1 - d)))


def test_paired_binary_items_use_tangos_score_interval() -> None:
    # items 0 and 2 newly right (b = 2), none newly wrong (c = 0), 4 items
    c = compare(paired([1, 1, 1, 0]), paired([0, 1, 0, 0]), rule(), 0.95)
    assert c.method == "paired (Tango score)" and c.paired_items == 4
    assert c.estimate == pytest.approx(50.0)  # the observed rise
    # the bounds are where the score statistic meets the one-sided quantile
    assert tango(2, 0, 4, c.low / 100) == pytest.approx(Z95, abs=1e-6)
    assert tango(2, 0, 4, c.high / 100) == pytest.approx(-Z95, abs=1e-6)
    # and the p-value against the threshold is the statistic's normal tail
    assert c.p_value == pytest.approx(0.5 * math.erfc(tango(2, 0, 4, 0.05) / math.sqrt(2)))
    assert c.discordant == (2, 0) and c.discordance == pytest.approx(0.5)
    assert c.p_no_rise == pytest.approx(0.125)  # mid-p: P(X > 2) + P(X = 2) / 2, X ~ Bin(2, .5)


@pytest.mark.parametrize(
    ("mode", "fired"), [("point", True), ("detected", False), ("cannot_rule_out", True)]
)
def test_modes_read_the_estimate_the_lower_or_the_upper_bound(mode: str, fired: bool) -> None:
    # estimate +50, lower bound -8.5, upper bound +75.2 against a +5 threshold
    verdict = evaluate_delta(
        rule(mode=mode), snap(paired([1, 1, 1, 0])), snap(paired([0, 1, 0, 0])), 0.95
    )
    assert (verdict.verdict == "fired") is fired


def test_non_binary_items_use_a_paired_t_interval() -> None:
    current, baseline = paired([0.5, 0.7, 0.9]), paired([0.4, 0.4, 0.4])
    c = compare(current, baseline, rule(), 0.95)
    t2 = 2.919985580355516  # Student t, 2 degrees of freedom, 95% one-sided
    se = 0.2 / math.sqrt(3)  # differences 0.1, 0.3, 0.5: sd 0.2
    assert c.method == "paired t"
    assert c.estimate == pytest.approx(30.0)
    assert c.low == pytest.approx(30.0 - t2 * 100 * se, rel=1e-6)


def test_only_shared_items_are_paired() -> None:
    current = paired([1, 1, 0], ["a", "b", "c"])
    baseline = paired([0, 1, 1], ["b", "c", "d"])
    c = compare(current, baseline, rule(), 0.95)
    # shared b, c: current (1, 0), baseline (0, 1): one newly right, one newly wrong
    assert c.paired_items == 2
    assert c.discordant == (1, 1)
    assert c.estimate == pytest.approx(0.0)


def test_items_that_differ_use_newcombes_interval() -> None:
    current = paired([1] * 14 + [0] * 6, [f"a{i}" for i in range(20)])  # 70% of 20
    baseline = paired([1] * 10 + [0] * 10, [f"b{i}" for i in range(20)])  # 50% of 20
    c = compare(current, baseline, rule(), 0.95)
    l1, u1 = wilson(0.7, 20, Z95)
    l2, u2 = wilson(0.5, 20, Z95)
    assert c.method == "unpaired (Newcombe)" and c.paired_items == 0
    assert c.estimate == pytest.approx(20.0)
    assert c.low == pytest.approx(100 * (0.2 - math.hypot(0.7 - l1, u2 - 0.5)))
    assert c.high == pytest.approx(100 * (0.2 + math.hypot(u1 - 0.7, 0.5 - l2)))
    # the p-value inverts the interval: at alpha = p the lower bound sits on the threshold
    assert c.p_value is not None and 0 < c.p_value < 1
    again = compare(current, baseline, rule(), 1 - c.p_value)
    assert again.low == pytest.approx(5.0, abs=1e-6)


def test_unpaired_comparison_without_items_combines_standard_errors() -> None:
    current = Score("t", 0.60, 0.03, 200)
    baseline = Score("t", 0.50, 0.04, 200)
    c = compare(current, baseline, rule(), 0.95)
    assert c.method == "unpaired (standard errors)"
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
    current = snap(Score("a", 0.5, 0.01, 100), Score("b", 0.9, 0.01, 100), step=2)
    baseline = snap(Score("a", 0.5, 0.01, 100), Score("b", 0.5, 0.01, 100))
    verdict = evaluate_delta(rule(benchmarks=["a", "b"]), current, baseline, 0.95)
    assert verdict.verdict == "fired"
    assert verdict.statistic == pytest.approx(40.0)
    assert "b +40.0 points" in verdict.explanation


def test_a_benchmark_missing_on_both_sides_is_undecidable() -> None:
    current = snap(Score("a", 0.5, 0.01, 100), step=2)
    verdict = evaluate_delta(rule(benchmarks=["zzz"]), current, current, 0.95)
    assert verdict.verdict == "undecidable"
    assert "zzz" in verdict.explanation


# ---------------------------------------------------------------- corrections and repeated looks


def _two_benchmarks() -> tuple[Snapshot, Snapshot]:
    # a: +5.5 points with 2.5 points of standard error: z = (5.5 - 1) / 2.5 = 1.8, p = 0.0359;
    # b: no change
    current = snap(Score("a", 0.555, 0.025, 400), Score("b", 0.5, 0.025, 400), step=2)
    baseline = snap(Score("a", 0.5, 0.0, 400), Score("b", 0.5, 0.0, 400))
    return current, baseline


@pytest.mark.parametrize(("correction", "fired"), [("none", True), ("holm", False), ("bh", False)])
def test_a_correction_holds_the_first_benchmark_to_alpha_over_m(
    correction: str, fired: bool
) -> None:
    current, baseline = _two_benchmarks()
    r = rule(
        benchmarks=["a", "b"],
        threshold=1,
        mode="detected",
        correction=correction,
        sequential="none",
    )
    verdict = run(r, current, baseline)
    a = verdict.comparisons[0]
    assert a.p_value == pytest.approx(0.5 * math.erfc(1.8 / math.sqrt(2)))  # 0.0359
    assert verdict.fired is fired
    assert a.alpha == pytest.approx(0.05 if correction == "none" else 0.025)
    assert (a.low >= 1) is fired, "the interval shown agrees with the verdict"


def test_alpha_spending_tests_the_kth_look_at_alpha_over_k_k_plus_1() -> None:
    current, baseline = _two_benchmarks()
    spending = {"method": "alpha_spending", "scope": "baseline", "looks": 0}
    r = rule(benchmarks=["a"], threshold=1, mode="detected", sequential=spending)
    first = run(r, current, baseline, Lineage(looks_since_baseline=1))
    third = run(r, current, baseline, Lineage(looks_since_baseline=3))
    assert first.comparisons[0].alpha == pytest.approx(0.025)
    assert third.comparisons[0].alpha == pytest.approx(0.05 / 12)
    assert not first.fired and not third.fired  # p = 0.0359 > 0.025
    z = 2.638257273476751  # one-sided normal quantile at 0.05 / 12
    assert third.comparisons[0].low == pytest.approx(5.5 - z * 2.5)


def test_alpha_spending_can_count_looks_over_the_whole_run() -> None:
    current, baseline = _two_benchmarks()
    r = rule(
        benchmarks=["a"],
        threshold=1,
        mode="detected",
        sequential={"looks": 0},  # alpha spending over the run: the default in detected mode
    )
    verdict = run(r, current, baseline, Lineage(looks_since_baseline=1, looks_in_run=4))
    assert verdict.comparisons[0].alpha == pytest.approx(0.05 / 20)
    assert verdict.details["sequential"]["look"] == 4


@pytest.mark.parametrize(("look", "alpha"), [(1, 0.05 / 11), (10, 0.05 / 11), (11, 0.05 / 132)])
def test_a_planned_horizon_spreads_alpha_evenly_then_thins(look: int, alpha: float) -> None:
    current, baseline = _two_benchmarks()
    r = rule(benchmarks=["a"], threshold=1, mode="detected", sequential={"looks": 10})
    verdict = run(r, current, baseline, Lineage(looks_in_run=look))
    assert verdict.alpha == pytest.approx(alpha)
    assert verdict.comparisons[0].alpha == pytest.approx(alpha)


def test_a_rules_confidence_overrides_the_policys() -> None:
    current, baseline = _two_benchmarks()
    r = rule(benchmarks=["a"], threshold=1, mode="detected", confidence=0.9, sequential="none")
    verdict = run(r, current, baseline)
    assert verdict.fired  # p = 0.0359 <= 0.10
    assert verdict.details["confidence"] == 0.9


# ---------------------------------------------------------------- level


def _binary(correct: int, n: int, task: str = "t") -> Score:
    return paired([1.0] * correct + [0.0] * (n - correct), task=task)


@pytest.mark.parametrize(
    ("mode", "level", "fired"),
    [
        ("point", 69, True),
        ("point", 71, False),
        ("detected", 62, True),  # Wilson lower bound 62.02
        ("detected", 63, False),
        ("cannot_rule_out", 76, True),  # Wilson upper bound 76.93
        ("cannot_rule_out", 77, False),
    ],
)
def test_a_level_rule_reads_the_wilson_bounds_of_the_score(
    mode: str, level: float, fired: bool
) -> None:
    r = parse(
        {
            "id": "lvl",
            "type": "level",
            "benchmarks": ["t"],
            "level": level,
            "mode": mode,
            "sequential": "none",
        }
    )
    verdict = run(r, snap(_binary(70, 100)), None)
    low, high = wilson(0.7, 100, Z95)
    c = verdict.comparisons[0]
    assert (c.low, c.high) == (pytest.approx(100 * low), pytest.approx(100 * high))
    assert verdict.fired is fired
    # the score test the Wilson interval inverts
    z = (0.7 - level / 100) / math.sqrt(level / 100 * (1 - level / 100) / 100)
    assert c.p_value == pytest.approx(0.5 * math.erfc(z / math.sqrt(2)))


def test_a_level_detected_at_the_baseline_does_not_fire_again() -> None:
    r = parse({"id": "lvl", "type": "level", "benchmarks": ["t"], "level": 60, "mode": "point"})
    newly = run(r, snap(_binary(70, 100), step=2), snap(_binary(55, 100)))
    again = run(r, snap(_binary(70, 100), step=2), snap(_binary(75, 100)))  # lower bound 67.5
    assert newly.fired
    assert not again.fired
    assert "already reached it (detected) at baseline step 1" in again.explanation


def test_a_baseline_that_only_could_have_reached_the_level_does_not_silence_the_rule() -> None:
    # cannot_rule_out fires at 52 of 100 (upper bound 60.2 >= 55); that checkpoint becomes the
    # baseline, but it never *detected* 55, so a checkpoint truly past the level fires again
    r = parse(
        {
            "id": "lvl",
            "type": "level",
            "benchmarks": ["t"],
            "level": 55,
            "mode": "cannot_rule_out",
            "critical_level": 70,
        }
    )
    assert run(r, snap(_binary(52, 100)), None).fired
    later = run(r, snap(_binary(58, 100), step=2), snap(_binary(52, 100)))
    assert later.fired and later.severity == "alert"


def test_the_level_rule_fires_again_at_the_critical_level_after_an_alert() -> None:
    r = parse(
        {
            "id": "lvl",
            "type": "level",
            "benchmarks": ["t"],
            "level": 55,
            "critical_level": 70,
            "mode": "detected",
            "sequential": "none",
        }
    )
    baseline = snap(_binary(68, 100))  # the alert level is detected there (lower bound 60)
    quiet = run(r, snap(_binary(66, 100), step=2), baseline)
    critical = run(r, snap(_binary(85, 100), step=3), baseline)  # lower bound 78 >= 70
    assert not quiet.fired
    assert critical.fired and critical.severity == "critical"
    assert "critical level 70" in critical.explanation
    assert critical.details["critical_reached"] == ["t"]


def test_a_lower_is_better_level_is_reached_by_falling_to_it() -> None:
    r = parse({"id": "lvl", "type": "level", "benchmarks": ["t"], "level": 20, "mode": "point"})
    score = Score("t", 0.15, 0.01, 100, higher_is_better=False)
    assert run(r, snap(score), None).fired


# ---------------------------------------------------------------- compute and cadence


@pytest.mark.parametrize(
    ("fields", "base_flop", "flop", "verdict"),
    [
        ({"factor": 4}, 1e23, 4e23, "fired"),
        ({"factor": 4}, 1e23, 3.9e23, "not_fired"),
        ({"above_flop": 1e24}, 5e23, 1.2e24, "fired"),
        ({"above_flop": 1e24}, 2e24, 3e24, "not_fired"),  # crossed before the baseline
        ({"factor": 4, "above_flop": 1e24}, 5e23, 1.1e24, "fired"),  # 2.2x, but crossed 1e24
        ({"factor": 4}, None, 4e23, "undecidable"),
        ({"factor": 4}, 1e23, None, "undecidable"),
    ],
)
def test_compute_rules(
    fields: dict[str, float], base_flop: float | None, flop: float | None, verdict: str
) -> None:
    r = parse({"id": "c", "type": "compute", **fields})
    result = run(r, snap(_binary(5, 10), step=2, flop=flop), snap(_binary(5, 10), flop=base_flop))
    assert result.verdict == verdict
    if "factor" in fields and flop and base_flop:
        assert result.statistic == pytest.approx(flop / base_flop)


@pytest.mark.parametrize(
    ("age_days", "verdict"), [(181, "fired"), (180, "fired"), (179, "not_fired")]
)
def test_a_cadence_rule_fires_once_the_last_deep_evaluation_is_old_enough(
    age_days: int, verdict: str
) -> None:
    r = parse({"id": "six-months", "type": "cadence", "every": "180d"})
    lineage = Lineage(baseline_at=NOW - timedelta(days=age_days))
    result = run(r, snap(_binary(5, 10), step=2), snap(_binary(5, 10)), lineage)
    assert result.verdict == verdict
    assert result.statistic == pytest.approx(age_days)
    assert result.threshold == pytest.approx(180)


def test_a_cadence_rule_without_a_deep_evaluation_time_is_undecidable() -> None:
    r = parse({"id": "six-months", "type": "cadence", "every": "26w"})
    assert run(r, snap(_binary(5, 10)), snap(_binary(5, 10))).verdict == "undecidable"


# ---------------------------------------------------------------- elicitation gap


def test_an_elicitation_gap_pairs_profiles_on_shared_items() -> None:
    default = [1.0] * 5 + [0.0] * 15
    cot = [1.0] * 9 + [0.0] * 11  # items 5..8 newly right: +20 points
    few = [0.0] + [1.0] * 5 + [0.0] * 14  # item 0 lost, item 5 gained: 0 points
    current = snap(paired(default, task="d"), paired(cot, task="cot"), paired(few, task="few"))
    r = parse(
        {
            "id": "gap",
            "type": "elicitation_gap",
            "default": "d",
            "elicited": ["cot", "few"],
            "threshold": 10,
            "mode": "point",
        }
    )
    verdict = run(r, current, None)
    assert verdict.fired
    assert [c.estimate for c in verdict.comparisons] == [pytest.approx(20), pytest.approx(0)]
    assert [c.discordant for c in verdict.comparisons] == [(4, 0), (1, 1)]
    assert verdict.statistic == pytest.approx(20)
    assert "cot over d" in verdict.explanation


# ---------------------------------------------------------------- divergence


def _divergence(risk_now: float, mode: str = "detected") -> Any:
    # general: +10 points, 1 point of standard error; risk: risk_now - 50 points, 1 point
    current = snap(Score("g", 0.60, 0.01, 1000), Score("r", risk_now, 0.01, 1000), step=2)
    baseline = snap(Score("g", 0.50, 0.0, 1000), Score("r", 0.50, 0.0, 1000))
    r = parse(
        {
            "id": "sandbagging",
            "type": "divergence",
            "general": ["g"],
            "risk": ["r"],
            "general_rise": 5,
            "risk_max_rise": 2,
            "mode": mode,
            "sequential": "none" if mode == "detected" else None,
        }
    )
    return run(r, current, baseline)


def test_divergence_fires_when_general_rises_and_risk_stays_flat() -> None:
    verdict = _divergence(0.50)
    general, risk = verdict.comparisons
    assert general.low == pytest.approx(10 - Z95)  # 8.36 >= 5
    assert risk.high == pytest.approx(0 + Z95)  # 1.64 <= 2
    assert verdict.fired
    # intersection-union: the larger of the two one-sided p-values
    assert verdict.p_value == pytest.approx(0.5 * math.erfc(2 / math.sqrt(2)))


def test_divergence_does_not_fire_when_risk_rose_with_general() -> None:
    verdict = _divergence(0.58)
    assert not verdict.fired
    assert verdict.comparisons[1].estimate == pytest.approx(8.0)


def test_divergence_pools_each_set_as_the_mean_change() -> None:
    current = snap(
        Score("g1", 0.60, 0.01, 1000),
        Score("g2", 0.54, 0.01, 1000),
        Score("r", 0.5, 0.01, 1000),
        step=2,
    )
    baseline = snap(
        Score("g1", 0.5, 0.0, 1000), Score("g2", 0.5, 0.0, 1000), Score("r", 0.5, 0.0, 1000)
    )
    r = parse(
        {
            "id": "d",
            "type": "divergence",
            "general": ["g1", "g2"],
            "risk": ["r"],
            "general_rise": 5,
            "mode": "point",
        }
    )
    general = run(r, current, baseline).comparisons[0]
    assert general.estimate == pytest.approx(7.0)  # mean of +10 and +4
    assert general.high - general.estimate == pytest.approx(Z95 * math.sqrt(2) / 2)


# ---------------------------------------------------------------- combinators


FIRES = {"type": "compute", "factor": 2}  # 4x the baseline's compute below
QUIET = {"type": "compute", "factor": 8}
UNKNOWN = {"type": "cadence", "every": "1d"}  # no deep evaluation time: undecidable


@pytest.mark.parametrize(
    ("kind", "children", "verdict", "fired"),
    [
        ({"type": "any"}, [FIRES, QUIET], "fired", 1),
        ({"type": "any"}, [QUIET, QUIET], "not_fired", 0),
        ({"type": "any"}, [QUIET, UNKNOWN], "undecidable", 0),
        ({"type": "any"}, [FIRES, UNKNOWN], "fired", 1),
        ({"type": "all"}, [FIRES, FIRES], "fired", 2),
        ({"type": "all"}, [FIRES, QUIET], "not_fired", 1),
        ({"type": "all"}, [FIRES, UNKNOWN], "undecidable", 1),
        ({"type": "at_least", "k": 2}, [FIRES, FIRES, QUIET], "fired", 2),
        ({"type": "at_least", "k": 2}, [FIRES, UNKNOWN, QUIET], "undecidable", 1),
        ({"type": "at_least", "k": 2}, [FIRES, QUIET, QUIET], "not_fired", 1),
    ],
)
def test_combinators_use_three_valued_logic(
    kind: dict[str, Any], children: list[dict[str, Any]], verdict: str, fired: int
) -> None:
    r = parse({"id": "combo", **kind, "rules": children, "severity": "critical"})
    result = run(r, snap(_binary(5, 10), step=2, flop=4e23), snap(_binary(5, 10), flop=1e23))
    assert result.verdict == verdict
    assert result.statistic == fired
    assert result.severity == "critical"
    assert [c.rule_id for c in result.children] == [f"combo.{i}" for i in range(len(children))]


def test_a_combinator_acts_with_its_own_actions_and_nests() -> None:
    r = parse(
        {
            "id": "outer",
            "type": "any",
            "rules": [
                {"id": "inner", "type": "all", "rules": [FIRES, {"type": "compute", "factor": 3}]},
                QUIET,
            ],
            "actions": {"notify": ["safety"], "review_hold": True},
        }
    )
    result = run(r, snap(_binary(5, 10), step=2, flop=4e23), snap(_binary(5, 10), flop=1e23))
    assert result.fired
    assert result.actions.notify == ["safety"] and result.actions.review_hold
    inner = result.children[0]
    assert inner.rule_id == "inner" and inner.fired
    assert [c.rule_id for c in inner.children] == ["inner.0", "inner.1"]


# ---------------------------------------------------------------- the policy


def test_a_runs_first_checkpoint_fires_the_baseline_rule_and_rules_needing_no_baseline() -> None:
    policy = Policy.model_validate(
        {
            "name": "p",
            "proxy_suite": "x.yaml",
            "rules": [
                rule().model_dump(),
                {"id": "lvl", "type": "level", "benchmarks": ["t"], "level": 40, "mode": "point"},
                {"id": "flop", "type": "compute", "above_flop": 1e25},
                {"id": "grow", "type": "compute", "factor": 4},
            ],
        }
    )
    actions = Actions(deep_suites=["deep.yaml"])  # type: ignore[list-item]
    verdicts = evaluate_policy(
        policy,
        snap(_binary(5, 10), flop=2e25),
        None,
        initial_actions=actions,
        now=NOW,
    )
    assert [(v.rule_id, v.verdict) for v in verdicts] == [
        (BASELINE_RULE_ID, "fired"),
        ("lvl", "fired"),
        ("flop", "fired"),
    ]
    assert verdicts[0].actions is actions


def test_every_verdict_serialises_to_plain_json() -> None:
    r = parse(
        {
            "id": "a",
            "type": "any",
            "rules": [FIRES, {"type": "delta", "benchmarks": ["t"], "threshold": 5}],
        }
    )
    result = run(
        r, snap(paired([1, 1, 0, 0]), step=2, flop=4e23), snap(paired([1, 0, 0, 0]), flop=1e23)
    )
    data = result.as_json()
    json.dumps(data, allow_nan=False)
    assert data["children"][1]["comparisons"][0]["discordant"] == [1, 0]


# ---------------------------------------------------------------- pairing problems and records


def test_duplicate_document_hashes_are_an_error_not_a_mis_pairing() -> None:
    # the same two documents in a different order: identical answers would pair as +50
    current = paired([1, 0, 1, 0], ["x", "x", "y", "z"])
    baseline = paired([0, 1, 1, 0], ["x", "x", "y", "z"][::-1])
    verdict = evaluate_delta(rule(), snap(current, step=2), snap(baseline), 0.95)
    assert verdict.verdict == "undecidable"
    assert "occurs twice" in verdict.explanation and "pairing is ambiguous" in verdict.explanation


def test_items_shared_in_part_combine_the_paired_and_the_unpaired_comparison() -> None:
    shared = [f"s{i}" for i in range(60)]
    current = paired(
        [1] * 40 + [0] * 20 + [1] * 30 + [0] * 10, shared + [f"c{i}" for i in range(40)]
    )
    baseline = paired(
        [1] * 30 + [0] * 30 + [1] * 20 + [0] * 20, shared + [f"b{i}" for i in range(40)]
    )
    c = compare(current, baseline, rule(), 0.95)
    assert c.paired_items == 60 and c.unshared == (40, 40)
    assert c.method.startswith("paired on 60 shared items + unpaired on 40 / 40 others")
    # between the paired estimate (+16.7) and the unpaired one (+25.0)
    assert 100 / 6 < c.estimate < 25.0


def test_a_detected_rule_records_the_corrected_p_value_that_made_the_decision() -> None:
    current, baseline = _two_benchmarks()
    r = rule(benchmarks=["a", "b"], threshold=1, mode="detected", sequential="none")
    verdict = run(r, current, baseline)
    a, b = verdict.comparisons
    assert verdict.p_value == pytest.approx(min(a.adjusted_p, b.adjusted_p))
    assert a.adjusted_p == pytest.approx(2 * a.p_value)  # Holm's first step
    assert verdict.alpha == pytest.approx(0.05) and verdict.mode == "detected"
    assert verdict.fired is (verdict.p_value <= verdict.alpha)
    cro = run(rule(benchmarks=["a"], threshold=1, mode="cannot_rule_out"), current, baseline)
    assert cro.fired and cro.p_value is not None and cro.p_value > cro.alpha
    assert run(rule(benchmarks=["a"], threshold=1), current, baseline).p_value is None  # point


def test_an_any_over_detected_children_corrects_across_them_with_holm() -> None:
    current, baseline = _two_benchmarks()
    child = {"type": "delta", "threshold": 1, "mode": "detected", "sequential": "none"}
    alone = run(parse({"id": "x", **child, "benchmarks": ["a"]}), current, baseline)
    assert alone.fired  # p = 0.036 <= 0.05
    children = [{**child, "benchmarks": ["a"]}, {**child, "benchmarks": ["b"]}]
    verdict = run(parse({"id": "either", "type": "any", "rules": children}), current, baseline)
    first, _ = verdict.children
    assert first.alpha == pytest.approx(0.025)  # Holm's first step over two children
    assert not verdict.fired  # 0.036 > 0.05 / 2: one of two tests may not spend all of alpha
    assert verdict.details["holm_factors"] == {"either.0": 0.5, "either.1": 0.5}
    both = run(parse({"id": "both", "type": "all", "rules": children}), current, baseline)
    assert both.children[0].alpha == pytest.approx(0.05)  # all: no correction needed


def test_a_decision_warns_when_the_observed_discordance_exceeds_the_assumption() -> None:
    current = paired([1, 0] * 50)
    baseline = paired([0, 1] * 50)  # every item changed: discordance 1.0
    ctx = Context(Comparer(snap(current, step=2), snap(baseline)), Lineage(), NOW, 0.95, 0.25)
    verdict = evaluate_rule(rule(), ctx)
    assert verdict.comparisons[0].discordance == pytest.approx(1.0)
    assert "observed discordance 1.00" in verdict.warnings[0]
    assert "assumed 0.25" in verdict.warnings[0]
