"""How fast is the policy engine, and how often does each mode fire by mistake or miss?

Prints:

- rule evaluations per second for each rule type, each on a fresh checkpoint (10 benchmarks of
  1,000 paired items; nothing cached between evaluations);
- the time to backtest 10,000 checkpoints x 10 benchmarks (1,000 items each) x 5 rules, the
  replay ``tripwire backtest`` runs, with its rule evaluations per second;
Error rates and power of each mode and shipped policy are measured by ``bench/validity.py``.

Targets (issue 3): at least 10,000 rule evaluations per second; the backtest under 10 s.
Usage: ``python bench/policy.py [--checkpoints N] [--replicates N] [--seed N]``.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from tripwire.policy.backtest import ReplaySummary, replay
from tripwire.policy.compare import Comparer
from tripwire.policy.engine import evaluate_rule
from tripwire.policy.inputs import Lineage, Snapshot
from tripwire.policy.rules import Context
from tripwire.policy.schema import Actions, Policy
from tripwire.policy.simulation import ItemModel, score

BENCHMARKS = [f"bench_{i}" for i in range(10)]
START = datetime(2026, 1, 1, tzinfo=UTC)
RULES: list[dict[str, Any]] = [
    {
        "id": "mmlu-gpqa-plus-5",
        "type": "delta",
        "benchmarks": BENCHMARKS[:2],
        "threshold": 5,
        "mode": "detected",
        "actions": {"deep_suites": ["deep.yaml"]},
    },
    {
        "id": "any-plus-10",
        "type": "delta",
        "benchmarks": ["*"],
        "threshold": 10,
        "mode": "cannot_rule_out",
        "actions": {"deep_suites": ["deep.yaml"]},
    },
    {"id": "alert-level", "type": "level", "benchmarks": BENCHMARKS[2:4], "level": 75},
    {
        "id": "compute-or-cadence",
        "type": "any",
        "rules": [
            {"type": "compute", "factor": 4},
            {"type": "cadence", "every": "182d"},
        ],
        "actions": {"deep_suites": ["deep.yaml"]},
    },
    {
        "id": "sandbagging",
        "type": "divergence",
        "general": BENCHMARKS[4:8],
        "risk": BENCHMARKS[8:],
        "general_rise": 5,
        "risk_max_rise": 0,
        "mode": "point",
    },
]
POLICY = Policy.model_validate({"name": "bench", "proxy_suite": "proxy.yaml", "rules": RULES})
INITIAL = Actions(deep_suites=["deep.yaml"])  # type: ignore[list-item]


def synthetic_run(n_checkpoints: int, n_items: int, seed: int) -> list[Snapshot]:
    """A run whose accuracy climbs from 30% to 85% on every benchmark, with compute and time."""
    rng = np.random.default_rng(seed)
    model = ItemModel()
    difficulty = {b: model.difficulties(rng, n_items) for b in BENCHMARKS}
    accuracy = np.linspace(0.30, 0.85, n_checkpoints)
    snapshots = []
    for i in range(n_checkpoints):
        ability = model.ability(float(accuracy[i]))
        scores = {}
        for b in BENCHMARKS:
            p = 1.0 / (1.0 + np.exp(difficulty[b] - ability))
            scores[b] = score(b, rng.random(n_items) < p, b)
        snapshots.append(
            Snapshot(
                checkpoint=f"sha256:{i:064x}",
                run="bench-run",
                step=(i + 1) * 1000,
                scores=scores,
                training_flop=6.0 * 7e9 * (i + 1) * 4e8,
                evaluated_at=START + timedelta(hours=2 * i),
            )
        )
    return snapshots


def rule_rates(snapshots: list[Snapshot], seconds: float = 1.0) -> dict[str, float]:
    """Evaluations per second of each top-level rule, each on a fresh checkpoint pair."""
    rates = {}
    baseline = snapshots[0]
    lineage = Lineage(3, 3, START)
    for rule in POLICY.rules:
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            current = snapshots[1 + count % (len(snapshots) - 1)]
            ctx = Context(Comparer(current, baseline), lineage, START + timedelta(days=1), 0.95)
            evaluate_rule(rule, ctx)
            count += 1
        rates[f"{rule.rule_id} ({rule.type})"] = count / (time.perf_counter() - start)
    return rates


def backtest(snapshots: list[Snapshot]) -> tuple[float, ReplaySummary]:
    summary = ReplaySummary()
    start = time.perf_counter()
    for step in replay(POLICY, snapshots, initial_actions=INITIAL):
        summary.add(step)
    return time.perf_counter() - start, summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoints", type=int, default=10_000)
    parser.add_argument("--items", type=int, default=1_000)
    parser.add_argument("--replicates", type=int, default=4_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    start = time.perf_counter()
    snapshots = synthetic_run(args.checkpoints, args.items, args.seed)
    print(
        f"generated {args.checkpoints} checkpoints x {len(BENCHMARKS)} benchmarks x "
        f"{args.items} items in {time.perf_counter() - start:.1f} s (not timed below)"
    )
    print("\nrule evaluations per second (fresh checkpoint each time; target >= 10,000):")
    for name, rate in rule_rates(snapshots[:200]).items():
        print(f"  {name:38s} {rate:10,.0f}/s")
    seconds, summary = backtest(snapshots)
    evaluations = summary.checkpoints * len(POLICY.rules)
    print(
        f"\nbacktest: {summary.checkpoints} checkpoints x {len(BENCHMARKS)} benchmarks x "
        f"{len(POLICY.rules)} rules in {seconds:.2f} s (target < 10 s): "
        f"{evaluations / seconds:,.0f} rule evaluations/s"
    )
    print(
        f"  deep evaluations: {summary.deep} under the policy, {summary.compute_deep} every 4x "
        f"compute; fired: {', '.join(f'{k} x{v}' for k, v in sorted(summary.fired.items()))}"
    )
    print("\nerror rates and power of each mode: bench/validity.py")


if __name__ == "__main__":
    main()
