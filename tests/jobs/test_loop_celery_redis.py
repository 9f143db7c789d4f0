"""The loop on real Celery worker processes over the real Redis, with the database as truth."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select

from tests.jobs.conftest import Workspace
from tripwire.jobs import tasks
from tripwire.jobs.context import TASK_NAMES
from tripwire.jobs.service import Service
from tripwire.store.models import Decision, Evaluation, Job, JobKind, JobState

pytestmark = [pytest.mark.slow, pytest.mark.redis]


def worker_env(workspace: Workspace, broker_url: str, database_url: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        TRIPWIRE_BROKER_URL=broker_url,
        TRIPWIRE_DATABASE_URL=database_url,
        TRIPWIRE_POLICY=str(workspace.settings.policy),
        TRIPWIRE_HOME=str(workspace.settings.home),
    )
    return env


@pytest.fixture
def celery_worker(
    workspace: Workspace, redis_url: str, request: pytest.FixtureRequest
) -> Iterator[subprocess.Popen[bytes]]:
    """`tripwire worker` as a subprocess (prefork pool, one child), stopped after the test."""
    database_url = getattr(request, "param", None) or workspace.settings.resolved_database_url()
    if database_url == "postgresql":
        database_url = request.getfixturevalue("database_url_pg")
    workspace.settings.broker_url = redis_url
    workspace.settings.database_url = database_url
    workspace.settings.home.mkdir(parents=True, exist_ok=True)
    log = open(workspace.root / "worker.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tripwire.cli",
            "worker",
            "--concurrency",
            "1",
            "--loglevel",
            "INFO",
        ],
        env=worker_env(workspace, redis_url, database_url),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        yield proc
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


@pytest.fixture
def database_url_pg(postgres_url: str) -> str:
    from tests.conftest import reset_postgres

    reset_postgres(postgres_url)
    return postgres_url


def _run_loop(workspace: Workspace, worker: subprocess.Popen[bytes]) -> None:
    workspace.land("step-100", seed=1)
    workspace.land("step-200", seed=2)
    workspace.land("step-300", seed=3)
    with Service(workspace.settings, [workspace.checkpoints]) as service:
        assert not service.embedded
        service.watcher.poll_once()
        with service.ctx.db.session() as s:
            proxy_jobs = s.scalars(select(Job.id).where(Job.kind == JobKind.proxy_eval)).all()
        for job_id in proxy_jobs:  # the same request delivered again, several times
            for _ in range(4):
                tasks.send(TASK_NAMES[JobKind.proxy_eval], job_id)
        settled = service.wait_until_settled(timeout_s=600)
        log = (workspace.root / "worker.log").read_text(errors="replace")
        assert settled, f"jobs did not settle; worker log:\n{log[-4000:]}"
        assert worker.poll() is None, "the worker is still running"
        with service.ctx.db.session() as s:
            assert s.scalar(select(func.count()).where(Evaluation.kind == "proxy")) == 3
            jobs = s.scalars(select(Job)).all()
            assert all(j.state == JobState.done for j in jobs), [(j.key, j.error) for j in jobs]
            assert all(j.attempts == 1 for j in jobs), "each job ran exactly once"
            fired = {
                d.checkpoint_id
                for d in s.scalars(select(Decision).where(Decision.verdict == "fired"))
            }
            deep_jobs = [j.checkpoint_id for j in jobs if j.kind == JobKind.deep_eval]
            assert sorted(deep_jobs) == sorted(fired), "one deep dispatch per fired checkpoint"
            assert s.scalar(select(func.count()).where(Evaluation.kind == "deep")) == len(fired)


def test_a_real_worker_on_redis_evaluates_each_checkpoint_once(
    workspace: Workspace, celery_worker: subprocess.Popen[bytes]
) -> None:
    _run_loop(workspace, celery_worker)


@pytest.mark.postgres
@pytest.mark.parametrize("celery_worker", ["postgresql"], indirect=True)
def test_the_same_loop_on_postgresql(
    workspace: Workspace, celery_worker: subprocess.Popen[bytes]
) -> None:
    _run_loop(workspace, celery_worker)
