"""Job dispatch and claim throughput, a 1,000-event burst, and checkpoint-ready-to-start latency.

Against a private Redis started for the run (``redis-server`` on a free port, data in a temporary
folder, stopped at the end: a benchmark never flushes a server it did not start), a fresh
database on this machine's PostgreSQL (dropped at the end), and a real ``tripwire worker``
process for the latency part. Each figure is printed
next to a baseline measured in the same run:

- **dispatch**: ``ensure_job`` (unique-key insert) + ``send`` (a Celery message) per job, against
  a bare ``INSERT`` and a bare Redis ``LPUSH`` of the same payload size;
- **claim**: ``claim_job`` + ``finish_job`` (two conditional UPDATEs, one transaction each),
  against a bare primary-key ``UPDATE``;
- **burst**: 1,000 checkpoint events ingested from 8 threads, then the same 1,000 again
  (duplicates): every checkpoint accounted for, time and peak memory;
- **latency**: from a checkpoint's ready marker to its proxy evaluation starting (the job's
  claim), p50 and p95 over ``--checkpoints`` landings, against a 300 s polling watcher.

Usage: ``python bench/dispatch.py [--jobs N] [--checkpoints N]``.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
import uuid
from collections.abc import Callable
from pathlib import Path

for _name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ[_name] = "1"
os.environ.setdefault("TQDM_DISABLE", "1")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402
from sqlalchemy import create_engine, func, select, text  # noqa: E402
from tests.faults.servers import PrivateRedis  # noqa: E402
from tests.helpers import write_tasks  # noqa: E402

from landing import time_landings  # noqa: E402
from tripwire.jobs import tasks  # noqa: E402
from tripwire.jobs.context import Context  # noqa: E402
from tripwire.jobs.pipeline import ingest  # noqa: E402
from tripwire.policy.schema import load_policy  # noqa: E402
from tripwire.runner import Runner  # noqa: E402
from tripwire.settings import Settings  # noqa: E402
from tripwire.sources import DiscoveredCheckpoint  # noqa: E402
from tripwire.sources.metadata import CheckpointMetadata  # noqa: E402
from tripwire.store import repo  # noqa: E402
from tripwire.store.db import Database  # noqa: E402
from tripwire.store.models import Checkpoint, Job, JobKind, utcnow  # noqa: E402

PG_ADMIN = os.environ.get(
    "TRIPWIRE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
POLICY = """\
name: bench
proxy_suite: ../evals/proxy.yaml
rules:
  - id: any-rise
    type: delta
    benchmarks: ["*"]
    threshold: 50
    mode: point
    actions:
      deep_suites: [../evals/deep.yaml]
