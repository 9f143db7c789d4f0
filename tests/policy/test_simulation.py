"""Error rates by simulation, with fixed seeds: each mode keeps the error it promises.

Items follow ``tripwire.policy.simulation.ItemModel`` (25% of items change answer between two
checkpoints of equal ability). "Within simulation error" means within three Monte Carlo
standard errors of the nominal rate.
"""

from __future__ import annotations

import math

import pytest

from tripwire.policy.schema import Policy, Rule
from tripwire.policy.simulation import ItemModel, fire_rate

ALPHA = 0.05


def delta(**fields: object) -> Rule:
    rule: dict[str, object] = {
        "id": "r",
        "type": "delta",
        "benchmarks": ["t"],
        "threshold": 0,
        "mode": "detected",
    }
    rule.update(fields)
    return Policy.model_validate({"name": "s", "proxy_suite": "p.yaml", "rules": [rule]}).rules[0]


def nominal_bound(replicates: int) -> float:
    return ALPHA + 3 * math.sqrt(ALPHA * (1 - ALPHA) / replicates)


def test_the_item_model_has_the_discordance_policy_check_assumes() -> None:
    assert ItemModel().discordance() == pytest.approx(0.25, abs=0.005)


def test_detected_fires_at_most_at_the_nominal_rate_with_no_true_change() -> None:
    rate = fire_rate(delta(), changes={"t": 0.0}, n_items=700, replicates=4000, seed=1)
    assert rate.rate <= nominal_bound(4000), rate


def test_detected_fires_at_most_at_the_nominal_rate_when_the_rise_equals_the_threshold() -> None:
    rate = fire_rate(delta(threshold=5), changes={"t": 0.05}, n_items=700, replicates=4000, seed=2)
    assert rate.rate <= nominal_bound(4000), rate


def test_detected_has_80_percent_power_for_a_true_5_point_rise_on_700_paired_items() -> None:
    rate = fire_rate(delta(), changes={"t": 0.05}, n_items=700, replicates=2000, seed=3)
    assert rate.rate >= 0.80, rate


def test_cannot_rule_out_misses_a_rise_at_the_threshold_at_most_at_the_nominal_rate() -> None:
    rule = delta(threshold=5, mode="cannot_rule_out")
    rate = fire_rate(rule, changes={"t": 0.05}, n_items=700, replicates=4000, seed=4)
    assert 1 - rate.rate <= nominal_bound(4000), rate


def test_alpha_spending_keeps_false_alarms_over_ten_looks_within_alpha() -> None:
    common = {"changes": {"t": 0.0}, "n_items": 300, "replicates": 1000, "seed": 5, "looks": 10}
    plain = fire_rate(delta(), **common)  # type: ignore[arg-type]
    spent = fire_rate(delta(sequential="alpha_spending"), **common)  # type: ignore[arg-type]
    assert plain.rate > 0.15, "ten uncorrected looks raise false alarms well above alpha"
    assert spent.rate <= nominal_bound(1000), spent


@pytest.mark.parametrize("correction", ["holm", "bh"])
def test_a_correction_keeps_false_alarms_over_ten_benchmarks_within_alpha(
    correction: str,
) -> None:
    changes = {f"b{i}": 0.0 for i in range(10)}
    common = {"changes": changes, "n_items": 200, "replicates": 800, "seed": 6}
    plain = fire_rate(delta(benchmarks=list(changes), correction="none"), **common)  # type: ignore[arg-type]
    fixed = fire_rate(delta(benchmarks=list(changes), correction=correction), **common)  # type: ignore[arg-type]
    assert plain.rate > 0.25
    assert fixed.rate <= nominal_bound(800), fixed
