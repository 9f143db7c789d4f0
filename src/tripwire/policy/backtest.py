"""Replaying checkpoints through a policy: when would each rule have fired?

Pure: snapshots in, steps out. The replay keeps its own baselines, as the live loop would have
under this policy: a run's first checkpoint is its first baseline, and a checkpoint for which a
rule with deep suites fired becomes the next. Beside the policy it replays an effective-compute
trigger (a deep evaluation every ``compute_factor`` x training compute), the rule that
capability triggers replace.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

from tripwire.policy.engine import EPOCH, evaluate_policy
from tripwire.policy.inputs import Lineage, Snapshot
from tripwire.policy.schema import Actions, Policy
from tripwire.policy.verdicts import RuleVerdict


@dataclass(frozen=True, slots=True)
class ReplayStep:
    """One checkpoint replayed."""

    snapshot: Snapshot
    baseline: Snapshot | None
    verdicts: list[RuleVerdict]
    deep: bool
    """A fired rule had deep suites: the policy would have evaluated this checkpoint deeply, and
    it becomes the run's next baseline."""
    compute_fired: bool | None
    """Whether the effective-compute trigger fires here; None when compute is unknown."""

    @property
    def fired(self) -> list[str]:
        return [v.rule_id for v in self.verdicts if v.fired]


@dataclass(slots=True)
class _RunState:
    baseline: Snapshot | None = None
    looks_since_baseline: int = 0
    looks_in_run: int = 0
    compute_reference: float | None = None
    """Training compute at the compute trigger's last firing."""


@dataclass(slots=True)
class ReplaySummary:
    """Counts over a replay."""

    checkpoints: int = 0
    deep: int = 0
    compute_deep: int = 0
    fired: dict[str, int] = field(default_factory=dict)

    def add(self, step: ReplayStep) -> None:
        self.checkpoints += 1
        self.deep += step.deep
        self.compute_deep += bool(step.compute_fired)
        for rule_id in step.fired:
            self.fired[rule_id] = self.fired.get(rule_id, 0) + 1


def replay(
    policy: Policy,
    snapshots: Iterable[Snapshot],
    *,
    initial_actions: Actions,
    compute_factor: float = 4.0,
) -> Iterator[ReplayStep]:
    """Replay ``snapshots`` (in step order within each run) through ``policy``.

    A snapshot's ``evaluated_at`` is its time: ``now`` for its rules, and, once it is a
    baseline, the time of its deep evaluation for cadence rules.
    """
    states: dict[str, _RunState] = {}
    for snap in snapshots:
        state = states.setdefault(snap.run, _RunState())
        state.looks_in_run += 1
        state.looks_since_baseline += 1
        baseline = state.baseline
        known_times = snap.evaluated_at is not None and baseline is not None
        lineage = Lineage(
            looks_since_baseline=state.looks_since_baseline if baseline else state.looks_in_run,
            looks_in_run=state.looks_in_run,
            baseline_at=baseline.evaluated_at if known_times and baseline else None,
        )
        now: datetime = snap.evaluated_at or EPOCH
        verdicts = evaluate_policy(
            policy, snap, baseline, initial_actions=initial_actions, now=now, lineage=lineage
        )
        deep = any(v.fired and v.actions.deep_suites for v in verdicts)
        if deep:
            state.baseline = snap
            state.looks_since_baseline = 0
        yield ReplayStep(snap, baseline, verdicts, deep, _compute(state, snap, compute_factor))


def _compute(state: _RunState, snap: Snapshot, factor: float) -> bool | None:
    flop = snap.training_flop
    if flop is None:
        return None
    if state.compute_reference is None:  # the run's first checkpoint: evaluated, the reference
        state.compute_reference = flop
        return True
    if state.compute_reference <= 0:  # nothing to grow from (step 0): the first compute is
        state.compute_reference = flop
        return False
    if flop >= factor * state.compute_reference:
        state.compute_reference = flop
        return True
    return False
