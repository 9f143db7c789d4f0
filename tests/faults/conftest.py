"""A rig for fault injection: real worker processes, a real broker, short leases, slow evals.

Evaluations here use a wider model and a few hundred items, so they last long enough to be
interrupted; leases, heartbeats and re-sends are a few seconds so that recovery is quick.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest
from sqlalchemy import func, select
from tests.helpers import make_checkpoint, write_tasks
from tests.jobs.conftest import POLICY

from tripwire.jobs.service import Service
from tripwire.settings import Settings
from tripwire.store.db import Database
from tripwire.store.models import Checkpoint, Decision, Evaluation, Job, JobKind, JobState

PROXY = """\
name: slow-proxy
kind: proxy
include: [tiny]
bootstrap_iters: 0
tasks:
  - task: tiny_add
"""
DEEP = """\
name: slow-deep
kind: deep
include: [tiny]
bootstrap_iters: 0
tasks:
  - task: tiny_add
    limit: 50
"""
TIMEOUTS = {
    "TRIPWIRE_LEASE_S": "4",
    "TRIPWIRE_HEARTBEAT_S": "1",
    "TRIPWIRE_RESEND_AFTER_S": "3",
    "TRIPWIRE_MAX_ATTEMPTS": "3",
    "TRIPWIRE_RETRY_BACKOFF_S": "1",
}


@dataclass
class WorkerProcess:
    """A ``tripwire worker`` subprocess (prefork, one pool child per task)."""

    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def children(self) -> list[psutil.Process]:
        try:
            return psutil.Process(self.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill_main(self) -> None:
        os.kill(self.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=20)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)  # orphaned pool children too
        self.process.wait()


@dataclass
class Rig:
    root: Path
    checkpoints: Path
    broker_url: str
    database_url: str
    workers: list[WorkerProcess] = field(default_factory=list)
    scheduler_procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def policy(self) -> Path:
        return self.root / "triggers" / "policy.yaml"

    def env(self, **overrides: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(TIMEOUTS)
        env.update(
            TRIPWIRE_BROKER_URL=self.broker_url,
            TRIPWIRE_DATABASE_URL=self.database_url,
            TRIPWIRE_POLICY=str(self.policy),
            TRIPWIRE_HOME=str(self.root / "home"),
            TRIPWIRE_QUIET_PERIOD_S="1",
            TRIPWIRE_SCAN_INTERVAL_S="0.5",
            TQDM_DISABLE="1",
        )
        env.update(overrides)
        return env

    def settings(self) -> Settings:
        return Settings(
            home=self.root / "home",
            database_url=self.database_url,
            broker_url=self.broker_url,
            policy=self.policy,
            quiet_period_s=1.0,
            scan_interval_s=0.5,
            lease_s=float(TIMEOUTS["TRIPWIRE_LEASE_S"]),
            heartbeat_s=float(TIMEOUTS["TRIPWIRE_HEARTBEAT_S"]),
            resend_after_s=float(TIMEOUTS["TRIPWIRE_RESEND_AFTER_S"]),
            max_attempts=int(TIMEOUTS["TRIPWIRE_MAX_ATTEMPTS"]),
            retry_backoff_s=float(TIMEOUTS["TRIPWIRE_RETRY_BACKOFF_S"]),
        )

    def service(self) -> Service:
        return Service(self.settings(), [self.checkpoints])

    def start_worker(self, *args: str, **env: str) -> WorkerProcess:
        log_path = self.root / f"worker-{len(self.workers)}.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "tripwire.cli", "worker", "--loglevel", "INFO", *args],
                env=self.env(**env),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        worker = WorkerProcess(proc, log_path)
        self.workers.append(worker)
        return worker

    def start_scheduler(self) -> subprocess.Popen[bytes]:
        """``tripwire watch`` on the checkpoints folder, as its own process."""
        log_path = self.root / f"scheduler-{len(self.scheduler_procs)}.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "tripwire.cli", "watch", str(self.checkpoints)],
                env=self.env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.scheduler_procs.append(proc)
        return proc

    def land(self, name: str, seed: int, run: str = "run-a") -> Path:
        """A trainer writes a checkpoint: temp folder, atomic rename, ready marker last."""
        tmp = self.checkpoints / run / f".tmp-{name}"
        make_checkpoint(tmp, seed=seed, ready=False, n_embd=128, n_layer=2)
        final = self.checkpoints / run / name
        tmp.rename(final)
        (final / "READY").touch()
        return final

    def db(self) -> Database:
        return Database(self.database_url)

    def logs(self) -> str:
        parts = [dump_jobs(self.db())]
        parts += [f"--- {w.log_path.name}\n{w.log()[-3000:]}" for w in self.workers]
        for path in sorted(self.root.glob("scheduler-*.log")):
            parts.append(f"--- {path.name}\n{path.read_text(errors='replace')[-3000:]}")
        return "\n".join(parts)

    def stop_all(self) -> None:
        for proc in self.scheduler_procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        for worker in self.workers:
            worker.stop()


def dump_jobs(db: Database) -> str:
    """The job table, for failure messages."""
    try:
        with db.session() as s:
            rows = s.scalars(select(Job).order_by(Job.id)).all()
            return "\n".join(
                f"job {j.id} {j.kind.value} cp={j.checkpoint_id} {j.state.value} "
                f"attempts={j.attempts}/{j.max_attempts} lease={j.lease_until} "
                f"sent={j.enqueued_at} error={(j.error or '')[:200]!r}"
                for j in rows
            )
    except Exception as exc:  # the database may be the thing that is down
        return f"(jobs unavailable: {exc})"


def wait_for(predicate: Callable[[], Any], timeout_s: float, what: str, poll_s: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except Exception:  # a server being restarted: look again
            value = None
        if value:
            return value
        time.sleep(poll_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def running_job(db: Database, kind: JobKind = JobKind.proxy_eval) -> Job | None:
    with db.session() as s:
        return s.scalars(
            select(Job).where(Job.kind == kind, Job.state == JobState.running).limit(1)
        ).first()


def settled(db: Database) -> bool:
    with db.session() as s:
        open_jobs = s.scalar(
            select(func.count()).where(Job.state.in_([JobState.pending, JobState.running]))
        )
        return open_jobs == 0 and (s.scalar(select(func.count()).select_from(Job)) or 0) > 0


def assert_exactly_once(db: Database, checkpoints: int) -> list[Job]:
    """Every checkpoint evaluated once (or failed with a reason); one dispatch per firing."""
    with db.session() as s:
        cps = s.scalars(select(Checkpoint)).all()
        assert len(cps) == checkpoints, [c.path for c in cps]
        jobs = list(s.scalars(select(Job)))
        for job in jobs:
            assert job.state in (JobState.done, JobState.failed), (job.key, job.state, job.error)
            if job.state == JobState.failed:
                assert job.error, f"job {job.key} failed without a reason"
        for cp in cps:
            proxy = s.scalar(
                select(func.count()).where(
                    Evaluation.checkpoint_id == cp.id, Evaluation.kind == "proxy"
                )
            )
            proxy_job = next(
                j for j in jobs if j.checkpoint_id == cp.id and j.kind == JobKind.proxy_eval
            )
            assert proxy == (1 if proxy_job.state == JobState.done else 0), cp.path
        proxy_keys = [j.key for j in jobs if j.kind == JobKind.proxy_eval]
        assert len(proxy_keys) == len(set(proxy_keys)) == checkpoints
        fired = [
            d.checkpoint_id for d in s.scalars(select(Decision).where(Decision.verdict == "fired"))
        ]
        assert len(fired) == len(set(fired)), "one firing per checkpoint (one rule)"
        deep_jobs = [j for j in jobs if j.kind == JobKind.deep_eval]
        assert sorted(j.checkpoint_id for j in deep_jobs) == sorted(fired)
        deep_done = sum(j.state == JobState.done for j in deep_jobs)
        deep_evals = s.scalar(select(func.count()).where(Evaluation.kind == "deep"))
        assert deep_evals == deep_done
        return jobs


@pytest.fixture
def rig_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for var in list(os.environ):
        if var.startswith("TRIPWIRE_") and not var.startswith("TRIPWIRE_TEST_"):
            monkeypatch.delenv(var, raising=False)
    write_tasks(tmp_path / "evals" / "tiny", names=("add",), n_items=500)
    (tmp_path / "evals" / "proxy.yaml").write_text(PROXY)
    (tmp_path / "evals" / "deep.yaml").write_text(DEEP)
    (tmp_path / "triggers").mkdir()
    (tmp_path / "triggers" / "policy.yaml").write_text(POLICY)
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "home").mkdir()
    return tmp_path


def make_rig(root: Path, broker_url: str, database_url: str) -> Iterator[Rig]:
    rig = Rig(root, root / "checkpoints", broker_url, database_url)
    try:
        yield rig
    finally:
        rig.stop_all()
