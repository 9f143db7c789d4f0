"""A checkpoint's lineage as rows a person reads (``tripwire lineage``): its ancestors nearest
first, their stages, steps and compute, and which one is its baseline and why."""

from __future__ import annotations

from pydantic import BaseModel
from sqlalchemy.orm import Session

from tripwire.decisions.inputs import can_be_baseline, lineage_baseline, run_state
from tripwire.lineage.graph import (
    Compute,
    compute_of,
    declared_parents,
    previous_in_run,
    resolve_parent,
)
from tripwire.store.models import Checkpoint


class Link(BaseModel):
    """One checkpoint of the chain."""

    content_hash: str
    run: str
    step: int | None
    stage: str
    hops: int
    """0 for the checkpoint itself, 1 for its parents and its run's previous step, ..."""
    via: str
    """How it was reached: ``itself``, ``previous step`` or ``parent i of n``."""
    tokens_seen: int | None
    params_total: int | None
    params_active: int | None
    own_declared_flop: float | None
    own_estimated_flop: float | None
    cumulative_declared_flop: float | None
    cumulative_estimated_flop: float | None
    cumulative_effective_flop: float | None
    deep_evaluated: bool
    """Decided, a deep evaluation dispatched, not held: it can be a baseline."""


class Chain(BaseModel):
    """The lineage of one checkpoint and its baseline."""

    schema_version: int = 1
    links: list[Link]
    unresolved: list[str]
    """Parents named in metadata but not in the store."""
    baseline: str | None
    """Content hash of the baseline the decision module picks now."""
    why: str


def _link(session: Session, c: Checkpoint, hops: int, via: str) -> Link:
    summary = compute_of(session, c)
    own, total = summary.own, summary.cumulative
    return Link(
        content_hash=c.content_hash,
        run=c.run.name,
        step=c.step,
        stage=c.stage,
        hops=hops,
        via=via,
        tokens_seen=c.tokens_seen,
        params_total=c.params_total,
        params_active=c.params_active,
        own_declared_flop=own.declared,
        own_estimated_flop=own.estimated,
        cumulative_declared_flop=total.declared,
        cumulative_estimated_flop=total.estimated,
        cumulative_effective_flop=total.effective,
        deep_evaluated=can_be_baseline(session, c, None),
    )


def chain_of(session: Session, checkpoint: Checkpoint, *, limit: int = 50) -> Chain:
    """Ancestors of ``checkpoint`` breadth first (at most ``limit``), and its baseline."""
    links = [_link(session, checkpoint, 0, "itself")]
    unresolved: list[str] = []
    seen = {checkpoint.id}
    frontier = [checkpoint]
    hops = 0
    while frontier and len(links) < limit:
        hops += 1
        layer: list[Checkpoint] = []
        for node in frontier:
            refs = declared_parents(node)
            found: list[tuple[Checkpoint | None, str]] = [
                (previous_in_run(session, node), "previous step")
            ]
            for i, ref in enumerate(refs, 1):
                parent = resolve_parent(session, ref)
                if parent is None:
                    unresolved.append(ref)
                found.append((parent, f"parent {i} of {len(refs)} of {node.content_hash[7:19]}"))
            for c, via in found:
                if c is not None and c.id not in seen and len(links) < limit:
                    seen.add(c.id)
                    layer.append(c)
                    links.append(_link(session, c, hops, via))
        frontier = layer
    baseline, why = _why(session, checkpoint)
    return Chain(links=links, unresolved=unresolved, baseline=baseline, why=why)


def _why(session: Session, checkpoint: Checkpoint) -> tuple[str | None, str]:
    state = run_state(session, checkpoint, None)
    if state is None:
        return None, "not known yet: an earlier checkpoint of its run is undecided"
    if state.baseline is None:
        return None, (
            "none: no deep-evaluated checkpoint earlier in its run or among its ancestors, so "
            "the baseline rule evaluates it deeply"
        )
    across = lineage_baseline(session, checkpoint, None)
    if (
        across is not None
        and across.checkpoint.content_hash == state.baseline
        and not any(c.content_hash == state.baseline for c in _run_of(checkpoint))
    ):
        return state.baseline, (
            f"the nearest deep-evaluated ancestor across runs ({across.hops} hop(s) away, "
            f"run {across.checkpoint.run.name!r}); no checkpoint of its own run was "
            "deep-evaluated before it"
        )
    return state.baseline, "the last deep-evaluated checkpoint before it in its own run"


def _run_of(checkpoint: Checkpoint) -> list[Checkpoint]:
    return list(checkpoint.run.checkpoints)


def flop(value: float | None) -> str:
    """A FLOP figure for a table."""
    return "?" if value is None else f"{value:.3g}"


__all__ = ["Chain", "Compute", "Link", "chain_of", "flop"]
