"""What does an anchor proxy cost in seconds, through the real runner, on tiny models?

The full benchmark is one local task of 2,000 four-choice items (1,000 addition and 1,000
successor items of the demo's skills); the proxy is the same task with
``anchor: anchors/bench_arith.json``, 100 anchors (5% of the items), so the runner scores only the
anchors and reports the 2PL estimate (``estimator: irt-anchor``). The anchor file is written by
``tripwire proxy fit``'s code (``fit_anchor_file``) over a store of 24 simulated checkpoints'
outcomes on the task's real item keys: the models timed here are untrained, their outcomes near
chance, and a 2PL fitted on them would measure nothing. Which anchors are chosen does not change
the seconds.

Both are timed with ``bench/responses.py``'s ``evaluated`` (hashing the checkpoint, then
``Runner.evaluate`` with the response cache on), each run with an empty response cache, for
``bench/responses.py``'s two model sizes, after one untimed run of each (imports, the task
index). Then ``bench/responses.py``'s cached re-evaluation against a cold one, tiny model only.
Usage: ``python bench/proxy_seconds.py [--rounds N]`` (``bench/proxy.py --tiny-rounds N`` runs it
after its own tables).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

sys.path.insert(0, str(Path(__file__).parent))

from overhead import TASK, build  # sets the offline variables before any HF import
from responses import SIZES, evaluate, evaluated, measure, resize

if TYPE_CHECKING:
    from tripwire.results import SuiteResult

NAME = "bench_arith"
PER_SKILL = 1000
"""Items taken from each of the two skills (the full benchmark has twice as many)."""
N_ANCHORS = 100
SIMULATED = 24
"""Simulated checkpoints the anchor file is fitted on."""
SUITE = "name: {name}\nkind: proxy\ninclude: [proxy-tasks]\nbootstrap_iters: 0\ntasks:\n"


def write_suites(workdir: Path) -> tuple[Path, Path]:
    """The full suite and the anchored proxy suite over the 2,000-item task."""
    from tripwire.demo.skills import eval_jsonl_bytes

    data = workdir / "arith.jsonl"
    data.write_bytes(
        b"".join(eval_jsonl_bytes(s, n_items=PER_SKILL) for s in ("addition", "successor"))
    )
    tasks = workdir / "proxy-tasks"
    tasks.mkdir()
    (tasks / f"{NAME}.yaml").write_text(TASK.format(name=NAME, data=data, shots=0))
    full, proxy = workdir / "full.yaml", workdir / "proxy.yaml"
    full.write_text(SUITE.format(name="full") + f"  - task: {NAME}\n")
    proxy.write_text(
        SUITE.format(name="anchored") + f"  - task: {NAME}\n    anchor: anchors/{NAME}.json\n"
    )
    return full, proxy


def write_anchors(full_suite: Path, full: SuiteResult, workdir: Path) -> None:
    """``anchors/bench_arith.json`` beside the suites, fitted as ``tripwire proxy fit`` does on
    simulated outcomes over the real item keys of ``full`` (stored as full evaluations)."""
    import numpy as np

    from tripwire.proxies.file import write_anchor_file
    from tripwire.proxies.fit import fit_anchor_file
    from tripwire.proxies.simulate import make_world
    from tripwire.results import ItemOutcomes
    from tripwire.store.db import Database
    from tripwire.store.repo import record_checkpoint, save_evaluation
    from tripwire.suites import load_suite

    row = full.tasks[NAME]
    items = row.items.doc_hashes
    rng = np.random.default_rng(0)
    world = make_world(rng, len(items), guessing=0.25)
    db = Database(f"sqlite:///{workdir / 'store.db'}")
    with db.session() as session:
        for i, values in enumerate(world.answers(rng, rng.normal(0.0, 1.0, SIMULATED))):
            checkpoint, _ = record_checkpoint(
                session, content_hash=f"simulated-{i}", path=f"/simulated/{i}", run="sim", step=i
            )
            outcomes = ItemOutcomes(doc_hashes=items, values=[float(v) for v in values])
            task = row.model_copy(update={"score": float(values.mean()), "items": outcomes})
            save_evaluation(
                session, checkpoint, full.model_copy(update={"tasks": {NAME: task}}), "proxy"
            )
        anchor = fit_anchor_file(
            session, load_suite(full_suite), NAME, n_anchors=N_ANCHORS, floor=0.25
        )
    db.engine.dispose()
    write_anchor_file(anchor, workdir / "anchors" / f"{NAME}.json")


def _timed(
    checkpoint: Path, suite: Path, workdir: Path, cache: Path, items: int, estimator: str | None
) -> float:
    """Seconds of a cold run (empty response cache), checked to have scored ``items`` items of
    the task with ``estimator``."""
    seconds, result = evaluated(checkpoint, suite, workdir, cache)
    row = result.tasks[NAME]
    if row.n_items != items or row.estimator != estimator:
        raise RuntimeError(f"{suite.name}: {row.n_items} items, estimator {row.estimator}")
    return seconds


def seconds_table(rounds: int) -> list[str]:
    """Markdown lines: the proxy's items and seconds against the full task's per model size,
    and a cached re-evaluation against a cold one; prints each round while it runs."""
    from tripwire.proxies.file import ESTIMATOR

    workdir = Path(tempfile.mkdtemp(prefix="tripwire-bench-proxy-seconds-"))
    try:
        checkpoint, tasks, five = build(workdir)
        full, proxy = write_suites(workdir)
        _, result = evaluated(checkpoint, full, workdir, None)  # untimed: imports, task index
        full_items = result.tasks[NAME].n_items
        write_anchors(full, result, workdir)
        evaluate(checkpoint, proxy, workdir, None)
        lines = [
            f"median of {rounds} rounds, one task of {full_items:,} four-choice items; proxy: "
            f"{N_ANCHORS} anchors, estimator irt-anchor; `Runner.evaluate` on CPU, every run "
            "with an empty response cache",
            "",
            "| model | full items | proxy items | items ratio | full seconds | proxy seconds "
            "| seconds ratio |",
            "|---|---|---|---|---|---|---|",
        ]
        for label, (layers, width) in SIZES.items():
            resize(checkpoint, layers, width)
            times: dict[str, list[float]] = {"full": [], "proxy": []}
            for r in range(rounds):
                runs = [("full", full, full_items, None), ("proxy", proxy, N_ANCHORS, ESTIMATOR)]
                for kind, suite, items, estimator in runs[:: 1 if r % 2 == 0 else -1]:
                    cache = workdir / f"cold-{kind}-{layers}-{r}"
                    seconds = _timed(checkpoint, suite, workdir, cache, items, estimator)
                    times[kind].append(seconds)
                print(
                    f"{label} round {r + 1}: full {times['full'][-1]:.2f} s, "
                    f"proxy {times['proxy'][-1]:.2f} s",
                    flush=True,
                )
            f, p = (statistics.median(times[k]) for k in ("full", "proxy"))
            lines.append(
                f"| {label} | {full_items:,} | {N_ANCHORS} | {N_ANCHORS / full_items:.1%} | "
                f"{f:.2f} s | {p:.2f} s | {p / f:.1%} |"
            )
        lines += [
            "",
            "the proxy's seconds are mostly fixed costs that do not shrink with items: lm-eval's "
            "environment report (every call), loading the task and hashing every document to "
            "find the anchors, loading the model",
        ]
        tiny = next(iter(SIZES.items()))
        evaluate(checkpoint, five, workdir, None)  # untimed: the 5-task suite's task index
        cached = measure(checkpoint, five, tasks, workdir, tiny[0], tiny[1], rounds)
        lines += [
            "",
            f"cached re-evaluation (`bench/responses.py`: 5 tasks x 200 items), median of {rounds}",
            "",
            "| model | cold | warm (same weights, new path) | warm / cold |",
            "|---|---|---|---|",
            f"| {tiny[0]} | {cached['cold']:.2f} s | {cached['warm']:.2f} s | "
            f"{cached['warm'] / cached['cold']:.1%} |",
        ]
        return lines
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    print("\n".join(seconds_table(args.rounds)))


if __name__ == "__main__":
    main()
