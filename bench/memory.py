"""Peak memory of a 5-shot MMLU-format suite by batch size, on a tiny model built here.

The model has a tiny body (GPT-2, 2 layers, 64 wide) but a real vocabulary (32,000 tokens) and a
1,024-token context, so lm-eval's float32 logits dominate memory as they do for real models.
Items are made up (one subject, 5 dev and 64 test rows of about 120 characters: 5-shot prompts of
about 1,000 tokens with the character tokenizer) and imported with ``tripwire data import``'s
code into a temporary store. Each batch size runs in its own process; prints peak RSS.

Usage: ``python bench/memory.py [--batch-sizes 32,8,1]``. Figures: docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

FILLER = "12 34 56 78 90 " * 8


def build(root: Path) -> None:
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from tripwire.benchmarks import DataStore, import_benchmark
    from tripwire.demo.train import build_tokenizer

    tokenizer = build_tokenizer(model_max_length_tokens=1024)
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=32000,
        n_positions=1024,
        n_embd=64,
        n_layer=2,
        n_head=2,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    GPT2LMHeadModel(config).save_pretrained(root / "ckpt")
    tokenizer.save_pretrained(root / "ckpt")
    rng = random.Random(0)
    for folder, n in (("dev", 5), ("test", 64)):
        (root / "csv" / "data" / folder).mkdir(parents=True, exist_ok=True)
        with (root / "csv" / "data" / folder / f"anatomy_{folder}.csv").open("w", newline="") as fh:
            writer = csv.writer(fh)
            for k in range(n):
                writer.writerow([f"{FILLER}{k}?", "1", "2", "3", "4", "ABCD"[rng.randrange(4)]])
    import_benchmark("mmlu", root / "csv", DataStore(root / "data"), now=datetime.now(UTC))
    (root / "s.yaml").write_text(
        "name: m\nkind: proxy\ntasks:\n  - task: mmlu_anatomy\n    num_fewshot: 5\n"
    )


def measure(root: Path, batch_size: int) -> None:
    from tripwire.runner import Runner
    from tripwire.suites import load_suite

    runner = Runner(
        batch_size=batch_size, data_dir=root / "data", cache_dir=root / "cache", progress=False
    )
    t0 = time.perf_counter()
    result = runner.evaluate(root / "ckpt", load_suite(root / "s.yaml")).tasks["mmlu_anatomy"]
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"batch {batch_size:>3}: peak RSS {peak_mb:,.0f} MB, {time.perf_counter() - t0:.0f} s, "
        f"{result.n_items} items, prompts of {len(result.items.texts[0][0])} characters"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch-sizes", default="32,8,1")
    parser.add_argument("--root", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    from tripwire.offline import enforce_offline

    enforce_offline()  # before datasets or transformers are imported
    if args.one is not None:
        measure(args.root, args.one)
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        env = {**os.environ, "TRIPWIRE_HOME": str(root / "home")}
        os.environ.update(env)
        build(root)
        for size in (int(s) for s in args.batch_sizes.split(",")):
            command = [sys.executable, __file__, "--root", str(root), "--one", str(size)]
            subprocess.run(command, env=env, check=True)


if __name__ == "__main__":
    main()
