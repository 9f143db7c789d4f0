"""What the hot paths cost as the store grows: 100, 1,000 and 10,000 stored checkpoints.

One store (a fresh database on this machine's PostgreSQL, dropped at the end; ``--sqlite`` for a
SQLite file) grows through the sizes. Its
checkpoints come in runs of ``--run-size`` (5 proxy tasks of 100 items each), stored and decided
through Tripwire's own functions (``repo.record_checkpoint``, ``repo.save_evaluation``,
``decide_checkpoint``), so the log, the ledger and the deep jobs are what a live store holds. At
each size it times, as medians of ``--repeat`` new checkpoints landed in the last run (after
one more as a warm-up):

- **decision**: ``decide_checkpoint`` for the new checkpoint;
- **report job**: ``write_reports`` for it (its page, its run's page, the site index);
- **status**: one page of ``tripwire status`` (the default 100 checkpoints), rendered;
- **audit verify**: ``verify_chain`` (reads the whole log: linear by design);
- **backtest**: ``run_backtest`` of the last run, and of every run (linear by design);
- **idle rescan**: one scan of a watched root of ``--folders`` checkpoint folders (10 files
  each) in which nothing changed.

Each figure is printed with its ratio to the 100-checkpoint figure. Then, with the largest store
present, the ready-to-start latency: a watcher (with its embedded worker) over that root, a new
checkpoint folder renamed in place and its ready marker written, until its proxy evaluation is
claimed; p50 and p95 over ``--landings``.

Usage: ``python bench/growth.py [--sizes 100,1000,10000] [--run-size 100] [--folders 1000]``
(the default sizes, 100 and 1,000, take about 3 minutes; 10,000 about 10 more).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

for _name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ[_name] = "1"
os.environ.setdefault("TQDM_DISABLE", "1")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from rich.console import Console  # noqa: E402
from sqlalchemy import create_engine, func, select, text, update  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402
from tests.helpers import make_checkpoint, write_tasks  # noqa: E402

from landing import time_landings  # noqa: E402
from tripwire.audit import verify_chain  # noqa: E402
from tripwire.decisions import decide_checkpoint  # noqa: E402
from tripwire.history import run_backtest  # noqa: E402
from tripwire.policy.schema import LoadedPolicy, load_policy  # noqa: E402
from tripwire.reports.build import write_reports  # noqa: E402
from tripwire.results import ItemOutcomes, SuiteResult, TaskResult, Versions  # noqa: E402
from tripwire.settings import Settings  # noqa: E402
from tripwire.sources import LocalDirectorySource  # noqa: E402
from tripwire.status import render_tables, status_snapshot  # noqa: E402
from tripwire.store import repo  # noqa: E402
from tripwire.store.db import Database  # noqa: E402
from tripwire.store.models import Checkpoint, Job, JobState, utcnow  # noqa: E402

TASKS = ("t0", "t1", "t2", "t3", "t4")
ITEMS = 100
START = datetime(2026, 1, 1, tzinfo=UTC)
POLICY = """\
name: growth
proxy_suite: proxy.yaml
rules:
  - id: rise-5
    type: delta
    benchmarks: [t0, t1, t2, t3, t4]
    threshold: 5
    mode: point
    actions: {deep_suites: [deep.yaml]}
  - id: flop-backstop
    type: compute
    above_flop: 5.0e24
    actions: {notify: [safety-team]}
"""
LIVE_POLICY = """\
name: live
proxy_suite: ../evals/proxy.yaml
rules:
  - id: any-rise
    type: delta
    benchmarks: ["*"]
    threshold: 50
    mode: point
