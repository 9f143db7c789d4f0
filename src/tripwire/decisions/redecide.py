"""``tripwire decide --policy FILE``: apply another policy to checkpoints already decided.

The live records stay; the new policy's records are appended beside them (``origin:
redecide``), in step order within each run, each as of its checkpoint's proxy evaluation and
against the baseline the run actually had then (the fold of what was really dispatched).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import select

from tripwire.decisions.decide import decide_checkpoint
from tripwire.decisions.inputs import counted_evaluations
from tripwire.errors import TripwireError
from tripwire.lineage.graph import order_key
from tripwire.policy.engine import BASELINE_RULE_ID
from tripwire.policy.schema import LoadedPolicy
from tripwire.store.db import Database
from tripwire.store.models import Checkpoint, CheckpointState, Run, utcnow


def parse_since(text: str) -> datetime:
    """An ISO 8601 date or time; a time without a zone is UTC."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise TripwireError(
            f"--since: {text!r} is not an ISO 8601 date or time; allowed e.g. 2026-11-01 or "
            "2026-11-01T12:00Z"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


@dataclass(slots=True)
class Redecided:
    """What ``tripwire decide`` did."""

    policy: str
    decided: list[tuple[str, int | None, list[str]]] = field(default_factory=list)
    """(run, step, fired rules) of each checkpoint given new records."""
    already: int = 0
    """Checkpoints that already had this policy's records (left as they were)."""
    waiting: int = 0
    """Checkpoints not decided by the live loop yet (left to it)."""
    jobs: int = 0
    """Deep evaluations queued."""

    def lines(self) -> list[str]:
        out = [
            f"run {run} step {'-' if step is None else step}: "
            + (f"fired {', '.join(fired)}" if fired else "no rule fired")
            for run, step, fired in self.decided
        ]
        out.append(
            f"{len(self.decided)} checkpoints decided under {self.policy}; {self.already} "
            f"already had its decisions; {self.waiting} not decided by the live loop yet; "
            f"{self.jobs} deep evaluations queued (the running watcher sends them)"
        )
        return out


def redecide(
    db: Database,
    policy: LoadedPolicy,
    *,
    since: datetime | None = None,
    run: str | None = None,
    dispatch: bool = True,
    max_attempts: int = 3,
) -> Redecided:
    """Append ``policy``'s decisions for every decided checkpoint (of ``run``, evaluated at or
    after ``since``), one transaction per checkpoint."""
    result = Redecided(policy.name)
    with db.session() as session:
        runs = list(session.scalars(select(Run).order_by(Run.name)))
        if run is not None:
            runs = [r for r in runs if r.name == run]
            if not runs:
                names = ", ".join(r.name for r in session.scalars(select(Run))) or "none stored"
                raise TripwireError(f"--run: no run named {run!r}; runs: {names}")
        targets: list[int] = []
        for r in runs:
            checkpoints = sorted(r.checkpoints, key=order_key)
            times = counted_evaluations(
                session, [c.id for c in checkpoints], policy.proxy_suite.content_hash
            )
            for c in checkpoints:
                evaluation = times.get(c.id)
                if evaluation is None or (since is not None and evaluation.created_at < since):
                    continue
                if c.state != CheckpointState.decided:
                    result.waiting += c.state != CheckpointState.failed
                    continue
                targets.append(c.id)
    for checkpoint_id in targets:
        with db.session() as session:
            checkpoint = session.get(Checkpoint, checkpoint_id)
            assert checkpoint is not None
            outcome = decide_checkpoint(
                session,
                policy,
                checkpoint,
                utcnow(),
                origin="redecide",
                dispatch=dispatch,
                max_attempts=max_attempts,
            )
            if outcome is None:
                result.waiting += 1
            elif not outcome.decisions:
                result.already += 1
            else:
                fired = [
                    d.rule_id
                    for d in outcome.decisions
                    if d.verdict == "fired" and d.rule_id != BASELINE_RULE_ID
                ]
                result.decided.append((checkpoint.run.name, checkpoint.step, fired))
                result.jobs += len(outcome.new_jobs)
    return result
