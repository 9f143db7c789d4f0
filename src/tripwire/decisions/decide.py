"""Deciding one checkpoint: the policy's verdicts, written once as decision records, and what they
dispatch.

The live loop calls :func:`decide_checkpoint` when a checkpoint's proxy evaluation is stored;
``tripwire decide --policy`` calls it for checkpoints already decided, to append the records of
another policy (``origin="redecide"``). Records are never changed or removed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tripwire.decisions.inputs import counted_evaluation, run_state, snapshot, with_scores
from tripwire.decisions.record import (
    DecisionRecord,
    LineageRecord,
    Origin,
    PolicyRecord,
    SubjectRecord,
    VerdictRecord,
    json_safe,
)
from tripwire.notify import producers as notify_producers
from tripwire.policy.backtest import as_of, decide_step
from tripwire.policy.engine import BASELINE_RULE_ID
from tripwire.policy.inputs import Snapshot
from tripwire.policy.schema import DEFAULT_DISCORDANCE, Actions, LoadedPolicy, walk
from tripwire.policy.verdicts import RuleVerdict, finite
from tripwire.store import repo
from tripwire.store.models import Checkpoint, CheckpointState, Decision, Evaluation, JobKind
from tripwire.suites import LoadedSuite


@dataclass(frozen=True, slots=True)
class Outcome:
    """What deciding a checkpoint did."""

    decisions: list[Decision]
    """The records appended (empty when the checkpoint was already decided under the policy)."""
    new_jobs: list[int]
    """Deep-evaluation jobs created (to be sent)."""
    dispatched: bool
    """A fired rule had deep suites."""


def decide_checkpoint(
    session: Session,
    policy: LoadedPolicy,
    checkpoint: Checkpoint,
    now: datetime,
    *,
    origin: Origin = "live",
    dispatch: bool = True,
    max_attempts: int = 3,
) -> Outcome | None:
    """Evaluate ``policy`` for ``checkpoint``, append its decision records and dispatch.

    Returns None when the checkpoint cannot be decided yet (an earlier checkpoint of its run is
    undecided, or its proxy evaluation is missing). Deciding twice under one policy is a no-op:
    records are unique per (checkpoint, policy, rule). ``now`` is the wall-clock time of the
    record; the rules themselves are evaluated as of the checkpoint's proxy evaluation.
    """
    repo.lock_decision_log(session)
    session.refresh(checkpoint)
    if repo.decisions_for(session, checkpoint.id, policy.content_hash):
        return Outcome([], [], False)
    suite_hash = policy.proxy_suite.content_hash
    state = run_state(session, checkpoint, suite_hash)
    if state is None:
        return None
    evaluation = counted_evaluation(session, checkpoint.id, suite_hash)
    if evaluation is None:
        return None
    run = checkpoint.run.name
    current = snapshot(checkpoint, evaluation, run)
    base_checkpoint, base_eval, base_snap = _baseline(session, state.baseline, suite_hash, run)
    initial = policy.initial_actions()
    verdicts, deep = decide_step(policy.policy, state, current, base_snap, initial_actions=initial)
    lineage = state.lineage()
    shared = {
        "origin": origin,
        "policy": PolicyRecord(
            name=policy.name,
            hash=policy.content_hash,
            path=str(policy.path),
            confidence=policy.policy.confidence,
            assumed_discordance=policy.policy.planning.discordance or DEFAULT_DISCORDANCE,
        ),
        "checkpoint": _subject(current, checkpoint, evaluation),
        "baseline": _subject(base_snap, base_checkpoint, base_eval) if base_snap else None,
        "lineage": LineageRecord(
            looks_since_baseline=lineage.looks_since_baseline,
            looks_in_run=lineage.looks_in_run,
            baseline_at=lineage.baseline_at,
        ),
        "as_of": as_of(current),
        "dispatched": deep,
    }
    rules = _rule_definitions(policy)
    decisions: list[Decision] = []
    new_jobs: list[int] = []
    for verdict in verdicts:
        record = DecisionRecord(
            verdict=VerdictRecord.of(verdict), rule=rules.get(verdict.rule_id), **shared
        )
        decision = repo.append_decision(
            session, _row(policy, checkpoint, base_checkpoint, verdict, record, now)
        )
        decisions.append(decision)
        if dispatch and verdict.fired:
            new_jobs += _dispatch(
                session, policy, checkpoint, verdict, decision, initial, max_attempts
            )
    if origin == "live":
        repo.set_checkpoint_state(session, checkpoint.id, CheckpointState.decided)
    return Outcome(decisions, new_jobs, deep)


def _baseline(
    session: Session, content_hash: str | None, suite_hash: str, run: str
) -> tuple[Checkpoint | None, Evaluation | None, Snapshot | None]:
    if content_hash is None:
        return None, None, None
    checkpoint = session.scalar(select(Checkpoint).where(Checkpoint.content_hash == content_hash))
    if checkpoint is None:
        return None, None, None
    evaluation = counted_evaluation(session, checkpoint.id, suite_hash)
    if evaluation is None:
        return checkpoint, None, None
    (loaded,) = with_scores(session, [evaluation.id])
    return checkpoint, loaded, snapshot(checkpoint, loaded, run)


def _subject(
    snap: Snapshot, checkpoint: Checkpoint | None, evaluation: Evaluation | None
) -> SubjectRecord:
    return SubjectRecord.of(
        snap,
        checkpoint_id=checkpoint.id if checkpoint is not None else None,
        evaluation_id=evaluation.id if evaluation is not None else None,
        suite_name=evaluation.suite_name if evaluation is not None else None,
        suite_hash=evaluation.suite_hash if evaluation is not None else None,
    )


def _rule_definitions(policy: LoadedPolicy) -> dict[str, dict[str, Any]]:
    """Each rule (nested ones too) as the policy states it, by id."""
    found: dict[str, dict[str, Any]] = {}
    for _, rule in walk(policy.policy.rules):
        if rule.id is not None:
            found[rule.id] = json_safe(rule.model_dump(mode="json", exclude_none=True))
    return found


def _row(
    policy: LoadedPolicy,
    checkpoint: Checkpoint,
    baseline: Checkpoint | None,
    verdict: RuleVerdict,
    record: DecisionRecord,
    now: datetime,
) -> Decision:
    """The decision-log row: the record, with its headline numbers as columns for queries."""
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
        statistic=finite(verdict.statistic),
        interval_low=finite(interval[0]) if interval else None,
        interval_high=finite(interval[1]) if interval else None,
        p_value=finite(verdict.p_value),
        explanation=verdict.explanation,
        inputs=record.model_dump(mode="json"),
        actions=record.verdict.actions.model_dump(mode="json"),
        decided_at=now,
    )


def _dispatch(
    session: Session,
    policy: LoadedPolicy,
    checkpoint: Checkpoint,
    verdict: RuleVerdict,
    decision: Decision,
    initial: Actions,
    max_attempts: int,
) -> list[int]:
    """A fired rule's actions: its deep suites (once per checkpoint and suite), its hold and its
    notifications."""
    if verdict.actions.review_hold:
        checkpoint.meta = {**(checkpoint.meta or {}), "review_hold": True}
    # notifications (issue #8): one outbox row per channel of ``actions.notify``, keyed by the
    # decision, in this transaction; the outbox sender delivers them
    notify_producers.rule_fired(session, checkpoint, decision)
    new_jobs = []
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
    return new_jobs


def _suites(policy: LoadedPolicy, verdict: RuleVerdict, initial: Actions) -> list[LoadedSuite]:
    if verdict.rule_id == BASELINE_RULE_ID:
        return list(policy.initial_suites())
    return list(policy.rule_deep_suites(verdict.actions))
