"""Replaying checkpoints through a policy: when would each rule have fired?

Pure: snapshots in, steps out. The live loop and the backtest decide through the same two
functions here: :meth:`RunState.lineage` (where a checkpoint sits in its run: looks and the
baseline's time) and :func:`decide_step` (the policy's verdicts, and whether they dispatch deep
evaluations, which makes the checkpoint the run's next baseline). The live loop folds
:meth:`RunState.after` over the stored history of the run; the replay folds it over its own
verdicts. On the same stored results under the same policy, the two agree exactly.

Beside the policy the replay runs an effective-compute trigger (a deep evaluation every
``compute_factor`` x training compute), the rule that capability triggers replace.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from tripwire.policy.engine import EPOCH, evaluate_policy
from tripwire.policy.inputs import Lineage, Snapshot
from tripwire.policy.schema import Actions, Policy
from tripwire.policy.verdicts import RuleVerdict


@dataclass(frozen=True, slots=True)
class RunState:
    """Where a run stands before its next checkpoint is decided."""

    baseline: str | None = None
    """Content hash of the baseline: the last checkpoint whose decision dispatched deep
    evaluations (and was not held back from being a baseline)."""
    baseline_at: datetime | None = None
    """The baseline's time (its proxy evaluation's): cadence rules count from it."""
    looks_since_baseline: int = 0
    looks_in_run: int = 0

    def lineage(self) -> Lineage:
        """The lineage of the run's next checkpoint."""
        in_run = self.looks_in_run + 1
        since = self.looks_since_baseline + 1 if self.baseline is not None else in_run
        return Lineage(since, in_run, self.baseline_at)

    def after(
        self, checkpoint: str, at: datetime | None, deep: bool, *, held: bool = False
    ) -> RunState:
        """The state once ``checkpoint`` (decided at ``at``) is behind. It becomes the baseline
        when its decision dispatched deep evaluations, unless it is held for review."""
        if deep and not held:
            return RunState(checkpoint, at, 0, self.looks_in_run + 1)
        return RunState(
            self.baseline, self.baseline_at, self.looks_since_baseline + 1, self.looks_in_run + 1
        )


N = TypeVar("N", bound=Hashable)


def nearest_ancestor(
    start: N,
    neighbours: Callable[[N], Sequence[N]],
    qualifies: Callable[[N], bool],
    rank: Callable[[N], float] = lambda _: 0.0,
    *,
    limit: int = 10_000,
) -> tuple[N, int] | None:
    """The baseline across runs: the ancestor of ``start`` nearest in hops that ``qualifies``
    (deep-evaluated, not held), with its distance. Pure: the graph comes in as ``neighbours``
    (the previous checkpoint of the run, then the parents named in the metadata).

    Among ancestors at the same distance (the parents of a merge) the highest ``rank`` (the
    most training compute: the strongest parent, so a gain is measured against the best of
    them) wins, then the order ``neighbours`` gives. ``limit`` bounds the nodes looked at.
    """
    seen = {start}
    frontier = [start]
    hops = 0
    while frontier and len(seen) <= limit:
        hops += 1
        layer: list[N] = []
        for node in frontier:
            for nxt in neighbours(node):
                if nxt not in seen:
                    seen.add(nxt)
                    layer.append(nxt)
        found = [n for n in layer if qualifies(n)]
        if found:
            best = max(range(len(found)), key=lambda i: (rank(found[i]), -i))
            return found[best], hops
        frontier = layer
    return None


def as_of(snapshot: Snapshot) -> datetime:
    """The time a checkpoint is decided as of: its proxy evaluation's (``now`` of the rules)."""
    return snapshot.evaluated_at or EPOCH


def decide_step(
    policy: Policy,
    state: RunState,
    snapshot: Snapshot,
    baseline: Snapshot | None,
    *,
    initial_actions: Actions,
) -> tuple[list[RuleVerdict], bool]:
    """The policy's verdicts for ``snapshot`` in ``state``, and whether they dispatch deep
    evaluations. ``baseline`` is the snapshot of ``state.baseline`` (None without one)."""
    verdicts = evaluate_policy(
        policy,
        snapshot,
        baseline,
        initial_actions=initial_actions,
        now=as_of(snapshot),
        lineage=state.lineage(),
    )
    return verdicts, dispatches(verdicts)


