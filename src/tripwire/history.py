"""``tripwire backtest``: stored proxy results replayed through a policy, beside what happened.

Reads runs, checkpoints, proxy evaluations (with packed per-item outcomes), decisions and deep
jobs from the store; no model is loaded. The replay itself is pure
(``tripwire.policy.backtest``).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from rich.table import Table
from sqlalchemy import select
from sqlalchemy.orm import Session

from tripwire.decisions.inputs import (
    counted_evaluations,
    is_held,
    snapshot,
    with_scores,
)
from tripwire.errors import TripwireError
from tripwire.lineage.graph import declared_parents, order_key, resolve_parent
from tripwire.policy.backtest import ReplayStep, ReplaySummary, replay
from tripwire.policy.engine import BASELINE_RULE_ID
from tripwire.policy.inputs import Snapshot
from tripwire.policy.schema import LoadedPolicy
from tripwire.store.models import Checkpoint, Decision, Job, JobKind, Run


@dataclass(frozen=True, slots=True)
class BacktestRow:
    """One checkpoint: what the replayed policy, the active policy and a compute rule did."""

    run: str
    step: int | None
    checkpoint: str
    training_flop: float | None
    replay: ReplayStep
    active_fired: list[str]
    """Rules that fired in the stored decisions (``policy:rule`` when several policies)."""
    active_deep: bool
    """A deep evaluation was actually dispatched."""


@dataclass(frozen=True, slots=True)
class Backtest:
    rows: list[BacktestRow]
    summary: ReplaySummary
    active_deep: int
    compute_factor: float


def _snapshots(session: Session, run: Run, suite_hash: str) -> list[tuple[Checkpoint, Snapshot]]:
    """The run's checkpoints with a proxy evaluation, in step order, as the engine sees them
    (through the same join as the live decisions)."""
    checkpoints = sorted(run.checkpoints, key=order_key)
    chosen = counted_evaluations(session, [c.id for c in checkpoints], suite_hash)
    loaded = {e.checkpoint_id: e for e in with_scores(session, [e.id for e in chosen.values()])}
    return [(c, snapshot(c, loaded[c.id], run.name)) for c in checkpoints if c.id in loaded]


def run_backtest(
    session: Session, policy: LoadedPolicy, run: str | None = None, compute_factor: float = 4.0
) -> Backtest:
    """Replay the stored proxy results of ``run`` (default every run) through ``policy``."""
    runs = list(session.scalars(select(Run).order_by(Run.name)))
    if run is not None:
        runs = [r for r in runs if r.name == run]
        if not runs:
            names = ", ".join(r.name for r in session.scalars(select(Run))) or "none stored"
            raise TripwireError(f"no run named {run!r}; runs: {names}")
    by_run = {r.name: _snapshots(session, r, policy.proxy_suite.content_hash) for r in runs}
    parents = _parents(session, [c for pairs in by_run.values() for c, _ in pairs])
    pairs = [p for name in _ancestors_first(by_run, parents) for p in by_run[name]]
    ids = [c.id for c, _ in pairs]
    decisions = session.scalars(
        select(Decision).where(Decision.checkpoint_id.in_(ids), Decision.verdict == "fired")
    ).all()
    several = len({d.policy_hash for d in decisions}) > 1
    fired: dict[int, list[str]] = defaultdict(list)
    for d in sorted(decisions, key=lambda d: d.id):
        fired[d.checkpoint_id].append(f"{d.policy_name}:{d.rule_id}" if several else d.rule_id)
    deep_ids = set(
        session.scalars(
            select(Job.checkpoint_id).where(
                Job.checkpoint_id.in_(ids), Job.kind == JobKind.deep_eval
            )
        )
    )
    summary = ReplaySummary()
    rows = []
    steps = replay(
        policy.policy,
        (snap for _, snap in pairs),
        initial_actions=policy.initial_actions(),
        compute_factor=compute_factor,
        held=frozenset(c.content_hash for c, _ in pairs if is_held(c)),
        parents=parents,
    )
    for (checkpoint, snap), step in zip(pairs, steps, strict=True):
        summary.add(step)
        rows.append(
            BacktestRow(
                run=snap.run,
                step=snap.step,
                checkpoint=snap.checkpoint,
                training_flop=snap.training_flop,
                replay=step,
                active_fired=fired.get(checkpoint.id, []),
                active_deep=checkpoint.id in deep_ids,
            )
        )
    return Backtest(rows, summary, sum(r.active_deep for r in rows), compute_factor)


def _parents(session: Session, checkpoints: list[Checkpoint]) -> dict[str, list[str]]:
    """Each checkpoint's parents in the store, as content hashes (the replay's lineage)."""
    found: dict[str, list[str]] = {}
    for c in checkpoints:
        resolved = [resolve_parent(session, ref) for ref in declared_parents(c)]
        hashes = [p.content_hash for p in resolved if p is not None]
        if hashes:
            found[c.content_hash] = hashes
    return found


def _ancestors_first(
    by_run: dict[str, list[tuple[Checkpoint, Snapshot]]], parents: dict[str, list[str]]
) -> list[str]:
    """Run names ordered so that a run comes after the runs its parents belong to (by name
    otherwise; a cycle is broken by name)."""
    run_of = {snap.checkpoint: name for name, pairs in by_run.items() for _, snap in pairs}
    needs = {
        name: {
            run_of[p]
            for _, snap in pairs
            for p in parents.get(snap.checkpoint, [])
            if p in run_of and run_of[p] != name
        }
        for name, pairs in by_run.items()
    }
    ordered: list[str] = []
    while len(ordered) < len(by_run):
        ready = sorted(n for n in by_run if n not in ordered and needs[n] <= set(ordered))
        ordered.append(ready[0] if ready else min(n for n in by_run if n not in ordered))
    return ordered


def _rules(fired: list[str], deep: bool) -> str:
    shown = ", ".join("baseline" if r == BASELINE_RULE_ID else r for r in fired) or "-"
    return shown + " (deep)" if deep else shown


def backtest_table(result: Backtest, policy_name: str) -> list[Table | str]:
    """What ``tripwire backtest`` prints: one table per run, then the totals."""
    out: list[Table | str] = []
    by_run: dict[str, list[BacktestRow]] = defaultdict(list)
    for row in result.rows:
        by_run[row.run].append(row)
    factor = f"every {result.compute_factor:g}x compute"
    for run, rows in by_run.items():
        table = Table(title=f"run {run}: {policy_name} (replayed) beside the active policy")
        for column in ("step", "checkpoint", "FLOP", f"{policy_name} (replay)", "active", factor):
            table.add_column(column, justify="right" if column in ("step", "FLOP") else "left")
        for row in rows:
            replayed = _rules(row.replay.fired, row.replay.deep)
            active = _rules(row.active_fired, row.active_deep)
            compute = {None: "?", True: "fires (deep)", False: "-"}[row.replay.compute_fired]
            table.add_row(
                "-" if row.step is None else str(row.step),
                row.checkpoint.removeprefix("sha256:")[:12],
                "-" if row.training_flop is None else f"{row.training_flop:.2e}",
                replayed,
                active,
                compute,
            )
        out.append(table)
    s = result.summary
    out.append(
        f"{s.checkpoints} checkpoints; deep evaluations: {s.deep} under {policy_name} (replayed), "
        f"{result.active_deep} by the active policy, {s.compute_deep} {factor}"
    )
    if s.fired:
        out.append("fired: " + ", ".join(f"{rule} x{n}" for rule, n in sorted(s.fired.items())))
    return out
