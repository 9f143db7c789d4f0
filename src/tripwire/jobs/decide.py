"""Deciding one checkpoint: find its baseline, run the policy engine, log and dispatch."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tripwire.policy.engine import RuleVerdict, Score, Snapshot, evaluate_policy
from tripwire.policy.inputs import Lineage
from tripwire.policy.schema import Actions, LoadedPolicy
from tripwire.store import repo
from tripwire.store.models import (
    Checkpoint,
    CheckpointState,
    Decision,
    Evaluation,
    Job,
    JobKind,
)
from tripwire.store.outcomes import unpack_hashes, unpack_values
from tripwire.suites import LoadedSuite

DECISION_INPUTS_VERSION = 1
"""Version of the JSON layout in ``Decision.inputs``; raise it when the layout changes."""


def _order(checkpoint: Checkpoint) -> tuple[float, int]:
    return (checkpoint.step if checkpoint.step is not None else math.inf, checkpoint.id)


def proxy_evaluation(
    session: Session, checkpoint_id: int, suite_hash: str | None = None
) -> Evaluation | None:
    """The checkpoint's proxy evaluation (for ``suite_hash`` if given, else the latest)."""
    query = select(Evaluation).where(
        Evaluation.checkpoint_id == checkpoint_id, Evaluation.kind == "proxy"
    )
    if suite_hash is not None:
        query = query.where(Evaluation.suite_hash == suite_hash)
    return session.scalar(query.order_by(Evaluation.id.desc()).limit(1))


def snapshot(checkpoint: Checkpoint, evaluation: Evaluation, run: str) -> Snapshot:
    """The engine's view of an evaluation, per-item outcomes included."""
    scores = {
        s.task: Score(
            task=s.task,
            score=s.score,
            stderr=s.stderr,
            n_items=s.n_items,
            higher_is_better=s.higher_is_better,
            item_hashes=tuple(unpack_hashes(s.item_set)),
            item_values=unpack_values(s.outcomes),
            item_key=s.item_set.digest,
        )
        for s in evaluation.scores
    }
    return Snapshot(
        checkpoint=checkpoint.content_hash,
        run=run,
        step=checkpoint.step,
        scores=scores,
        training_flop=checkpoint.training_flop,
        evaluated_at=evaluation.created_at,
    )


def has_deep_dispatch(session: Session, checkpoint_id: int) -> bool:
    return (
        session.scalar(
            select(Job.id)
            .where(Job.checkpoint_id == checkpoint_id, Job.kind == JobKind.deep_eval)
            .limit(1)
        )
        is not None
    )


def _earlier(session: Session, checkpoint: Checkpoint) -> list[Checkpoint]:
    """The run's checkpoints before ``checkpoint``, in step order."""
    earlier = [
        c
        for c in session.scalars(select(Checkpoint).where(Checkpoint.run_id == checkpoint.run_id))
        if c.id != checkpoint.id and _order(c) < _order(checkpoint)
    ]
    earlier.sort(key=_order)
    return earlier


def find_baseline(session: Session, checkpoint: Checkpoint) -> Checkpoint | bool | None:
    """The last earlier checkpoint of the run with a deep evaluation dispatched.

    Returns False when an earlier checkpoint is still undecided (decide later), None when there
    is no baseline (this is the run's first checkpoint to be decided).
    """
    earlier = _earlier(session, checkpoint)
    if any(c.state not in (CheckpointState.decided, CheckpointState.failed) for c in earlier):
        return False
    for candidate in reversed(earlier):
        if candidate.state == CheckpointState.decided and has_deep_dispatch(session, candidate.id):
            return candidate
    return None


def lineage(session: Session, checkpoint: Checkpoint, baseline: Checkpoint | None) -> Lineage:
    """How many checkpoints the run and the baseline have seen, and when the baseline's deep
    evaluation was dispatched."""
    decided = [c for c in _earlier(session, checkpoint) if c.state == CheckpointState.decided]
    if baseline is None:
        return Lineage(len(decided) + 1, len(decided) + 1, None)
    since = [c for c in decided if _order(c) > _order(baseline)]
    dispatched = session.scalar(
        select(func.min(Job.created_at)).where(
            Job.checkpoint_id == baseline.id, Job.kind == JobKind.deep_eval
        )
    )
    return Lineage(len(since) + 1, len(decided) + 1, dispatched)


