"""``/metrics`` on a real server reports what the database and the Redis broker hold."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from celery import Celery
from kombu import Connection
from sqlalchemy import update

from tests.conftest import REDIS_URL, require_service
from tests.seed import NOW, seed, settings_for
from tests.servers import closed_port, sample, scrape, serving
from tripwire.jobs.celery_config import QUEUES, celery_settings
from tripwire.metrics import queue_keys
from tripwire.store import repo, source_state
from tripwire.store.db import Database
from tripwire.store.models import Job, JobKind, utcnow
from tripwire.store.source_state import NoteKind, Observed
from tripwire.web.app import create_app

METRICS_REDIS_DB = 13
"""Not the shared test database (15), which other tests flush."""


def test_metrics_match_the_seeded_database(database_url: str, tmp_path: Path) -> None:
    """Jobs by state, durations, redeliveries, expired leases, pending age, triggers fired."""
    db = Database(database_url)
    seed(db)
    db.dispose()
    app = create_app(settings_for(database_url, tmp_path), clock=lambda: NOW)
    with serving(app) as base:
        m = scrape(base)

    assert sample(m, "tripwire_database_up") == 1
    jobs = {
        (labels["kind"], labels["state"]): value
        for (name, pairs), value in m.items()
        if name == "tripwire_jobs"
        for labels in [dict(pairs)]
    }
    expected = {key: 0.0 for key in jobs}
    expected |= {
        ("proxy_eval", "done"): 2,
        ("proxy_eval", "failed"): 1,
        ("proxy_eval", "pending"): 1,
        ("deep_eval", "running"): 1,
        ("decide", "running"): 1,
        ("report", "pending"): 2,
    }
    assert len(jobs) == len(JobKind) * 4, "every kind and state is reported, zeros included"
    assert jobs == expected

    def duration(suffix: str, state: str, **labels: str) -> float | None:
        name = f"tripwire_job_duration_seconds_{suffix}"
        return sample(m, name, kind="proxy_eval", state=state, **labels)

    assert duration("count", "done") == 2
    assert duration("sum", "done") == pytest.approx(1020, abs=1e-3)
    cumulative = {"10.0": 0, "30.0": 1, "900.0": 1, "1800.0": 2, "+Inf": 2}
    for le, count in cumulative.items():
        assert duration("bucket", "done", le=le) == count, le
    assert duration("count", "failed") == 1
    assert duration("sum", "failed") == pytest.approx(3000, abs=1e-3)
    assert duration("bucket", "failed", le="1800.0") == 0
    assert duration("bucket", "failed", le="3600.0") == 1
    assert sample(m, "tripwire_job_duration_seconds_count", kind="deep_eval", state="done") is None

    redeliveries = {"proxy_eval": 1, "deep_eval": 2, "decide": 0, "report": 0}
    for kind, count in redeliveries.items():
        assert sample(m, "tripwire_job_redeliveries_total", kind=kind) == count, kind
    expired = {"proxy_eval": 0, "deep_eval": 1, "decide": 0, "report": 0}
    for kind, count in expired.items():
        assert sample(m, "tripwire_job_leases_expired", kind=kind) == count, kind
    ages = {"proxy_eval": 30, "report": 600, "deep_eval": 0, "decide": 0}
    for kind, age in ages.items():
        got = sample(m, "tripwire_oldest_pending_job_age_seconds", kind=kind)
        assert got == pytest.approx(age, abs=1e-3), kind

    fired = {
        dict(pairs)["rule"]: (dict(pairs)["severity"], dict(pairs)["policy"], value)
        for (name, pairs), value in m.items()
        if name == "tripwire_triggers_fired_total"
    }
    assert fired == {
        "mmlu-delta": ("alert", "frontier", 2),
        "wmdp-level": ("critical", "frontier", 1),
    }

    checkpoints = {"discovered": 2, "evaluated": 0, "decided": 1, "failed": 1}
    for state, count in checkpoints.items():
        assert sample(m, "tripwire_checkpoints", state=state) == count, state
    assert sample(m, "tripwire_broker_up") is None, "no broker configured: no broker metrics"
    assert sample(m, "tripwire_queue_messages", queue="proxy") is None


@pytest.fixture
def broker_url() -> Iterator[str]:
    """The machine's Redis on a database of these tests' own; every key they make is removed."""
    require_service("Redis", REDIS_URL, 6379)
    url = f"{REDIS_URL.rsplit('/', 1)[0]}/{METRICS_REDIS_DB}"
    client = redis.Redis.from_url(url)
    ours = [key for queue in QUEUES for key in queue_keys(queue)] + ["unacked", "unacked_index"]
    client.delete(*ours)
    before = set(client.keys("*"))
    try:
        yield url
    finally:
        made = set(client.keys("*")) - before
        if made:
            client.delete(*made)
        client.close()


def test_queue_depth_is_read_from_the_redis_broker(tmp_path: Path, broker_url: str) -> None:
    """Messages Celery sends (any priority) count until a worker takes them; a taken one counts
    as held while its job runs under a live lease, and as orphaned once the lease is over (its
    worker is gone, though Redis keeps it unacknowledged until the visibility timeout)."""
    db = Database(f"sqlite:///{tmp_path / 't.db'}")
    with db.session() as s:
        cp, _ = repo.record_checkpoint(
            s, content_hash="sha256:" + "a" * 64, path="/c", run="r", step=1
        )
        ids = [
            repo.ensure_job(s, key=f"k{i}", kind=JobKind.proxy_eval, checkpoint_id=cp.id)[0].id
            for i in range(4)
        ]
    sender = Celery("metrics-test")
    sender.conf.update(celery_settings(broker_url))
    sender.send_task("tripwire.proxy_eval", args=[ids[0]])
    sender.send_task("tripwire.proxy_eval", args=[ids[1]], priority=5)
    sender.send_task("tripwire.proxy_eval", args=[ids[2]])
    sender.send_task("tripwire.deep_eval", args=[ids[3]])
    sender.close()
    app = create_app(settings_for(db.url, tmp_path, broker_url))
    with serving(app) as base:
        before = scrape(base)
        with Connection(broker_url) as conn:
            channel = conn.channel()
            taken = channel.basic_get("proxy", no_ack=False)
            assert taken is not None
            job_id = taken.decode()[0][0]
            with db.session() as s:  # a worker claims the job it received
                assert repo.claim_job(s, job_id, "w", 300, utcnow())
            during = scrape(base)
            with db.session() as s:  # the worker dies: its lease runs out
                s.execute(
                    update(Job)
                    .where(Job.id == job_id)
                    .values(lease_until=utcnow() - timedelta(seconds=1))
                )
            lost = scrape(base)
            channel.close()
    db.dispose()

    assert sample(before, "tripwire_broker_up") == 1
    depths = {q: sample(before, "tripwire_queue_messages", queue=q) for q in QUEUES}
    assert depths == {"proxy": 3, "deep": 1, "control": 0}
    assert sample(before, "tripwire_queue_unacked_messages") == 0
    assert sample(during, "tripwire_queue_messages", queue="proxy") == 2
    assert sample(during, "tripwire_queue_unacked_messages") == 1
    assert sample(during, "tripwire_queue_unacked_orphaned_messages") == 0
    assert sample(lost, "tripwire_queue_unacked_messages") == 0
    assert sample(lost, "tripwire_queue_unacked_orphaned_messages") == 1


def test_a_dead_broker_reads_as_down_and_the_database_metrics_remain(tmp_path: Path) -> None:
    settings = settings_for(
        f"sqlite:///{tmp_path / 't.db'}", tmp_path, f"redis://127.0.0.1:{closed_port()}/0"
    )
    with serving(create_app(settings)) as base:
        m = scrape(base)
    assert sample(m, "tripwire_broker_up") == 0
    assert sample(m, "tripwire_queue_messages", queue="proxy") is None
    assert sample(m, "tripwire_database_up") == 1
    assert sample(m, "tripwire_jobs", kind="proxy_eval", state="pending") == 0


def test_an_unreachable_database_reads_as_down(tmp_path: Path) -> None:
    url = f"postgresql+psycopg://tripwire@127.0.0.1:{closed_port()}/tripwire"
    with serving(create_app(settings_for(url, tmp_path))) as base:
        m = scrape(base)
    assert sample(m, "tripwire_database_up") == 0
    assert not [key for key in m if key[0].startswith("tripwire_jobs")]


def test_watcher_metrics_count_folders_failed_scans_and_an_overdue_reconcile(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 't.db'}"
    db = Database(url)
    observed = {
        "/ck/run/step-1": Observed(NoteKind.waiting, "shard index lists 3 shards", "shards"),
        "/ck/run/step-2": Observed(NoteKind.failed, "config.json is not valid JSON"),
        "/ck": Observed(NoteKind.scan, "the scan of /ck failed"),
    }
    with db.session() as s:
        source_state.sync_folders(s, "/ck", observed, ["/ck"], NOW)
        source_state.beat(s, "host:7", 10.0, NOW - timedelta(minutes=3))
    app = create_app(settings_for(url, tmp_path), clock=lambda: NOW)
    with serving(app) as base:
        m = scrape(base)
    db.dispose()

    assert sample(m, "tripwire_source_folders", state="failed") == 1
    assert sample(m, "tripwire_source_folders", state="waiting") == 1
    assert sample(m, "tripwire_scan_failures") == 1
    assert sample(m, "tripwire_reconcile_age_seconds") == 180
    assert sample(m, "tripwire_reconcile_overdue") == 1
