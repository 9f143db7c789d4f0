"""Fault injection against real Redis, real PostgreSQL and real Celery worker processes.

Each test breaks something mid-run and then checks the invariant that matters: every checkpoint
ends evaluated exactly once (one result, one dispatch per fired decision), or failed with a
reason. The database is the source of truth; the broker only carries requests to try.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import redis
from sqlalchemy import func, select
from tests.conftest import reset_postgres
from tests.faults.conftest import (
    Rig,
    WorkerProcess,
    assert_exactly_once,
    make_rig,
    running_job,
    settled,
    wait_for,
)
from tests.faults.servers import PrivatePostgres, PrivateRedis

from tripwire.jobs import tasks
from tripwire.jobs.context import TASK_NAMES
from tripwire.jobs.pipeline import ingest
from tripwire.sources import LocalDirectorySource
from tripwire.store.models import Checkpoint, CheckpointState, Evaluation, Job, JobKind, JobState

pytestmark = [pytest.mark.slow, pytest.mark.redis, pytest.mark.postgres]

SETTLE_S = 300


@pytest.fixture
def pg(postgres_url: str) -> str:
    reset_postgres(postgres_url)
    return postgres_url


@pytest.fixture
def rig(rig_root: Path, redis_url: str, pg: str) -> Iterator[Rig]:
    """The machine's Redis (database 15) and a fresh PostgreSQL database."""
    yield from make_rig(rig_root, redis_url, pg)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path / "redis").start()
    try:
        yield server
    finally:
        server.stop()


def _settle(rig: Rig, service_timeout: float = SETTLE_S) -> None:
    with rig.service() as service:
        service.watcher.poll_once()
        ok = service.wait_until_settled(timeout_s=service_timeout, poll_s=0.5)
    assert ok, f"jobs did not settle\n{rig.logs()}"


def _rows(jobs: list[Job]) -> list[tuple[str, str, int, str | None]]:
    return [(j.kind.value, j.state.value, j.attempts, j.error) for j in jobs]


def _attempts(rig: Rig, kind: JobKind = JobKind.proxy_eval) -> list[int]:
    with rig.db().session() as s:
        return list(s.scalars(select(Job.attempts).where(Job.kind == kind).order_by(Job.id)))


# ------------------------------------------------------------------ killed workers


def test_sigkill_of_the_worker_main_process_mid_evaluation(rig: Rig) -> None:
    first = rig.start_worker()
    rig.land("step-100", seed=1)
    with rig.service() as service:
        service.watcher.poll_once()
        wait_for(lambda: running_job(service.ctx.db), 120, "the proxy job to start")
        first.kill_main()  # the pool child is orphaned; the job's lease says who owns it
        rig.start_worker()
        assert service.wait_until_settled(timeout_s=SETTLE_S), rig.logs()
    jobs = assert_exactly_once(rig.db(), checkpoints=1)
    assert all(j.state == JobState.done for j in jobs), _rows(jobs)


def test_sigkill_of_the_pool_child_mid_evaluation_reruns_the_job_once(rig: Rig) -> None:
    worker = rig.start_worker()
    rig.land("step-100", seed=1)
    with rig.service() as service:
        service.watcher.poll_once()
        wait_for(lambda: running_job(service.ctx.db), 120, "the proxy job to start")
        children = wait_for(worker.children, 30, "the pool child")
        for child in children:
            child.send_signal(signal.SIGKILL)
        assert service.wait_until_settled(timeout_s=SETTLE_S), rig.logs()
    jobs = assert_exactly_once(rig.db(), checkpoints=1)
    assert all(j.state == JobState.done for j in jobs), _rows(jobs)
    assert _attempts(rig) == [2], "the killed attempt and the one that finished"
    assert worker.process.poll() is None, "the worker survives its child's death"


