"""The pure replay: its own baselines, looks and times, beside an effective-compute trigger."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tripwire.policy.backtest import ReplaySummary, replay
from tripwire.policy.engine import BASELINE_RULE_ID, Score, Snapshot
from tripwire.policy.schema import Actions, Policy

START = datetime(2026, 1, 1, tzinfo=UTC)
DEEP = {"deep_suites": ["deep.yaml"]}
INITIAL = Actions(deep_suites=["deep.yaml"])  # type: ignore[list-item]


def policy(*rules: dict[str, Any]) -> Policy:
    return Policy.model_validate({"name": "p", "proxy_suite": "x.yaml", "rules": list(rules)})


def snapshots(
    scores: list[float],
    flops: list[float] | None = None,
    days: list[int] | None = None,
    run: str = "r",
) -> list[Snapshot]:
    out = []
    for i, value in enumerate(scores):
        out.append(
            Snapshot(
                f"{run}-{i}",
                run,
                (i + 1) * 100,
                {"t": Score("t", value, 0.01, 1000)},
                flops[i] if flops else None,
                START + timedelta(days=days[i]) if days else None,
            )
        )
    return out


def test_a_fired_rule_with_deep_suites_makes_the_checkpoint_the_next_baseline() -> None:
    p = policy(
        {
            "id": "plus-5",
            "type": "delta",
            "benchmarks": ["t"],
            "threshold": 5,
            "mode": "point",
            "actions": DEEP,
        }
    )
    steps = list(
        replay(p, snapshots([0.50, 0.53, 0.56, 0.59, 0.62, 0.68]), initial_actions=INITIAL)
    )
    assert [s.fired for s in steps] == [
        [BASELINE_RULE_ID],
        [],
        ["plus-5"],  # +6 over 50
        [],  # +3 over 56
        ["plus-5"],  # +6 over 56
        ["plus-5"],  # +6 over 62
    ]
    assert [s.deep for s in steps] == [True, False, True, False, True, True]
    assert [s.baseline.step if s.baseline else None for s in steps] == [
        None,
        100,
        100,
        300,
        300,
        500,
    ]


def test_a_rule_without_deep_suites_fires_but_keeps_the_baseline() -> None:
    p = policy(
        {"id": "watch", "type": "delta", "benchmarks": ["t"], "threshold": 5, "mode": "point"}
    )
    steps = list(replay(p, snapshots([0.50, 0.56, 0.62]), initial_actions=INITIAL))
    assert [s.fired for s in steps] == [[BASELINE_RULE_ID], ["watch"], ["watch"]]
    assert steps[2].verdicts[0].statistic == pytest.approx(12.0)  # still against step 100


def test_the_compute_trigger_fires_every_factor_of_compute() -> None:
    p = policy({"id": "never", "type": "compute", "factor": 1000})
    flops = [1e22, 2e22, 4e22, 8e22, 16e22, 64e22]
    steps = list(replay(p, snapshots([0.5] * 6, flops), initial_actions=INITIAL))
    assert [s.compute_fired for s in steps] == [True, False, True, False, True, True]
    two = list(replay(p, snapshots([0.5] * 6, flops), initial_actions=INITIAL, compute_factor=2))
    assert all(s.compute_fired for s in two)


def test_the_compute_trigger_grows_from_the_first_positive_compute() -> None:
    p = policy({"id": "never", "type": "compute", "factor": 1000})
    flops = [0.0, 1e20, 2e20, 4e20, 5e20, 16e20]  # step 0 (initialisation) has no compute
    steps = list(replay(p, snapshots([0.5] * 6, flops), initial_actions=INITIAL))
    assert [s.compute_fired for s in steps] == [True, False, False, True, False, True]


def test_cadence_counts_from_the_replayed_baselines_time() -> None:
    p = policy({"id": "monthly", "type": "cadence", "every": "30d", "actions": DEEP})
    steps = list(replay(p, snapshots([0.5] * 5, days=[0, 20, 40, 60, 80]), initial_actions=INITIAL))
    assert [s.fired for s in steps] == [[BASELINE_RULE_ID], [], ["monthly"], [], ["monthly"]]


def test_looks_restart_after_each_deep_evaluation_and_runs_are_independent() -> None:
    spending = {
        "id": "spent",
        "type": "delta",
        "benchmarks": ["t"],
        "threshold": 5,
        "mode": "detected",
        "sequential": {"method": "alpha_spending", "scope": "baseline"},
    }
    point = {
        "id": "plus-5",
        "type": "delta",
        "benchmarks": ["t"],
        "threshold": 5,
        "mode": "point",
        "actions": DEEP,
    }
    p = policy(spending, point)
    a = snapshots([0.50, 0.52, 0.56, 0.57], run="a")
    b = snapshots([0.30, 0.31], run="b")
    interleaved = [a[0], b[0], a[1], b[1], a[2], a[3]]
    steps = list(replay(p, interleaved, initial_actions=INITIAL))
    looks = [
        (s.snapshot.run, s.verdicts[0].details["sequential"]["look"])
        for s in steps
        if s.baseline is not None
    ]
    assert looks == [("a", 1), ("b", 1), ("a", 2), ("a", 1)]
    summary = ReplaySummary()
    for s in steps:
        summary.add(s)
    assert (summary.checkpoints, summary.deep) == (6, 3)
    assert summary.fired == {BASELINE_RULE_ID: 2, "plus-5": 1}
