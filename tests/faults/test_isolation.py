"""Isolation under faults, with real worker processes, Redis and PostgreSQL: a bad sidecar
among good checkpoints stops nothing while an expired job is reconciled, and a job waiting
behind a long evaluation is not re-sent while its queue holds its message."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from sqlalchemy import select, update
from tests.conftest import reset_postgres
from tests.faults.conftest import Rig, assert_exactly_once, make_rig, running_job, settled, wait_for
from tests.faults.servers import PrivatePostgres

from tripwire.store import source_state
from tripwire.store.db import Database
from tripwire.store.models import Checkpoint, CheckpointState, Job, JobKind, JobState, utcnow
from tripwire.store.source_state import NoteKind

pytestmark = [pytest.mark.slow, pytest.mark.redis, pytest.mark.postgres]

SETTLE_S = 300


def _lose_worker(rig: Rig, job_id: int) -> None:
    """The job's worker died mid-evaluation: the job is running under a lease that ended, and
    the message it took is gone from the queue."""
    with rig.db().session() as s:
        s.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(
                state=JobState.running,
                attempts=1,
                owner="lost-worker:1",
                lease_until=utcnow() - timedelta(seconds=1),
                enqueued_at=utcnow() - timedelta(minutes=5),
            )
        )


def _proxy_job(rig: Rig, step: int) -> int:
    with rig.db().session() as s:
        return s.scalars(
            select(Job.id)
            .join(Checkpoint, Job.checkpoint_id == Checkpoint.id)
            .where(Checkpoint.step == step, Job.kind == JobKind.proxy_eval)
        ).one()


def _state(db: Database, job_id: int) -> JobState | None:
    with db.session() as s:
        job = s.get(Job, job_id)
        return None if job is None else job.state


@pytest.fixture
def private_pg() -> Iterator[PrivatePostgres]:
    server = PrivatePostgres().init().start()
    try:
        yield server
    finally:
        server.remove()


def test_an_out_of_range_sidecar_among_good_checkpoints_stops_nothing(
    rig_root: Path, redis_url: str, private_pg: PrivatePostgres
) -> None:
    """Every good checkpoint is evaluated, the bad one is a source failure, and a job whose
    worker died is re-sent by the reconciler meanwhile (it used to run only after a scan that
    succeeded, and every scan failed at the bad sidecar)."""
    rig = next(make_rig(rig_root, redis_url, private_pg.url))
    try:
        rig.land("step-100", seed=1)
        with rig.service() as service:
            service.watcher.scan_once()
            lost = _proxy_job(rig, 100)
            _lose_worker(rig, lost)
            redis.Redis.from_url(redis_url).delete("proxy")  # the dead worker had taken it
            bad = rig.land("step-200", seed=2)
            (bad / "tripwire.json").write_text('{"step": 3000000000}')  # over a 32-bit column
            big = rig.land("step-300", seed=3)
            (big / "tripwire.json").write_text('{"tokens_seen": 2400000000}')  # fits 64 bits
            rig.land("step-400", seed=4)
            rig.start_worker()
            stop = threading.Event()
            loop = threading.Thread(target=service.watcher.run, args=(stop,))
            loop.start()
            try:
                db = service.ctx.db

                def all_decided() -> bool:
                    with db.session() as s:
                        states = s.scalars(select(Checkpoint.state)).all()
                    return len(states) == 3 and all(x == CheckpointState.decided for x in states)

                wait_for(all_decided, SETTLE_S, f"three decided checkpoints\n{rig.logs()}", 0.5)
                wait_for(lambda: settled(db), SETTLE_S, f"settled jobs\n{rig.logs()}", 0.5)
            finally:
                stop.set()
                loop.join(timeout=60)
        db = rig.db()
        jobs = assert_exactly_once(db, checkpoints=3)
        assert all(j.state == JobState.done for j in jobs), [(j.key, j.error) for j in jobs]
        with db.session() as s:
            assert sorted(c.step or 0 for c in s.scalars(select(Checkpoint))) == [100, 300, 400]
            tokens = s.scalars(select(Checkpoint.tokens_seen).where(Checkpoint.step == 300))
            assert tokens.one() == 2_400_000_000
            job = s.get(Job, lost)
            assert job is not None and job.attempts == 2, "the lost attempt, and the one re-sent"
            [failure] = source_state.folder_notes(s, [NoteKind.failed])
            assert failure.path == str(bad.resolve())
            assert "field 'step'" in failure.reason and "2147483647" in failure.reason
            assert source_state.folder_notes(s, [NoteKind.scan]) == []
    finally:
        rig.stop_all()


@pytest.fixture
def pg(postgres_url: str) -> str:
    reset_postgres(postgres_url)
    return postgres_url


def test_a_job_behind_a_long_evaluation_is_not_resent_while_its_queue_holds_it(
    rig_root: Path, redis_url: str, pg: str
) -> None:
    rig = next(make_rig(rig_root, redis_url, pg))
    client = redis.Redis.from_url(redis_url)
    try:
        rig.start_worker()  # one pool child: one evaluation at a time
        rig.land("step-100", seed=1)
        with rig.service() as service:
            service.watcher.scan_once()
            db = service.ctx.db
            wait_for(lambda: running_job(db), 120, "the first evaluation to start")
            first = _proxy_job(rig, 100)
            rig.land("step-200", seed=2)
            service.watcher.scan_once()  # its message waits in the queue behind the first
            behind = _proxy_job(rig, 200)
            _lose_worker(rig, behind)  # and its lease says a worker took it and died
            assert client.llen("proxy") == 1
            checks = 0
            while _state(db, first) == JobState.running:
                assert service.watcher.reconcile_once() == 0, "re-sent while queued"
                assert client.llen("proxy") == 1, "a copy piled up behind the evaluation"
                checks += 1
                time.sleep(0.3)
            assert checks >= 3, f"the first evaluation ended too soon to tell ({checks} checks)"
            assert service.wait_until_settled(timeout_s=SETTLE_S), rig.logs()
        jobs = assert_exactly_once(rig.db(), checkpoints=2)
        assert all(j.state == JobState.done for j in jobs), [(j.key, j.error) for j in jobs]
        with rig.db().session() as s:
            job = s.get(Job, behind)
            assert job is not None and job.attempts == 2
    finally:
        client.close()
        rig.stop_all()
