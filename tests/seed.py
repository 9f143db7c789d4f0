"""A store with checkpoints, jobs in every state and decisions, seeded through ``repo``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from tripwire.settings import Settings
from tripwire.store import repo
from tripwire.store.db import Database
from tripwire.store.models import CheckpointState, Decision, Job, JobKind

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
"""The clock the app is given: every age and lease below is relative to it."""


def settings_for(database_url: str, tmp_path: Path, broker_url: str | None = None) -> Settings:
    return Settings(
        _env_file=None,
        home=tmp_path / "home",
        database_url=database_url,
        broker_url=broker_url,
    )


def _job(db: Database, key: str, kind: JobKind, checkpoint_id: int, max_attempts: int = 3) -> int:
    with db.session() as s:
        job, _ = repo.ensure_job(
            s, key=key, kind=kind, checkpoint_id=checkpoint_id, max_attempts=max_attempts
        )
        return job.id


def _attempt(db: Database, job_id: int, at: datetime, lease_s: float = 300) -> None:
    with db.session() as s:
        assert repo.claim_job(s, job_id, "worker-1", lease_s, at)


def _release(db: Database, job_id: int) -> None:
    with db.session() as s:
        repo.release_job(s, job_id, "worker-1", "OOM-killed")


def _finish(db: Database, job_id: int, at: datetime) -> None:
    with db.session() as s:
        assert repo.finish_job(s, job_id, "worker-1", at)


def _created(db: Database, job_id: int, at: datetime) -> None:
    """Backdate a job's creation (``ensure_job`` stamps the real time)."""
    with db.session() as s:
        job = s.get(Job, job_id)
        assert job is not None
        job.created_at = at


def _decide(db: Database, checkpoint_id: int, rule: str, severity: str, verdict: str) -> None:
    with db.session() as s:
        repo.lock_decision_log(s)
        repo.append_decision(
            s,
            Decision(
                checkpoint_id=checkpoint_id,
                policy_name="frontier",
                policy_hash="p" * 64,
                rule_id=rule,
                rule_type="delta",
                severity=severity,
                verdict=verdict,
                explanation="seeded",
                inputs={},
                actions={},
            ),
        )


def seed(db: Database) -> dict[str, int]:
    """Checkpoints, jobs in every state and decisions, through the store's own functions."""
    ids: dict[str, int] = {}
    with db.session() as s:
        for name, run, step in (("c1", "r1", 1), ("c2", "r1", 2), ("c3", "r1", 3), ("c4", "r2", 1)):
            cp, _ = repo.record_checkpoint(
                s, content_hash=f"sha256:{name}", path=f"/ck/{name}", run=run, step=step
            )
            ids[name] = cp.id
            if name == "c2":  # its critical rule asked for human review
                cp.meta = {**cp.meta, "review_hold": True}
        repo.set_checkpoint_state(s, ids["c1"], CheckpointState.decided)
        repo.set_checkpoint_state(s, ids["c4"], CheckpointState.failed, "corrupt shard")

    # proxy c1: done in 20 s on the first attempt.
    job = _job(db, "proxy:c1", JobKind.proxy_eval, ids["c1"])
    _attempt(db, job, NOW - timedelta(hours=3))
    _finish(db, job, NOW - timedelta(hours=3) + timedelta(seconds=20))
    # proxy c2: lost once, then done in 1000 s on the second attempt.
    job = _job(db, "proxy:c2", JobKind.proxy_eval, ids["c2"])
    _attempt(db, job, NOW - timedelta(hours=3))
    _release(db, job)
    _attempt(db, job, NOW - timedelta(hours=2))
    _finish(db, job, NOW - timedelta(hours=2) + timedelta(seconds=1000))
    # proxy c4: one attempt allowed, its worker vanished; the reconciler failed it 3000 s later.
    job = _job(db, "proxy:c4", JobKind.proxy_eval, ids["c4"], max_attempts=1)
    _attempt(db, job, NOW - timedelta(hours=2), lease_s=60)
    with db.session() as s:
        assert repo.expire_exhausted_jobs(s, NOW - timedelta(hours=2) + timedelta(seconds=3000))
    # proxy c3: pending for 30 s.
    job = _job(db, "proxy:c3", JobKind.proxy_eval, ids["c3"])
    _created(db, job, NOW - timedelta(seconds=30))
    # deep c2: third attempt running, its lease ran out 9 minutes ago.
    job = _job(db, "deep:c2", JobKind.deep_eval, ids["c2"], max_attempts=5)
    for _ in range(2):
        _attempt(db, job, NOW - timedelta(hours=1))
        _release(db, job)
    _attempt(db, job, NOW - timedelta(minutes=10), lease_s=60)
    # decide c1: running with a live lease.
    job = _job(db, "decide:c1", JobKind.decide, ids["c1"])
    _attempt(db, job, NOW, lease_s=300)
    # reports: two pending, the older one for 10 minutes.
    _created(db, _job(db, "report:c1", JobKind.report, ids["c1"]), NOW - timedelta(minutes=10))
    _created(db, _job(db, "report:c2", JobKind.report, ids["c2"]), NOW - timedelta(minutes=1))

    _decide(db, ids["c1"], "mmlu-delta", "alert", "fired")
    _decide(db, ids["c2"], "mmlu-delta", "alert", "fired")
    _decide(db, ids["c2"], "wmdp-level", "critical", "fired")
    _decide(db, ids["c3"], "mmlu-delta", "alert", "not_fired")
    _decide(db, ids["c3"], "wmdp-level", "critical", "undecidable")
    return ids