def dispatches(verdicts: list[RuleVerdict]) -> bool:
    """Whether a fired rule has deep suites (the checkpoint is then evaluated deeply)."""
    return any(v.fired and v.actions.deep_suites for v in verdicts)


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
    lineage: Lineage = field(default_factory=Lineage)

    @property
    def fired(self) -> list[str]:
        return [v.rule_id for v in self.verdicts if v.fired]


@dataclass(slots=True)
class _Run:
    state: RunState = field(default_factory=RunState)
    baseline: Snapshot | None = None
    compute_reference: float | None = None
    """Training compute at the compute trigger's last firing."""
    last: str | None = None
    """The run's last replayed checkpoint (content hash)."""


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
    held: frozenset[str] = frozenset(),
    parents: Mapping[str, Sequence[str]] | None = None,
) -> Iterator[ReplayStep]:
    """Replay ``snapshots`` (in step order within each run) through ``policy``.

    A snapshot's ``evaluated_at`` is its time: ``now`` for its rules, and, once it is a
    baseline, the time cadence rules count from. ``held``: checkpoints (content hashes) held
    for review, which never become baselines. ``parents``: each checkpoint's parents (content
    hashes; a run's later checkpoints inherit its first's), replayed before it: a run without a
    baseline of its own takes the nearest ancestor the replay evaluated deeply, as the live
    decision does (``decisions.inputs.run_state``).
    """
    runs: dict[str, _Run] = {}
    baselines: dict[str, Snapshot] = {}
    previous: dict[str, str] = {}
    for snap in snapshots:
        run = runs.setdefault(snap.run, _Run())
        if run.last is not None:
            previous[snap.checkpoint] = run.last
        run.last = snap.checkpoint
        if run.state.baseline is None and parents:
            _adopt(run, snap.checkpoint, parents, previous, baselines)
        lineage = run.state.lineage()
        verdicts, deep = decide_step(
            policy, run.state, snap, run.baseline, initial_actions=initial_actions
        )
        step = ReplayStep(
            snap, run.baseline, verdicts, deep, _compute(run, snap, compute_factor), lineage
        )
        run.state = run.state.after(
            snap.checkpoint, snap.evaluated_at, deep, held=snap.checkpoint in held
        )
        if run.state.baseline == snap.checkpoint:
            run.baseline = snap
            baselines[snap.checkpoint] = snap
        yield step


def _adopt(
    run: _Run,
    checkpoint: str,
    parents: Mapping[str, Sequence[str]],
    previous: Mapping[str, str],
    baselines: Mapping[str, Snapshot],
) -> None:
    """Give ``run`` the nearest ancestor of ``checkpoint`` that became a baseline, if any."""

    def neighbours(node: str) -> list[str]:
        before = previous.get(node)
        return ([before] if before is not None else []) + list(parents.get(node, ()))

    def rank(node: str) -> float:
        flop = baselines[node].training_flop
        return -1.0 if flop is None else flop

    hit = nearest_ancestor(checkpoint, neighbours, lambda n: n in baselines, rank)
    if hit is not None:
        base = baselines[hit[0]]
        looks = run.state.looks_in_run
        run.state = RunState(base.checkpoint, base.evaluated_at, looks, looks)
        run.baseline = base


def _compute(run: _Run, snap: Snapshot, factor: float) -> bool | None:
    flop = snap.training_flop
    if flop is None:
        return None
    if run.compute_reference is None:  # the run's first checkpoint: evaluated, the reference
        run.compute_reference = flop
        return True
    if run.compute_reference <= 0:  # nothing to grow from (step 0): the first compute is
        run.compute_reference = flop
        return False
    if flop >= factor * run.compute_reference:
        run.compute_reference = flop
        return True
    return False


def compute_trigger(flops: Iterable[float | None], factor: float = 4.0) -> list[bool | None]:
    """Where an effective-compute rule (a deep evaluation every ``factor`` x training compute)
    fires along a run's checkpoints, in order: the replay's own rule, for reports."""
    run = _Run()
    out: list[bool | None] = []
    for flop in flops:
        snap = Snapshot("", "", None, {}, flop)
        out.append(_compute(run, snap, factor))
    return out