"""
SUITE = (
    "name: {name}\nkind: {kind}\ninclude: [tiny]\nbootstrap_iters: 0\ntasks:\n  - task: tiny_add\n"
)


def rate(n: int, seconds: float) -> str:
    return f"{n / seconds:8.0f}/s"


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def workspace(root: Path) -> Path:
    write_tasks(root / "evals" / "tiny", names=("add",), n_items=40)
    (root / "evals" / "proxy.yaml").write_text(SUITE.format(name="p", kind="proxy"))
    (root / "evals" / "deep.yaml").write_text(SUITE.format(name="d", kind="deep"))
    (root / "triggers").mkdir()
    policy = root / "triggers" / "policy.yaml"
    policy.write_text(POLICY)
    return policy


def fresh_database() -> tuple[str, Callable[[], None]]:
    name = f"tripwire_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return PG_ADMIN.rsplit("/", 1)[0] + f"/{name}", drop


def discovered(i: int, run: str = "burst") -> DiscoveredCheckpoint:
    digest = f"{i:064x}"
    return DiscoveredCheckpoint(
        path=Path(f"/checkpoints/{run}/step-{i}"),
        content_hash=f"sha256:{digest}",
        run=run,
        step=i,
        metadata=CheckpointMetadata(run=run, step=i),
        weight_files=["model.safetensors"],
        total_bytes=1,
        format="safetensors",
    )


def bench_throughput(ctx: Context, client: redis.Redis, n: int) -> None:
    db = ctx.db
    with db.session() as s:
        cp, _ = repo.record_checkpoint(
            s, content_hash="sha256:" + "f" * 64, path="/x", run="t", step=0
        )
        cp_id = cp.id

    def dispatch() -> None:
        for i in range(n):
            with db.session() as s:
                job, _ = repo.ensure_job(
                    s, key=f"bench:{i}", kind=JobKind.report, checkpoint_id=cp_id
                )
                job_id = job.id
            tasks.send("tripwire.report", job_id)

    def bare_dispatch() -> None:
        payload = "x" * 600  # about a Celery message's size
        with db.engine.begin() as conn:
            conn.execute(text("CREATE TABLE IF NOT EXISTS bench_bare (k text primary key)"))
        for i in range(n):
            with db.engine.begin() as conn:
                conn.execute(text("INSERT INTO bench_bare VALUES (:k)"), {"k": f"bare:{i}"})
            client.lpush("bare", payload)

    t_ours = timed(dispatch)
    t_bare = timed(bare_dispatch)
    queued = client.llen("control")
    print(
        f"dispatch  tripwire {rate(n, t_ours)}   bare INSERT+LPUSH {rate(n, t_bare)}   "
        f"ratio {t_ours / t_bare:.2f}x time   ({queued} messages queued)"
    )
    with db.session() as s:
        ids = list(s.scalars(select(Job.id).where(Job.key.like("bench:%"))))

    def claim() -> None:
        for job_id in ids:
            with db.session() as s:
                assert repo.claim_job(s, job_id, "bench", 300, utcnow())
            with db.session() as s:
                assert repo.finish_job(s, job_id, "bench", utcnow())

    def bare_claim() -> None:
        for job_id in ids:
            with db.engine.begin() as conn:
                conn.execute(
                    text("UPDATE jobs SET attempts = attempts WHERE id = :i"), {"i": job_id}
                )
            with db.engine.begin() as conn:
                conn.execute(
                    text("UPDATE jobs SET attempts = attempts WHERE id = :i"), {"i": job_id}
                )

    t_claim = timed(claim)
    t_bare_claim = timed(bare_claim)
    print(
        f"claim     tripwire {rate(n, t_claim)}   bare UPDATE x2      {rate(n, t_bare_claim)}   "
        f"ratio {t_claim / t_bare_claim:.2f}x time"
    )
    client.delete("control", "bare")


def bench_burst(ctx: Context, client: redis.Redis, n: int = 1000, threads: int = 8) -> None:
    events = [discovered(i) for i in range(n)]

    def deliver(batch: list[DiscoveredCheckpoint]) -> None:
        for event in batch:
            ingest(ctx, event)

    def burst() -> float:
        workers = [
            threading.Thread(target=deliver, args=(events[k::threads],)) for k in range(threads)
        ]
        start = time.perf_counter()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        return time.perf_counter() - start

    tracemalloc.start()
    first = burst()
    _, peak_first = tracemalloc.get_traced_memory()
    tracemalloc.reset_peak()
    again = burst()  # the same 1,000 events delivered a second time
    _, peak_again = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    with ctx.db.session() as s:
        cps = s.scalar(
            select(func.count())
            .select_from(Checkpoint)
            .where(Checkpoint.path.like("/checkpoints/burst/%"))
        )
        jobs = s.scalar(select(func.count()).select_from(Job).where(Job.kind == JobKind.proxy_eval))
    queued = client.llen("proxy")
    ok = cps == n and jobs == n and queued == n
    print(
        f"burst     {n} events from {threads} threads in {first:.2f} s ({rate(n, first)}); "
        f"again (duplicates) in {again:.2f} s; {cps} checkpoints, {jobs} proxy jobs, "
        f"{queued} messages: {'all accounted for' if ok else 'MISMATCH'}; "
        f"peak Python memory {peak_first / 2**20:.1f} MiB / {peak_again / 2**20:.1f} MiB; "
        f"process max RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB"
    )
    client.delete("proxy")
    if not ok:
        raise SystemExit(1)


def bench_latency(
    root: Path, database_url: str, redis_url: str, policy: Path, landings: int
) -> None:
    from tripwire.jobs.service import Service

    checkpoints = root / "checkpoints"
    checkpoints.mkdir()
    home = root / "home"
    env = dict(os.environ)
    env.update(
        TRIPWIRE_BROKER_URL=redis_url,
        TRIPWIRE_DATABASE_URL=database_url,
        TRIPWIRE_POLICY=str(policy),
        TRIPWIRE_HOME=str(home),
    )
    worker = subprocess.Popen(
        [sys.executable, "-m", "tripwire.cli", "worker", "--loglevel", "WARNING"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    settings = Settings(
        home=home,
        database_url=database_url,
        broker_url=redis_url,
        policy=policy,
        quiet_period_s=30.0,
        scan_interval_s=10.0,  # file events wake the loop; the rescan is only the safety net
    )
    latencies: list[float] = []
    try:
        with Service(settings, [checkpoints]) as service:
            stop = threading.Event()
            loop = threading.Thread(target=service.watcher.run, args=(stop,))
            loop.start()
            time.sleep(1.0)
            latencies.extend(time_landings(service, checkpoints / "lat", landings))
            stop.set()
            loop.join()
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=60)
    latencies.sort()
    p50 = statistics.median(latencies)
    p95 = latencies[min(len(latencies) - 1, round(0.95 * (len(latencies) - 1)))]
    polling = 150.0  # a 300 s polling watcher waits half its interval on average
    print(
        f"latency   ready marker -> evaluation start over {len(latencies)} checkpoints: "
        f"p50 {p50:.2f} s, p95 {p95:.2f} s, max {latencies[-1]:.2f} s   "
        f"(300 s polling watcher: mean 150 s, p95 285 s; {polling / p50:.0f}x faster at p50)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--checkpoints", type=int, default=20)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="tripwire-bench-dispatch-"))
    if shutil.which("redis-server") is None:
        raise SystemExit("bench/dispatch.py starts its own Redis: install redis-server")
    server = PrivateRedis(root / "redis").start()
    redis_url = server.url
    database_url, drop = fresh_database()
    client = redis.Redis.from_url(redis_url)
    try:
        policy = workspace(root)
        tasks.configure(redis_url)
        ctx = Context(
            db=Database(database_url),
            policy=load_policy(policy),
            runner=Runner(device="cpu", batch_size=32, allow_pickle=False, cache_dir=root / "c"),
            report_dir=root / "reports",
            send=tasks.send,
            owner="bench",
        )
        print(f"private Redis on port {server.port}, PostgreSQL on this machine; {args.jobs} jobs")
        bench_throughput(ctx, client, args.jobs)
        bench_burst(ctx, client)
        ctx.db.dispose()
        drop()
        database_url, drop = fresh_database()
        client.flushdb()  # our own server
        bench_latency(root, database_url, redis_url, policy, args.checkpoints)
    finally:
        client.close()
        server.stop()
        drop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
