"""The reconciler re-sends lost work without piling duplicates behind a busy worker."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
import redis
from sqlalchemy import update

from tests.jobs.conftest import Workspace
from tripwire.jobs import tasks
from tripwire.jobs.context import Context, context_from_settings
from tripwire.jobs.pipeline import reconcile
from tripwire.store import repo
from tripwire.store.models import Job, JobKind, JobState, utcnow

pytestmark = pytest.mark.redis


@pytest.fixture
def ctx(workspace: Workspace, redis_url: str) -> Iterator[Context]:
    workspace.settings.broker_url = redis_url
    tasks.configure(redis_url, workspace.settings)
    context = context_from_settings(workspace.settings, tasks.send, tasks.queue_depth)
    try:
        yield context
    finally:
        context.db.dispose()


def _pending_job(ctx: Context, key: str, sent_ago_s: float | None) -> int:
    with ctx.db.session() as s:
        cp, _ = repo.record_checkpoint(
            s, content_hash=f"sha256:{key:0>64}", path=f"/c/{key}", run="r", step=1
        )
        job, _ = repo.ensure_job(s, key=key, kind=JobKind.proxy_eval, checkpoint_id=cp.id)
        if sent_ago_s is not None:
            job.enqueued_at = utcnow() - timedelta(seconds=sent_ago_s)
        return job.id


def _queued(redis_url: str) -> int:
    client = redis.Redis.from_url(redis_url)
    try:
        return int(client.llen("proxy"))
    finally:
        client.close()


def test_a_pending_job_is_resent_only_once_its_queue_has_drained(
    ctx: Context, redis_url: str
) -> None:
    _pending_job(ctx, "a", sent_ago_s=120)  # sent, and not started for 2 minutes
    tasks.send("tripwire.proxy_eval", 999)  # the queue still holds work for a busy worker
    assert reconcile(ctx) == 0
    assert _queued(redis_url) == 1, "no duplicate piled behind the backlog"

    redis.Redis.from_url(redis_url).delete("proxy")  # drained (or wiped): the message is lost
    assert reconcile(ctx) == 1
    assert _queued(redis_url) == 1
    assert reconcile(ctx) == 0, "just sent: not again until resend_after_s passes"


def test_a_long_stale_pending_job_is_resent_even_under_a_backlog(
    ctx: Context, redis_url: str
) -> None:
    _pending_job(ctx, "b", sent_ago_s=2 * 3600)
    tasks.send("tripwire.proxy_eval", 999)
    assert reconcile(ctx) == 1
    assert _queued(redis_url) == 2


def _expire(ctx: Context, job_id: int, *, lease_ended_ago_s: float, sent_ago_s: float) -> None:
    """The job's worker died: it is running under a lease that ended a while ago."""
    now = utcnow()
    with ctx.db.session() as s:
        s.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(
                state=JobState.running,
                attempts=1,
                owner="dead-worker",
                lease_until=now - timedelta(seconds=lease_ended_ago_s),
                enqueued_at=now - timedelta(seconds=sent_ago_s),
            )
        )


def test_an_expired_lease_is_not_resent_while_its_queue_holds_messages(
    ctx: Context, redis_url: str
) -> None:
    """The same rule as for pending jobs: behind a long evaluation the queue holds the job's
    message (given back by the lost worker's pool), and a copy per scan would pile up."""
    job_id = _pending_job(ctx, "c", sent_ago_s=None)
    _expire(ctx, job_id, lease_ended_ago_s=5, sent_ago_s=600)
    tasks.send("tripwire.proxy_eval", job_id)  # its message, waiting behind a busy worker
    for _ in range(5):
        assert reconcile(ctx) == 0
    assert _queued(redis_url) == 1, "no copies piled up"

    redis.Redis.from_url(redis_url).delete("proxy")  # the queue drained, the message is gone
    assert reconcile(ctx) == 1
    assert _queued(redis_url) == 1


def test_an_expired_lease_is_resent_once_per_resend_interval(ctx: Context, redis_url: str) -> None:
    """Re-sending does not change the job's state, so without a note of the send it went out
    again at every scan (8 copies in 45 s)."""
    job_id = _pending_job(ctx, "d", sent_ago_s=None)
    _expire(ctx, job_id, lease_ended_ago_s=5, sent_ago_s=600)
    assert reconcile(ctx) == 1
    redis.Redis.from_url(redis_url).delete("proxy")  # a worker took it (and died again)
    for _ in range(5):
        assert reconcile(ctx) == 0, "sent just now: not again before resend_after_s"
    later = utcnow() + timedelta(seconds=ctx.resend_after_s + 1)
    assert reconcile(ctx, now=later) == 1


def test_a_long_expired_lease_is_resent_even_under_a_backlog(ctx: Context, redis_url: str) -> None:
    job_id = _pending_job(ctx, "e", sent_ago_s=None)
    _expire(ctx, job_id, lease_ended_ago_s=2 * 3600, sent_ago_s=3 * 3600)
    tasks.send("tripwire.proxy_eval", 999)
    assert reconcile(ctx) == 1
    assert _queued(redis_url) == 2
