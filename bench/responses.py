"""What does the response cache save when the same weights are evaluated again?

For two model sizes, times the bench's 5-task proxy suite (200 four-choice items per task,
``bench/overhead.py``'s tasks) on one checkpoint three ways, each round in a fresh cache:

- ``cold``: an empty response cache (every answer computed, the model loaded);
- ``warm``: the same weights copied to a new path (the suite's stored result: no request built,
  no model load);
- ``edited``: the same weights after one of the five tasks changed (a new task version): the
  suite's result is not reused, the four unchanged tasks' answers are, one task is computed;
- ``off``: the cache turned off (``TRIPWIRE_RESPONSE_CACHE=false``), the baseline of ``cold``.

Prints median wall times, ``warm / cold`` (issue 10's target: under 5%), ``edited / cold`` and
``cold / off``
(what keeping the cache costs). The warm time is lm-eval's task building and Tripwire's result
assembly, which do not shrink with the model; the cold time grows with it.
Usage: ``python bench/responses.py [--rounds N]``.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

sys.path.insert(0, str(Path(__file__).parent))

from overhead import build  # sets the offline variables before any HF import

if TYPE_CHECKING:
    from tripwire.results import SuiteResult

SIZES = {"tiny (2 layers, 64 wide, 0.1M)": (2, 64), "small (6 layers, 384 wide, 11M)": (6, 384)}


def resize(checkpoint: Path, layers: int, width: int) -> None:
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config.from_pretrained(checkpoint)
    config.n_layer, config.n_embd, config.n_head = layers, width, max(width // 64, 1)
    torch.manual_seed(1)
    GPT2LMHeadModel(config).save_pretrained(checkpoint)


def evaluate(checkpoint: Path, suite: Path, workdir: Path, cache_root: Path | None) -> float:
    """Wall time (s) of one evaluation, from hashing the checkpoint to the suite's result."""
    return evaluated(checkpoint, suite, workdir, cache_root)[0]


def evaluated(
    checkpoint: Path, suite: Path, workdir: Path, cache_root: Path | None
) -> tuple[float, SuiteResult]:
    """``evaluate``'s wall time (s) and the result it timed."""
    from tripwire.runner import Runner
    from tripwire.runner.response_store import ResponseCache
    from tripwire.sources.hashing import HashCache
    from tripwire.sources.identity import hash_listing
    from tripwire.sources.layout import list_dir
    from tripwire.suites import load_suite

    started = time.perf_counter()
    with HashCache.in_memory() as hashes:
        content = hash_listing(list_dir(checkpoint), hashes)
    responses = ResponseCache(cache_root, 1024**3) if cache_root is not None else None
    runner = Runner(batch_size=32, cache_dir=workdir / "cache", responses=responses, progress=False)
    result = runner.evaluate(checkpoint, load_suite(suite), content_hash=content)
    return time.perf_counter() - started, result


def measure(
    checkpoint: Path,
    suite: Path,
    tasks: Path,
    workdir: Path,
    label: str,
    size: tuple[int, int],
    rounds: int,
) -> dict[str, float]:
    """Median wall times (s) of ``off``, ``cold``, ``warm`` and ``edited`` for the checkpoint
    resized to ``size`` (layers, width), each round in a fresh cache; prints every round."""
    layers, width = size
    edited_task = sorted(tasks.glob("*.yaml"))[0]
    original = edited_task.read_text()
    resize(checkpoint, layers, width)
    times: dict[str, list[float]] = {"cold": [], "warm": [], "edited": [], "off": []}
    for r in range(rounds):
        cache = workdir / f"responses-{layers}-{r}"
        times["off"].append(evaluate(checkpoint, suite, workdir, None))
        times["cold"].append(evaluate(checkpoint, suite, workdir, cache))
        copy = shutil.copytree(checkpoint, workdir / f"copy-{layers}-{r}")
        times["warm"].append(evaluate(copy, suite, workdir, cache))
        edited_task.write_text(original.replace("version: 1.0", "version: 2.0"))
        times["edited"].append(evaluate(copy, suite, workdir, cache))
        edited_task.write_text(original)
        print(
            f"{label} round {r + 1}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()),
            flush=True,
        )
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="tripwire-bench-responses-"))
    try:
        checkpoint, tasks, suite = build(workdir)
        evaluate(checkpoint, suite, workdir, None)  # imports and the task index, untimed
        rows = [
            (label, measure(checkpoint, suite, tasks, workdir, label, size, args.rounds))
            for label, size in SIZES.items()
        ]
        print("\nmedian wall time, 5 tasks x 200 items, CPU")
        print(
            f"{'model':34s} {'off':>8s} {'cold':>8s} {'warm':>8s} {'edited':>8s} "
            f"{'warm/cold':>10s} {'edited/cold':>12s} {'cold/off':>9s}"
        )
        for label, m in rows:
            print(
                f"{label:34s} {m['off']:7.2f}s {m['cold']:7.2f}s {m['warm']:7.2f}s "
                f"{m['edited']:7.2f}s {m['warm'] / m['cold']:9.1%} "
                f"{m['edited'] / m['cold']:11.1%} {m['cold'] / m['off']:9.2f}"
            )
        print("target (issue 10): warm under 5% of cold")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
