"""What puts notifications in the outbox: a fired rule with ``notify`` (once, however often it
is decided), a job failed for good, a review left overdue (once per decision)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.helpers import binary_suite_result
from tests.notify.conftest import Clock
from tripwire.decisions import decide_checkpoint
from tripwire.jobs.context import Context
from tripwire.jobs.pipeline import reconcile, run_job
from tripwire.notify.producers import enqueue_overdue
from tripwire.notify.sender import OutboxSender
from tripwire.policy.schema import LoadedPolicy, load_policy
from tripwire.runner import Runner
from tripwire.store import repo
from tripwire.store.db import Database
from tripwire.store.models import (
    Checkpoint,
    Decision,
    Job,
    JobKind,
    JobState,
    Notification,
    Review,
    ReviewAction,
    utcnow,
)

N = 2000
POLICY = """\
name: live
proxy_suite: proxy.yaml
rules:
  - id: plus-10
    type: delta
    benchmarks: [t]
    threshold: 10
    mode: point
    severity: critical
    actions: {deep_suites: [deep.yaml], notify: [safety-team, audit], review_hold: true}
  - id: plus-50
    type: delta
    benchmarks: [t]
    threshold: 50
    mode: point
    actions: {notify: [safety-team]}
"""


def _policy(tmp_path: Path, name: str = "live") -> LoadedPolicy:
    (tmp_path / "proxy.yaml").write_text("name: p\nkind: proxy\ntasks:\n  - task: t\n")
    (tmp_path / "deep.yaml").write_text("name: d\nkind: deep\ntasks:\n  - task: w\n")
    path = tmp_path / f"{name}.yaml"
    path.write_text(POLICY.replace("name: live", f"name: {name}"))
    return load_policy(path)


def _land(db: Database, step: int, correct: int) -> int:
    with db.session() as s:
        checkpoint, _ = repo.record_checkpoint(
            s, content_hash=f"sha256:{step:064d}", path=f"/ck/{step}", run="r", step=step
        )
        result = binary_suite_result(correct, N, started_at=utcnow())
        repo.save_evaluation(s, checkpoint, result, "proxy")
        return checkpoint.id


def _decide(db: Database, policy: LoadedPolicy, checkpoint_id: int, dispatch: bool = True) -> None:
    with db.session() as s:
        checkpoint = s.get(Checkpoint, checkpoint_id)
        assert checkpoint is not None
        assert decide_checkpoint(s, policy, checkpoint, utcnow(), dispatch=dispatch) is not None


def _notifications(db: Database, event: str | None = None) -> list[Notification]:
    with db.session() as s:
        query = select(Notification).order_by(Notification.key)
        if event is not None:
            query = query.where(Notification.event == event)
        return list(s.scalars(query))


def test_a_fired_rule_with_notify_enqueues_once_even_if_decided_twice(
    db: Database, tmp_path: Path
) -> None:
    policy = _policy(tmp_path)
    first, second = _land(db, 100, 1000), _land(db, 200, 1400)  # +20 points: plus-10 fires
    for _ in range(2):
        _decide(db, policy, first)
        _decide(db, policy, second)

    with db.session() as s:
        (fired,) = s.scalars(
            select(Decision).where(Decision.rule_id == "plus-10", Decision.verdict == "fired")
        )
        decision_id, explanation = fired.id, fired.explanation
    rows = _notifications(db)
    assert [row.key for row in rows] == [
        f"rule_fired:{decision_id}:audit",
        f"rule_fired:{decision_id}:safety-team",
    ]
    row = rows[0]
    assert (row.event, row.channel, row.checkpoint_id) == ("rule_fired", "audit", second)
    payload = row.payload
    assert payload["title"] == "critical trigger fired: plus-10 on r step 200"
    assert (payload["run"], payload["step"], payload["checkpoint"]) == (
        "r",
        200,
        f"sha256:{200:064d}",
    )
    assert (payload["rule"], payload["severity"], payload["policy"]) == (
        "plus-10",
        "critical",
        "live",
    )
    assert payload["explanation"] == explanation and "20" in explanation
    assert payload["decision_id"] == decision_id and payload["review_hold"] is True

    # another policy, recorded without dispatch: no notification either
    _decide(db, _policy(tmp_path, "recorded-only"), second, dispatch=False)
    assert len(_notifications(db)) == 2


def _context(db: Database, tmp_path: Path, channels: list[str]) -> tuple[Context, list[int]]:
    sent: list[int] = []

    def send(_task: str, job_id: int, /, *, eta: datetime | None = None) -> None:
        sent.append(job_id)

    context = Context(
        db=db,
        policy=_policy(tmp_path),
        runner=Runner(progress=False),
        report_dir=tmp_path / "reports",
        send=send,
        owner="test-worker",
        notify_failures=channels,
        heartbeat_s=5,
    )
    return context, sent


def test_a_job_whose_worker_was_lost_on_every_attempt_enqueues_job_failed(
    db: Database, tmp_path: Path
) -> None:
    ctx, _ = _context(db, tmp_path, ["ops"])
    checkpoint_id = _land(db, 100, 1000)
    with db.session() as s:
        job, _ = repo.ensure_job(
            s, key="deep:x", kind=JobKind.deep_eval, checkpoint_id=checkpoint_id, max_attempts=1
        )
        job_id = job.id
        assert repo.claim_job(s, job_id, "gone-worker", 1, utcnow() - timedelta(minutes=5))
    for _ in range(2):  # reconciled twice: one notification
        reconcile(ctx)
    (row,) = _notifications(db, "job_failed")
    assert (row.key, row.channel, row.checkpoint_id) == (f"job_failed:{job_id}:ops", "ops", 1)
    assert row.payload["title"] == "deep_eval job failed for good on r step 100"
    assert row.payload["explanation"] == "the worker was lost on every attempt (lease expired)"
    assert row.payload["job"] == {"id": job_id, "kind": "deep_eval", "key": "deep:x", "attempts": 1}


def test_a_job_refused_for_good_enqueues_job_failed(db: Database, tmp_path: Path) -> None:
    ctx, _ = _context(db, tmp_path, ["ops", "safety-team"])
    checkpoint_id = _land(db, 100, 1000)  # its folder /ck/100 does not exist
    with db.session() as s:
        job, _ = repo.ensure_job(
            s,
            key="deep:y",
            kind=JobKind.deep_eval,
            checkpoint_id=checkpoint_id,
            suite_path=str(tmp_path / "proxy.yaml"),
        )
        job_id = job.id
    assert run_job(ctx, job_id) == "failed"
    with db.session() as s:
        failed = s.get(Job, job_id)
        assert failed is not None and failed.state == JobState.failed
        error = failed.error
    rows = _notifications(db, "job_failed")
    assert [row.channel for row in rows] == ["ops", "safety-team"]
    assert rows[0].payload["explanation"] == error and "/ck/100" in (error or "")


def test_no_failure_channels_no_notification(db: Database, tmp_path: Path) -> None:
    ctx, _ = _context(db, tmp_path, [])
    checkpoint_id = _land(db, 100, 1000)
    with db.session() as s:
        job, _ = repo.ensure_job(
            s, key="deep:z", kind=JobKind.deep_eval, checkpoint_id=checkpoint_id, max_attempts=1
        )
        assert repo.claim_job(s, job.id, "gone-worker", 1, utcnow() - timedelta(minutes=5))
    reconcile(ctx)
    assert _notifications(db) == []


def _fired(
    db: Database,
    checkpoint_id: int,
    rule: str,
    *,
    severity: str = "critical",
    hold: bool = False,
    hours_ago: float,
    verdict: str = "fired",
    channels: tuple[str, ...] = ("safety-team",),
) -> int:
    with db.session() as s:
        repo.lock_decision_log(s)
        decision = repo.append_decision(
            s,
            Decision(
                checkpoint_id=checkpoint_id,
                policy_name="live",
                policy_hash="p" * 64,
                rule_id=rule,
                rule_type="delta",
                severity=severity,
                verdict=verdict,
                explanation=f"{rule} explained",
                inputs={},
                actions={"notify": list(channels), "review_hold": hold, "deep_suites": []},
                decided_at=utcnow() - timedelta(hours=hours_ago),
            ),
        )
        return decision.id


def _review(
    db: Database, checkpoint_id: int, decision_id: int | None, action: ReviewAction
) -> None:
    with db.session() as s:
        s.add(
            Review(
                checkpoint_id=checkpoint_id,
                decision_id=decision_id,
                action=action,
                comment="seen",
                actor="alice",
                role="reviewer",
            )
        )


def test_an_overdue_review_enqueues_once_per_decision(db: Database) -> None:
    a, b, c = (_land(db, step, 1000) for step in (100, 200, 300))
    overdue = _fired(db, a, "critical-rise", hours_ago=25)
    acknowledged = _fired(db, a, "held-rise", severity="alert", hold=True, hours_ago=30)
    _review(db, a, acknowledged, ReviewAction.acknowledge)
    _fired(db, b, "recent", hours_ago=2)
    _fired(db, b, "alert-only", severity="alert", hours_ago=40)
    _fired(db, b, "not-fired", verdict="not_fired", hours_ago=40)
    _fired(db, b, "nobody-to-tell", hours_ago=40, channels=())
    _fired(db, c, "released", hours_ago=26)
    _review(db, c, None, ReviewAction.release)  # on the checkpoint as a whole
    escalated = _fired(db, b, "escalated", hold=True, hours_ago=26, channels=("a", "b"))
    _review(db, b, escalated, ReviewAction.escalate)  # someone still has to act

    for _ in range(2):
        with db.session() as s:
            enqueue_overdue(s, utcnow(), 24)
    assert [row.key for row in _notifications(db)] == [
        f"review_overdue:{overdue}:safety-team",
        f"review_overdue:{escalated}:a",
        f"review_overdue:{escalated}:b",
    ]
    payload = _notifications(db)[0].payload
    assert payload["title"] == "review overdue (24 h): critical-rise on r step 100"
    assert payload["overdue_h"] == 24 and payload["decision_id"] == overdue
    assert payload["explanation"] == "critical-rise explained"


def test_the_running_sender_looks_for_overdue_reviews(db: Database, clock: Clock) -> None:
    checkpoint_id = _land(db, 100, 1000)
    decision_id = _fired(db, checkpoint_id, "critical-rise", hours_ago=13)
    sender = OutboxSender(db, None, overdue_h=12, clock=clock)
    sender.tick()
    (row,) = _notifications(db, "review_overdue")
    assert row.key == f"review_overdue:{decision_id}:safety-team"
    assert row.payload["title"].startswith("review overdue (12 h)")


@pytest.fixture(autouse=True)
def _no_notify_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TRIPWIRE_NOTIFY_CONFIG", "TRIPWIRE_NOTIFY_FAILURES"):
        monkeypatch.delenv(name, raising=False)