def test_a_job_whose_child_is_killed_every_time_fails_after_its_attempts(rig: Rig) -> None:
    worker = rig.start_worker()
    rig.land("step-100", seed=1)
    kills = 0
    with rig.service() as service:
        service.watcher.poll_once()
        db = service.ctx.db

        def proxy_state() -> tuple[JobState, int]:
            with db.session() as s:
                job = s.scalars(select(Job).where(Job.kind == JobKind.proxy_eval)).one()
                return job.state, job.attempts

        deadline = time.monotonic() + SETTLE_S
        seen_attempts = 0
        while time.monotonic() < deadline:
            state, attempts = proxy_state()
            if state == JobState.failed:
                break
            if state == JobState.running and attempts > seen_attempts:
                seen_attempts = attempts
                for child in wait_for(worker.children, 30, "the pool child"):
                    child.send_signal(signal.SIGKILL)
                kills += 1
            service.wait_until_settled(timeout_s=0.2, poll_s=0.1)  # reconcile
        state, attempts = proxy_state()
        assert state == JobState.failed, rig.logs()
        assert attempts == 3
        time.sleep(8)  # longer than a lease and a re-send: nothing loops
        assert proxy_state() == (JobState.failed, 3)
        assert service.wait_until_settled(timeout_s=SETTLE_S), rig.logs()
    assert kills == 3
    with rig.db().session() as s:
        checkpoint = s.scalars(select(Checkpoint)).one()
        assert checkpoint.state == CheckpointState.failed
        assert "worker was lost" in (checkpoint.error or "")
        assert s.scalar(select(func.count()).select_from(Evaluation)) == 0
    assert_exactly_once(rig.db(), checkpoints=1)


# ------------------------------------------------------------------ broker edges


def test_an_evaluation_longer_than_the_visibility_timeout_runs_once(rig: Rig) -> None:
    # Two pool children and a 1 s visibility timeout: Redis hands the unacknowledged message to
    # the idle child while the first is still evaluating.
    worker = rig.start_worker("--concurrency", "2", TRIPWIRE_VISIBILITY_TIMEOUT_S="1")
    rig.land("step-100", seed=1)
    _settle(rig)
    jobs = assert_exactly_once(rig.db(), checkpoints=1)
    assert all(j.state == JobState.done for j in jobs)
    assert _attempts(rig) == [1], "the redelivered copy found the job leased and stood down"
    log = worker.log()
    received = log.count("] received")
    assert log.count("Task tripwire.proxy_eval[") >= 2, f"no redelivery happened\n{log[-3000:]}"
    assert "job 1: skipped" in log, "the redelivered copy stood down"
    assert received >= 2


def test_a_redis_restart_with_its_data_wiped_loses_no_checkpoint(
    rig_root: Path, private_redis: PrivateRedis, pg: str
) -> None:
    rig = next(make_rig(rig_root, private_redis.url, pg))
    try:
        rig.start_worker()
        for i in range(3):
            rig.land(f"step-{100 * (i + 1)}", seed=i + 1)
        with rig.service() as service:
            service.watcher.poll_once()
            wait_for(lambda: running_job(service.ctx.db), 120, "the first evaluation")
            private_redis.kill()  # every queued message is gone
            time.sleep(1)
            private_redis.start()
            wiped_at = time.monotonic()
            assert service.wait_until_settled(timeout_s=SETTLE_S), rig.logs()
        assert time.monotonic() - wiped_at < SETTLE_S
        jobs = assert_exactly_once(rig.db(), checkpoints=3)
        assert all(j.state == JobState.done for j in jobs), _rows(jobs)
    finally:
        rig.stop_all()


def test_a_killed_broker_connection_never_runs_a_job_twice_at_once(
    rig_root: Path, private_redis: PrivateRedis, pg: str
) -> None:
    rig = next(make_rig(rig_root, private_redis.url, pg))
    try:
        rig.start_worker()
        rig.land("step-100", seed=1)
        client = redis.Redis.from_url(private_redis.url)
        with rig.service() as service:
            service.watcher.poll_once()
            wait_for(lambda: running_job(service.ctx.db), 120, "the evaluation")
            killed = int(
                client.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
            )
            assert killed >= 1
            assert service.wait_until_settled(timeout_s=SETTLE_S), rig.logs()
        client.close()
        jobs = assert_exactly_once(rig.db(), checkpoints=1)
        assert all(j.state == JobState.done for j in jobs), _rows(jobs)
        # A second concurrent run would have had to claim the job: at most one claim per lease.
        with rig.db().session() as s:
            assert (
                s.scalar(
                    select(func.count()).select_from(Evaluation).where(Evaluation.kind == "proxy")
                )
                == 1
            )
    finally:
        rig.stop_all()


# ------------------------------------------------------------------ schedulers and events