"""
LIVE_SUITE = (
    "name: p\nkind: proxy\ninclude: [tiny]\nbootstrap_iters: 0\ntasks:\n  - task: tiny_add\n"
)


def growth_policy(folder: Path) -> LoadedPolicy:
    tasks = "".join(f"  - {{task: {t}, limit: {ITEMS}}}\n" for t in TASKS)
    (folder / "proxy.yaml").write_text(f"name: p\nkind: proxy\ntasks:\n{tasks}")
    (folder / "deep.yaml").write_text("name: d\nkind: deep\ntasks:\n  - task: w\n")
    (folder / "policy.yaml").write_text(POLICY)
    return load_policy(folder / "policy.yaml")


def suite_result(policy: LoadedPolicy, step: int, seed: int) -> SuiteResult:
    """Accuracy rising slowly with the step (a rule fires now and then), 3% of answers flipped."""
    rng = np.random.default_rng(seed)
    difficulty = np.random.default_rng(0).permutation(ITEMS) / ITEMS
    accuracy = 0.3 + 0.4 * (step % 1000) / 1000
    tasks = {}
    for t in TASKS:
        values = ((difficulty < accuracy) ^ (rng.random(ITEMS) < 0.03)).astype(float)
        tasks[t] = TaskResult(
            task=t,
            metric="acc",
            score=float(values.mean()),
            stderr=None,
            n_items=ITEMS,
            num_fewshot=0,
            items=ItemOutcomes(doc_hashes=[f"{t}-{i}" for i in range(ITEMS)], values=list(values)),
        )
    return SuiteResult(
        suite_name="p",
        suite_hash=policy.proxy_suite.content_hash,
        model_path="/m",
        tasks=tasks,
        versions=Versions(lm_eval="x", transformers="y", torch="z", tripwire="w"),
        started_at=START,
        duration_s=1.0,
    )


def land(session: Session, policy: LoadedPolicy, index: int, run_size: int) -> Checkpoint:
    """Checkpoint number ``index`` (run ``index // run_size``), stored with its evaluation."""
    run, step = f"run-{index // run_size:04d}", 100 * (index % run_size + 1)
    cp, _ = repo.record_checkpoint(
        session,
        content_hash=f"sha256:{index:064x}",
        path=f"/ck/{run}/step-{step}",
        run=run,
        step=step,
        training_flop=1e20 * (index % run_size + 1),
    )
    repo.save_evaluation(session, cp, suite_result(policy, step, index), "proxy")
    return cp


def decide(session: Session, policy: LoadedPolicy, checkpoint: Checkpoint) -> None:
    assert decide_checkpoint(session, policy, checkpoint, START + timedelta(days=1)) is not None


def grow(db: Database, policy: LoadedPolicy, to: int, run_size: int) -> None:
    """Land and decide checkpoints until ``to`` are stored: one transaction a run (the live
    loop commits each step on its own; the rows are the same)."""
    with db.session() as s:
        have = (
            s.scalar(
                select(func.count(Checkpoint.id)).where(~Checkpoint.path.startswith("/ck/probe-"))
            )
            or 0
        )
    while have < to:
        end = min(to, (have // run_size + 1) * run_size)
        with db.session() as s:
            for index in range(have, end):
                decide(s, policy, land(s, policy, index, run_size))
        have = end


def fresh_postgres() -> tuple[str, Callable[[], None]]:
    """A new database on this machine's PostgreSQL, and how to drop it."""
    admin_url = os.environ.get(
        "TRIPWIRE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
    )
    name = f"tripwire_bench_growth_{uuid.uuid4().hex[:8]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
        # a throwaway store: commits need not wait for the disk (seeding 10,000 checkpoints)
        conn.execute(text(f'ALTER DATABASE "{name}" SET synchronous_commit = off'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return admin_url.rsplit("/", 1)[0] + f"/{name}", drop


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(
    db: Database, policy: LoadedPolicy, size: int, run_size: int, repeat: int, out: Path
) -> dict[str, float]:
    """The figures at ``size`` stored checkpoints (the ``repeat`` probes are added to the last
    run, then left in the store)."""
    figures: dict[str, list[float]] = {"decision": [], "report job": []}
    with db.session() as s:
        last = s.scalars(select(Checkpoint).order_by(Checkpoint.id.desc()).limit(1)).one()
        run_name = last.run.name
    for k in range(-1, repeat):  # the first is a warm-up (templates, caches), not counted
        index = 10_000_000 + size + k
        with db.session() as s:  # a probe in the last run, after its checkpoints
            cp, _ = repo.record_checkpoint(
                s,
                content_hash=f"sha256:{index:064x}",
                path=f"/ck/probe-{index}",
                run=run_name,
                step=index,
            )
            repo.save_evaluation(s, cp, suite_result(policy, size + k, index), "proxy")
            probe = cp.id
        with db.session() as s:
            checkpoint = s.get(Checkpoint, probe)
            assert checkpoint is not None
            took = timed(lambda: decide(s, policy, checkpoint))  # noqa: B023
        if k >= 0:
            figures["decision"].append(took)
        with db.session() as s:
            took = timed(lambda: write_reports(s, probe, out))  # noqa: B023
        if k >= 0:
            figures["report job"].append(took)

    def status_page() -> None:
        with db.session() as s:
            snapshot = status_snapshot(s)
        console = Console(file=io.StringIO(), width=160)
        for table in render_tables(snapshot, "bench"):
            console.print(table)

    once = {
        "status": status_page,
        "audit verify": lambda: _in_session(db, verify_chain),
        "backtest (one run)": lambda: _in_session(db, lambda s: run_backtest(s, policy, run_name)),
        "backtest (every run)": lambda: _in_session(db, lambda s: run_backtest(s, policy)),
    }
    for name, fn in once.items():
        fn()  # a warm-up, not counted
        figures[name] = [timed(fn) for _ in range(repeat)]
    return {name: statistics.median(values) for name, values in figures.items()}


def _in_session(db: Database, fn: Callable[[object], object]) -> None:
    with db.session() as s:
        fn(s)


def watched_root(root: Path, folders: int) -> Path:
    """``folders`` checkpoint folders of one tiny model (hard links, one content): what a
    watcher rescans, with nothing new in it."""
    template = make_checkpoint(root / "template", seed=7)
    base = root / "watched"
    for i in range(folders):
        folder = base / f"run-{i // 100:02d}" / f"step-{i}"
        folder.mkdir(parents=True)
        for f in template.iterdir():
            os.link(f, folder / f.name)
    old = time.time() - 3600
    for dirpath, dirnames, filenames in os.walk(base):
        for name in [*dirnames, *filenames]:
            os.utime(Path(dirpath, name), (old, old))
    os.utime(base, (old, old))
    return base


def idle_rescan(base: Path) -> tuple[float, float]:
    """(first scan, median idle rescan) of ``base``, in seconds of CPU."""
    with LocalDirectorySource(base, quiet_period_s=30.0) as source:
        start = time.process_time()
        source.scan()
        first = time.process_time() - start
        idle = []
        for _ in range(5):
            start = time.process_time()
            source.scan()
            idle.append(time.process_time() - start)
    return first, statistics.median(idle)


def latency(root: Path, base: Path, database_url: str, landings: int) -> list[float]:
    """Ready marker to proxy evaluation claimed, for ``landings`` new checkpoints under ``base``:
    a watcher in this process, a ``tripwire worker`` process, a private Redis between them."""
    from tests.faults.servers import PrivateRedis

    from tripwire.jobs import tasks
    from tripwire.jobs.service import Service

    if shutil.which("redis-server") is None:
        raise SystemExit("bench/growth.py starts its own Redis: install redis-server")
    write_tasks(root / "evals" / "tiny", names=("add",), n_items=40)
    (root / "evals" / "proxy.yaml").write_text(LIVE_SUITE)
    (root / "triggers").mkdir(exist_ok=True)
    policy = root / "triggers" / "live.yaml"
    policy.write_text(LIVE_POLICY)
    with Database(database_url).session() as s:  # the seeded deep jobs name no real folder
        s.execute(
            update(Job)
            .where(Job.state.in_([JobState.pending, JobState.running]))
            .values(state=JobState.done, finished_at=utcnow())
        )
    server = PrivateRedis(root / "redis").start()
    tasks.configure(server.url)
    env = {
        **os.environ,
        "TRIPWIRE_BROKER_URL": server.url,
        "TRIPWIRE_DATABASE_URL": database_url,
        "TRIPWIRE_POLICY": str(policy),
        "TRIPWIRE_HOME": str(root / "home"),
    }
    worker = subprocess.Popen(
        [sys.executable, "-m", "tripwire.cli", "worker", "--loglevel", "WARNING"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    settings = Settings(
        _env_file=None,
        home=root / "home",
        database_url=database_url,
        broker_url=server.url,
        policy=policy,
        quiet_period_s=30.0,
        scan_interval_s=10.0,  # file events wake the loop; the rescan is only the safety net
    )
    (base / "lat").mkdir()
    out: list[float] = []
    try:
        with Service(settings, [base]) as service:
            stop = threading.Event()
            scans: list[object] = []
            loop = threading.Thread(
                target=service.watcher.run, args=(stop,), kwargs={"on_scan": scans.append}
            )
            loop.start()
            # The first scan takes the root's folders (one content at 1,000 paths: a location
            # each); landings start once a later scan has finished and all is settled.
            while len(scans) < 2:
                time.sleep(0.1)
            service.wait_until_settled(timeout_s=600)
            # into a run folder the watcher already watches
            out.extend(time_landings(service, base / "lat", landings))
            stop.set()
            loop.join()
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=60)
        server.stop()
    return sorted(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--sizes", default="100,1000", help="Stored checkpoints, ascending (10000: ~10 min more)."
    )
    parser.add_argument("--run-size", type=int, default=100, help="Checkpoints per run.")
    parser.add_argument("--repeat", type=int, default=3, help="Probes per figure (median).")
    parser.add_argument("--folders", type=int, default=1000, help="Folders in the watched root.")
    parser.add_argument("--landings", type=int, default=10, help="Checkpoints for the latency.")
    parser.add_argument(
        "--sqlite",
        action="store_true",
        help="A SQLite file, not a fresh database on this machine's PostgreSQL (dropped after).",
    )
    parser.add_argument("--json", type=Path, help="Also write the figures here.")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    root = Path(tempfile.mkdtemp(prefix="tripwire-bench-growth-"))
    url, drop = (f"sqlite:///{root / 'tripwire.db'}", None) if args.sqlite else fresh_postgres()
    db = Database(url)
    try:
        policy = growth_policy(root)
        results: dict[int, dict[str, float]] = {}
        for size in sizes:
            started = time.perf_counter()
            grow(db, policy, size, args.run_size)
            seeded = time.perf_counter() - started
            results[size] = measure(db, policy, size, args.run_size, args.repeat, root / "r")
            print(f"{size:>6} checkpoints stored (seeded in {seeded:.0f} s)", flush=True)
        base = watched_root(root, args.folders)
        first, idle = idle_rescan(base)
        print_table(sizes, results)
        print(
            f"\nidle rescan of {args.folders} folders ({10 * args.folders} files): first scan "
            f"{first:.2f} s CPU, then {1000 * idle:.1f} ms CPU a scan"
        )
        lat = latency(root, base, url, args.landings)
        p95 = lat[min(len(lat) - 1, round(0.95 * (len(lat) - 1)))]
        print(
            f"ready -> start with {sizes[-1]} checkpoints stored and {args.folders} folders "
            f"watched, over {len(lat)} landings: p50 {statistics.median(lat):.2f} s, "
            f"p95 {p95:.2f} s (target < 0.5 s)"
        )
        if args.json:
            args.json.write_text(
                json.dumps({"sizes": results, "idle_rescan_s": idle, "latency_s": lat}, indent=2)
            )
    finally:
        db.dispose()
        if drop is not None:
            drop()
        shutil.rmtree(root, ignore_errors=True)


def print_table(sizes: list[int], results: dict[int, dict[str, float]]) -> None:
    names = list(results[sizes[0]])
    print(f"\n{'median seconds (ratio to ' + str(sizes[0]) + ')':<28}", end="")
    for size in sizes:
        print(f"{size:>22}", end="")
    print()
    for name in names:
        print(f"{name:<28}", end="")
        base = results[sizes[0]][name]
        for size in sizes:
            value = results[size][name]
            print(f"{value:>12.4f} ({value / base:5.1f}x)", end="")
        print()


if __name__ == "__main__":
    main()