def decide_checkpoint(
    session: Session,
    policy: LoadedPolicy,
    checkpoint: Checkpoint,
    now: datetime,
    *,
    max_attempts: int = 3,
) -> list[int] | None:
    """Evaluate the policy for ``checkpoint`` and dispatch what fired.

    Returns the ids of new jobs to send, or None when an earlier checkpoint must be decided
    first. Deciding twice is a no-op: decisions are unique per (checkpoint, policy, rule).
    """
    repo.lock_decision_log(session)
    session.refresh(checkpoint)
    if repo.decisions_for(session, checkpoint.id, policy.content_hash):
        return []
    baseline = find_baseline(session, checkpoint)
    if baseline is False:
        return None
    current_eval = proxy_evaluation(session, checkpoint.id, policy.proxy_suite.content_hash)
    current_eval = current_eval or proxy_evaluation(session, checkpoint.id)
    if current_eval is None:
        return None
    run_name = checkpoint.run.name
    current = snapshot(checkpoint, current_eval, run_name)
    base_snapshot = None
    if isinstance(baseline, Checkpoint):
        base_eval = proxy_evaluation(session, baseline.id, current_eval.suite_hash)
        base_eval = base_eval or proxy_evaluation(session, baseline.id)
        if base_eval is not None:
            base_snapshot = snapshot(baseline, base_eval, run_name)
    initial = policy.initial_actions()
    base_checkpoint = baseline if isinstance(baseline, Checkpoint) else None
    context = lineage(session, checkpoint, base_checkpoint if base_snapshot else None)
    verdicts = evaluate_policy(
        policy.policy,
        current,
        base_snapshot,
        initial_actions=initial,
        now=now,
        lineage=context,
    )
    shared = _context_inputs(policy, base_snapshot, current, context)
    new_jobs: list[int] = []
    for verdict in verdicts:
        decision = repo.append_decision(
            session,
            _decision_row(policy, checkpoint, base_checkpoint, current_eval, verdict, now, shared),
        )
        if verdict.verdict != "fired":
            continue
        if verdict.actions.review_hold:
            checkpoint.meta = {**checkpoint.meta, "review_hold": True}
        for suite in _suites(policy, verdict, initial):
            job, created = repo.ensure_job(
                session,
                key=f"deep:{checkpoint.content_hash}:{suite.content_hash}",
                kind=JobKind.deep_eval,
                checkpoint_id=checkpoint.id,
                suite_path=str(suite.path),
                suite_hash=suite.content_hash,
                payload={"decision_ids": [decision.id], "rule_id": verdict.rule_id},
                max_attempts=max_attempts,
            )
            if created:
                new_jobs.append(job.id)
            else:
                ids = list(job.payload.get("decision_ids", []))
                job.payload = {**job.payload, "decision_ids": [*ids, decision.id]}
    repo.set_checkpoint_state(session, checkpoint.id, CheckpointState.decided)
    return new_jobs


def _suites(policy: LoadedPolicy, verdict: RuleVerdict, initial: Actions) -> list[LoadedSuite]:
    if verdict.actions is initial:
        return list(policy.initial_suites())
    return list(policy.rule_deep_suites(verdict.actions))


def _decision_row(
    policy: LoadedPolicy,
    checkpoint: Checkpoint,
    baseline: Checkpoint | None,
    evaluation: Evaluation,
    verdict: RuleVerdict,
    now: datetime,
    shared: dict[str, Any],
) -> Decision:
    """The decision-log row of one verdict: its numbers, its inputs and the rule as written."""
    interval = verdict.interval
    return Decision(
        checkpoint_id=checkpoint.id,
        baseline_checkpoint_id=baseline.id if baseline is not None else None,
        policy_name=policy.name,
        policy_hash=policy.content_hash,
        rule_id=verdict.rule_id,
        rule_type=verdict.rule_type,
        severity=verdict.severity,
        verdict=verdict.verdict,
        statistic=_finite(verdict.statistic),
        interval_low=_finite(interval[0]) if interval else None,
        interval_high=_finite(interval[1]) if interval else None,
        p_value=_finite(verdict.p_value),
        explanation=verdict.explanation,
        inputs=_json_safe(
            {
                "schema_version": DECISION_INPUTS_VERSION,
                "evaluation_id": evaluation.id,
                "suite_hash": evaluation.suite_hash,
                "threshold": verdict.threshold,
                "unit": verdict.unit,
                "scores": {s.task: s.score for s in evaluation.scores},
                "comparisons": [c.as_json() for c in verdict.comparisons],
                "details": verdict.details,
                "children": [c.as_json() for c in verdict.children],
                "rule": _rule_json(policy, verdict.rule_id),
                **shared,
            }
        ),
        actions={
            "deep_suites": [str(p) for p in verdict.actions.deep_suites],
            "notify": list(verdict.actions.notify),
            "review_hold": verdict.actions.review_hold,
        },
        decided_at=now,
    )


def _context_inputs(
    policy: LoadedPolicy, baseline: Snapshot | None, current: Snapshot, context: Lineage
) -> dict[str, Any]:
    """What every decision of this checkpoint shares: baseline, compute, looks."""
    shared: dict[str, Any] = _json_safe(
        {
            "baseline": None
            if baseline is None
            else {
                "checkpoint": baseline.checkpoint,
                "step": baseline.step,
                "scores": {t: s.score for t, s in baseline.scores.items()},
                "training_flop": baseline.training_flop,
            },
            "training_flop": current.training_flop,
            "lineage": {
                "looks_since_baseline": context.looks_since_baseline,
                "looks_in_run": context.looks_in_run,
                "baseline_at": context.baseline_at.isoformat() if context.baseline_at else None,
            },
            "policy_confidence": policy.policy.confidence,
        }
    )
    return shared


def _rule_json(policy: LoadedPolicy, rule_id: str) -> dict[str, Any] | None:
    """The rule's definition as the policy states it, so a decision explains itself."""
    for rule in policy.policy.rules:
        if rule.id == rule_id:
            dumped: dict[str, Any] = _json_safe(rule.model_dump(mode="json"))
            return dumped
    return None


def _json_safe(value: Any) -> Any:
    """Plain JSON: no NaN or infinity (PostgreSQL refuses them), no numpy scalars."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str | int):
        return value
    if isinstance(value, float):
        return _finite(value)
    if hasattr(value, "item"):  # numpy scalar
        return _json_safe(value.item())
    return str(value)


def _finite(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return float(value)
