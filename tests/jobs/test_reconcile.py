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


def test_an_expired_lease_is_resent_whatever_the_queue_holds(ctx: Context, redis_url: str) -> None:
    job_id = _pending_job(ctx, "c", sent_ago_s=None)
    with ctx.db.session() as s:
        s.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(
                state=JobState.running,
                attempts=1,
                owner="dead-worker",
                lease_until=utcnow() - timedelta(seconds=1),
            )
        )
    tasks.send("tripwire.proxy_eval", 999)
    assert reconcile(ctx) == 1
