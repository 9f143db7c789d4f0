"""What does a watcher's first scan after a restart cost over a root that is already recorded?

A root holds ``--folders`` checkpoint folders (one tiny checkpoint copied to every path: each
path a recorded location), all taken by a first watcher. Then new watchers, as after a restart,
scan it once each, two ways in alternating order, ``--rounds`` times:

- ``batched``: the watcher as shipped (recorded folders recognised in a few batched reads);
- ``ingest``: the same watcher with that recognition turned off (every folder through
  ``ingest``, one transaction each: the behaviour before).

Prints median seconds and the ratio. SQLite by default; ``--database-url`` for PostgreSQL.
Usage: ``python bench/restart.py [--folders 1000] [--rounds 3] [--database-url URL]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

for _name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ[_name] = "1"
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

POLICY = """\
name: bench
proxy_suite: ../evals/proxy.yaml
rules:
  - id: any-rise
    type: delta
    benchmarks: ["*"]
    threshold: 0.01
"""
PROXY = "name: p\nkind: proxy\ninclude: [tiny]\nbootstrap_iters: 0\ntasks:\n  - task: tiny_add\n"


def main() -> None:
    from tests.helpers import make_checkpoint, write_tasks

    from tripwire.jobs import watch
    from tripwire.jobs.context import context_from_settings
    from tripwire.jobs.watch import Watcher
    from tripwire.settings import Settings
    from tripwire.sources import LocalDirectorySource

    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--folders", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="tripwire-bench-restart-"))
    try:
        write_tasks(root / "evals" / "tiny", names=("add",), n_items=10)
        (root / "evals" / "proxy.yaml").write_text(PROXY)
        (root / "triggers").mkdir()
        (root / "triggers" / "policy.yaml").write_text(POLICY)
        one = make_checkpoint(root / "one", seed=1)
        base = root / "checkpoints"
        for i in range(args.folders):
            shutil.copytree(
                one, base / f"run-{i // 100}" / f"step-{i % 100}", copy_function=os.link
            )
        settings = Settings(
            _env_file=None,
            home=root / "home",
            database_url=args.database_url or f"sqlite:///{root / 'home' / 'tripwire.db'}",
            policy=root / "triggers" / "policy.yaml",
        )
        ctx = context_from_settings(settings, lambda *_a, **_k: None)
        shipped = watch.already_ingested

        def first_scan() -> float:
            with LocalDirectorySource(base, quiet_period_s=30.0, hash_cache=ctx.hash_cache) as src:
                started = time.perf_counter()
                Watcher(ctx, [src]).scan_once()
                return time.perf_counter() - started

        taken = first_scan()
        print(f"first watcher, taking {args.folders} folders: {taken:.2f} s", flush=True)
        ways = {
            "batched": shipped,
            "ingest": lambda _ctx, _found: set(),
        }
        times: dict[str, list[float]] = {k: [] for k in ways}
        names = list(ways)
        for r in range(args.rounds):
            for name in names[r % 2 :] + names[: r % 2]:
                watch.already_ingested = ways[name]  # type: ignore[assignment]
                times[name].append(first_scan())
                print(f"round {r + 1} {name:8s} {times[name][-1]:6.2f} s", flush=True)
        watch.already_ingested = shipped
        batched, ingest = (statistics.median(times[k]) for k in ("batched", "ingest"))
        print(f"\nrestart, first scan of {args.folders} recorded folders (median of {args.rounds})")
        for label, value in (("batched recognition", batched), ("ingest every folder", ingest)):
            per = 1000 * value / args.folders
            print(f"  {label} {value:6.2f} s ({per:.2f} ms a folder)")
        print(f"  ingest / batched = {ingest / batched:.1f}x")
        ctx.db.dispose()
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
