"""Error rates by simulation, with fixed seeds, through the engine's own functions.

The same functions as ``bench/validity.py`` (which prints the full tables for docs/policies.md),
on smaller runs. "Within simulation error" means within three Monte Carlo standard errors.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tripwire.policy.compare import Comparer
from tripwire.policy.engine import evaluate_rule
from tripwire.policy.inputs import Lineage, Score, Snapshot
from tripwire.policy.rules import Context
from tripwire.policy.schema import Policy, Rule, load_policy
from tripwire.policy.simulation import NOW, ItemModel, fire_rate, run_fire_rate, score
from tripwire.policy.validity import combinator_rates, mode_rows, policy_row

ALPHA = 0.05
ROOT = Path(__file__).resolve().parents[2]


def delta(**fields: object) -> Rule:
    return policy(**fields).rules[0]


def policy(*extra: dict[str, Any], **fields: object) -> Policy:
    rule: dict[str, object] = {
        "id": "r",
        "type": "delta",
        "benchmarks": ["t"],
        "threshold": 0,
        "mode": "detected",
        "sequential": "none",
    }
    rule.update(fields)
    return Policy.model_validate({"name": "s", "proxy_suite": "p.yaml", "rules": [rule, *extra]})


def within(rate: float, nominal: float, replicates: int) -> bool:
    return rate <= nominal + 3 * math.sqrt(nominal * (1 - nominal) / replicates)


def test_the_item_model_has_the_discordance_it_is_built_for() -> None:
    assert ItemModel().discordance() == pytest.approx(0.25, abs=0.005)
    for d in (0.1, 0.2, 0.4):
        assert ItemModel.for_discordance(d).discordance() == pytest.approx(d, abs=1e-4)
    assert ItemModel.for_discordance(0.25, 0.6, 0.1).discordance(0.1) == pytest.approx(0.25)


def test_detected_fires_at_most_at_the_nominal_rate_when_the_rise_equals_the_threshold() -> None:
    rate = fire_rate(delta(threshold=5), changes={"t": 0.05}, n_items=700, replicates=3000, seed=2)
    assert within(rate.rate, ALPHA, 3000), rate


def test_cannot_rule_out_misses_a_rise_at_the_threshold_at_most_at_the_nominal_rate() -> None:
    rule = delta(threshold=5, mode="cannot_rule_out")
    rate = fire_rate(rule, changes={"t": 0.05}, n_items=700, replicates=3000, seed=4)
    assert within(1 - rate.rate, ALPHA, 3000), rate


def test_the_default_mode_keeps_run_wide_false_fires_within_alpha_and_powers_its_mde() -> None:
    """The default (detected, alpha spent over 50 looks of the run) on a +5 delta: no fire over
    runs of 50 unchanged looks, 80% power at threshold + MDE; point and cannot_rule_out fire on
    noise at 200 items, as the bench table records."""
    modes = {
        "default": {"mode": "detected"},
        "point": {"mode": "point"},
        "cannot_rule_out": {"mode": "cannot_rule_out"},
    }
    rows = mode_rows(
        ns=[200], discordances=[0.2], modes=modes, looks=50, runs=60, replicates=600, seed=11
    )
    by_mode = {row.mode: row for row in rows}
    default = by_mode["default"]
    assert default.run_wide.rate <= 0.05, default
    assert default.power.rate + 3 * default.power.se >= 0.80, default
    assert by_mode["point"].run_wide.rate > 0.25
    assert by_mode["cannot_rule_out"].per_look.rate > 0.25


def test_alpha_spending_over_the_run_survives_a_baseline_that_keeps_moving() -> None:
    """A level rule with deep suites that fires at most looks moves the baseline each time
    (three items at 60% against a level of 50: reached in point mode, never established):
    counted since the baseline almost every look is a first look and alarms add up; counted
    over the run the budget holds (the plain k (k + 1) schedule, no planned horizon)."""
    mover = {"id": "mover", "type": "level", "benchmarks": ["u"], "level": 50, "mode": "point"}
    mover["actions"] = {"deep_suites": ["deep.yaml"]}
    common: dict[str, Any] = {
        "items": {"t": 300, "u": 3},
        "looks": 40,
        "runs": 300,
        "seed": 5,
        "count": {"r"},
    }
    spending = {"method": "alpha_spending", "looks": 0}
    by_baseline = run_fire_rate(
        policy(mover, sequential={**spending, "scope": "baseline"}), **common
    )
    by_run = run_fire_rate(policy(mover, sequential={**spending, "scope": "run"}), **common)
    assert by_baseline.rate > 0.12, by_baseline
    assert within(by_run.rate, ALPHA, 300), by_run


def test_combinators_correct_across_their_children() -> None:
    rates = combinator_rates(benchmarks=10, n=200, replicates=500, seed=6)
    corrected, two, uncorrected = rates.values()
    assert within(corrected.rate, ALPHA, 500), rates
    assert within(two.rate, ALPHA, 500), rates
    assert uncorrected.rate > 0.25, rates


def _overlap_power(shared: float, replicates: int, seed: int) -> float:
    """Power of a detected +0 delta on 700 items per side when only ``shared`` of them are the
    same documents, at a true rise of 5 points."""
    rng = np.random.default_rng(seed)
    model = ItemModel()
    rule = delta()
    n, k = 700, round(700 * shared)
    fired = 0
    for _ in range(replicates):
        pool = model.difficulties(rng, 2 * n - k)
        base_items, cur_items = np.arange(n), np.arange(n - k, 2 * n - k)
        base = model.answers(rng, pool[base_items])
        cur = model.answers(rng, pool[cur_items], 0.05)
        base_score = Score("t", float(base.mean()), None, n, True, _h(base_items), base)
        cur_score = Score("t", float(cur.mean()), None, n, True, _h(cur_items), cur)
        ctx = Context(
            Comparer(
                Snapshot("c", "r", 2, {"t": cur_score}), Snapshot("b", "r", 1, {"t": base_score})
            ),
            Lineage(),
            NOW,
            0.95,
        )
        fired += evaluate_rule(rule, ctx).fired
    return fired / replicates


def _h(indexes: np.ndarray[Any, Any]) -> tuple[str, ...]:
    return tuple(f"doc-{i}" for i in indexes)


def test_items_shared_in_part_keep_most_of_the_power_of_full_pairing() -> None:
    full = _overlap_power(1.0, 400, 7)
    half = _overlap_power(0.49, 400, 7)
    none = _overlap_power(0.0, 400, 7)
    assert full > 0.85
    # paired shared items combined with an unpaired test on the rest: better than unpaired,
    # close to full pairing (the paired items alone gave 61% before)
    assert half > none + 0.05
    assert half > 0.70, (full, half, none)


def test_welch_keeps_unpaired_non_binary_false_fires_within_alpha_at_ten_items() -> None:
    rng = np.random.default_rng(9)
    rule = delta()
    fired = 0
    replicates = 3000
    for _ in range(replicates):
        a = rng.normal(0.5, 0.2, 10)
        b = rng.normal(0.5, 0.05, 10)  # unequal variances: where a z test goes wrong
        cur = Score("t", float(a.mean()), None, 10, True, tuple(f"a{i}" for i in range(10)), a)
        ref = Score("t", float(b.mean()), None, 10, True, tuple(f"b{i}" for i in range(10)), b)
        ctx = Context(
            Comparer(Snapshot("c", "r", 2, {"t": cur}), Snapshot("b", "r", 1, {"t": ref})),
            Lineage(),
            NOW,
            0.95,
        )
        verdict = evaluate_rule(rule, ctx)
        assert verdict.comparisons[0].method == "unpaired (Welch t)"
        fired += verdict.fired
    assert within(fired / replicates, ALPHA, replicates), fired / replicates


@pytest.mark.parametrize(
    "name", ["default.yaml", "demo.yaml", "rsp-style.yaml", "fsf-style.yaml", "sandbagging.yaml"]
)
def test_every_shipped_policy_keeps_run_wide_false_fires_within_5_percent(name: str) -> None:
    row = policy_row(load_policy(ROOT / "triggers" / name), looks=50, runs=40, replicates=200)
    assert row.run_wide.rate <= 0.05, row.run_wide
    for c in row.comparisons:
        assert c.power.rate + 3 * c.power.se >= 0.80, c


def test_score_keys_pair_items_only_within_one_task() -> None:
    values = np.ones(5, dtype=bool)
    a, b = score("a", values, "k1"), score("b", values, "k2")
    assert set(a.item_hashes or ()).isdisjoint(b.item_hashes or ())