def test_two_schedulers_and_a_scheduler_restart_while_checkpoints_land(rig: Rig) -> None:
    rig.start_worker()
    first = rig.start_scheduler()
    rig.start_scheduler()
    rig.land("step-100", seed=1)
    rig.land("step-200", seed=2)
    time.sleep(3)
    first.send_signal(signal.SIGKILL)  # a scheduler dies while checkpoints keep landing
    first.wait()
    rig.land("step-300", seed=3)
    rig.start_scheduler()
    rig.land("step-400", seed=4)
    db = rig.db()

    def all_decided() -> bool:
        with db.session() as s:
            states = s.scalars(select(Checkpoint.state)).all()
        return len(states) == 4 and all(st == CheckpointState.decided for st in states)

    wait_for(all_decided, SETTLE_S, f"four decided checkpoints\n{rig.logs()}", poll_s=0.5)
    wait_for(lambda: settled(db), SETTLE_S, f"settled jobs\n{rig.logs()}", poll_s=0.5)
    jobs = assert_exactly_once(db, checkpoints=4)
    assert all(j.state == JobState.done for j in jobs), _rows(jobs)
    assert all(j.attempts == 1 for j in jobs)


def test_the_same_upload_event_delivered_ten_times_is_evaluated_once(rig: Rig) -> None:
    rig.start_worker()
    path = rig.land("step-100", seed=1)
    source = LocalDirectorySource(rig.checkpoints, quiet_period_s=1.0)
    (found,) = source.scan().ready
    source.close()
    assert found.path == path
    with rig.service() as service:
        barrier = threading.Barrier(10)

        def deliver() -> None:
            barrier.wait()
            ingest(service.ctx, found)

        threads = [threading.Thread(target=deliver) for _ in range(10)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        with service.ctx.db.session() as s:
            (job_id,) = s.scalars(select(Job.id).where(Job.kind == JobKind.proxy_eval)).all()
        for _ in range(10):  # and the request itself, ten times over the broker
            tasks.send(TASK_NAMES[JobKind.proxy_eval], job_id)
        assert service.wait_until_settled(timeout_s=SETTLE_S), rig.logs()
    jobs = assert_exactly_once(rig.db(), checkpoints=1)
    assert all(j.attempts == 1 for j in jobs)


# ------------------------------------------------------------------ the database


def test_postgresql_briefly_unreachable_jobs_retry_and_finish(
    rig_root: Path, redis_url: str
) -> None:
    server = PrivatePostgres().init().start()
    try:
        rig = next(make_rig(rig_root, redis_url, server.url))
        try:
            rig.start_worker()
            rig.land("step-100", seed=1)
            rig.land("step-200", seed=2)
            with rig.service() as service:
                service.watcher.poll_once()
                wait_for(lambda: running_job(service.ctx.db), 120, "the first evaluation")
                server.stop("immediate")
                time.sleep(3)
                server.start()
                assert service.wait_until_settled(timeout_s=SETTLE_S), rig.logs()
            jobs = assert_exactly_once(rig.db(), checkpoints=2)
            assert all(j.state == JobState.done for j in jobs), _rows(jobs)
        finally:
            rig.stop_all()
    finally:
        server.remove()


SUPERVISE_TWO_GPUS = """
from tripwire.jobs.workers import CudaProbe, Supervisor, plan_workers

two_gpus = CudaProbe(torch="2.13.0+cu128", cuda="12.8", devices=2)
specs = plan_workers("0,1", ["control"], probe=lambda: two_gpus)
raise SystemExit(Supervisor(specs).run())
"""
"""What ``tripwire worker --gpus 0,1 --queues control`` runs, on a machine that has two GPUs:
the test machines have none, and the command refuses GPUs that torch cannot see."""


def test_worker_gpus_flag_starts_one_process_per_device(rig: Rig) -> None:
    log_path = rig.root / "supervisor.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-c", SUPERVISE_TWO_GPUS],
            env=rig.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    supervisor = WorkerProcess(process, log_path)
    rig.workers.append(supervisor)
    children = wait_for(
        lambda: [
            p
            for p in supervisor.children()
            if "celery" in " ".join(p.cmdline()) and "worker" in p.cmdline()
        ],
        60,
        "two worker processes",
    )

    def mains() -> list[psutil.Process]:
        return [
            p
            for p in supervisor.children()
            if any(a.startswith("--hostname=control.gpu") for a in p.cmdline())
        ]

    wait_for(lambda: len(mains()) == 2, 60, "both GPU workers")
    names = sorted(a for p in mains() for a in p.cmdline() if a.startswith("--hostname="))
    assert names == ["--hostname=control.gpu0@%h", "--hostname=control.gpu1@%h"]
    devices = sorted(p.environ().get("CUDA_VISIBLE_DEVICES", "?") for p in mains())
    assert devices == ["0", "1"]
    assert all(p.environ().get("TRIPWIRE_DEVICE") == "cuda:0" for p in mains())
    assert children
    started = mains()
    supervisor.process.send_signal(signal.SIGTERM)
    assert supervisor.process.wait(timeout=60) == 0
    assert not any(p.is_running() and p.status() != "zombie" for p in started)
