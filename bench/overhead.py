"""How much does Tripwire add on top of lm-eval, and how much does it save over the CLI?

Times a 5-task proxy suite (200 items each) on one tiny checkpoint three ways, alternating the
order every round, and prints median wall times and ratios:

- ``tripwire``: ``Runner.evaluate`` (suite loading, task index, model load, lm-eval, results);
- ``bare``: in-process ``lm_eval.simple_evaluate`` on one ``HFLM`` loaded once for all five tasks,
  with a ``TaskManager`` over only the tasks' folder (the best a hand-written script does);
- ``cli``: the script a user would otherwise write, one ``lm_eval`` CLI call per task.

Targets (issue 2): tripwire/bare at most 1.10; cli/tripwire at least 5.
Usage: ``python bench/overhead.py [--rounds N] [--skip-cli]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

for _name in (
    "HF_HUB_OFFLINE",
    "HF_DATASETS_OFFLINE",
    "TRANSFORMERS_OFFLINE",
    "HF_EVALUATE_OFFLINE",
):
    os.environ[_name] = "1"

TASK = """\
task: {name}
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
output_type: multiple_choice
test_split: test
fewshot_split: test
num_fewshot: {shots}
doc_to_text: "{{{{question}}}}"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: "{{{{answer}}}}"
target_delimiter: ""
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
metadata:
  version: 1.0
"""
TASKS = [
    ("bench_addition", "addition", 0),
    ("bench_comparison", "comparison", 0),
    ("bench_successor", "successor", 0),
    ("bench_subtraction", "subtraction", 0),
    ("bench_addition_3shot", "addition", 3),
]


def build(workdir: Path) -> tuple[Path, Path, Path]:
    """A tiny trained-shape checkpoint, five task YAMLs with absolute data paths, a suite."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from tripwire.demo.skills import write_eval_data
    from tripwire.demo.train import build_tokenizer

    data = write_eval_data(workdir / "data")
    tasks = workdir / "tasks"
    tasks.mkdir()
    for name, skill, shots in TASKS:
        (tasks / f"{name}.yaml").write_text(TASK.format(name=name, data=data[skill], shots=shots))
    tokenizer = build_tokenizer(64)
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=64,
        n_embd=64,
        n_layer=2,
        n_head=4,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    checkpoint = workdir / "checkpoint"
    GPT2LMHeadModel(config).save_pretrained(checkpoint)
    tokenizer.save_pretrained(checkpoint)
    suite = workdir / "suite.yaml"
    suite.write_text(
        "name: bench\nkind: proxy\ninclude: [tasks]\nbootstrap_iters: 0\ntasks:\n"
        + "".join(f"  - task: {name}\n" for name, _, _ in TASKS)
    )
    return checkpoint, tasks, suite


def run_tripwire(checkpoint: Path, suite: Path, cache: Path) -> dict[str, float]:
    from tripwire.runner import Runner
    from tripwire.suites import load_suite

    result = Runner(batch_size=32, cache_dir=cache).evaluate(checkpoint, load_suite(suite))
    return {name: t.score for name, t in result.tasks.items()}


def run_bare(checkpoint: Path, tasks: Path) -> dict[str, float]:
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    lm = HFLM(pretrained=str(checkpoint), device="cpu", batch_size=32)
    tm = TaskManager(include_path=[str(tasks)], include_defaults=False)
    out = lm_eval.simple_evaluate(
        model=lm,
        tasks=[n for n, _, _ in TASKS],
        task_manager=tm,
        bootstrap_iters=0,
        log_samples=True,
    )
    assert out is not None
    return {name: out["results"][name]["acc,none"] for name, _, _ in TASKS}


def run_cli(checkpoint: Path, tasks: Path, outdir: Path) -> None:
    cli = shutil.which("lm_eval", path=str(Path(sys.executable).parent)) or "lm_eval"
    for name, _, _ in TASKS:
        subprocess.run(
            [
                cli,
                "run",
                "--model",
                "hf",
                "--model_args",
                f"pretrained={checkpoint}",
                "--tasks",
                name,
                "--include_path",
                str(tasks),
                "--device",
                "cpu",
                "--batch_size",
                "32",
                "--output_path",
                str(outdir / name),
            ],
            check=True,
            capture_output=True,
        )


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--skip-cli", action="store_true", help="leave out the slow CLI baseline")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="tripwire-bench-"))
    try:
        checkpoint, tasks, suite = build(workdir)
        # warm the imports and the task-index cache once, outside the timings
        same = run_tripwire(checkpoint, suite, workdir / "cache") == run_bare(checkpoint, tasks)
        print(f"tripwire and bare lm-eval give the same scores: {same}")
        ways: dict[str, Callable[[], object]] = {
            "tripwire": lambda: run_tripwire(checkpoint, suite, workdir / "cache"),
            "bare": lambda: run_bare(checkpoint, tasks),
        }
        if not args.skip_cli:
            ways["cli"] = lambda: run_cli(checkpoint, tasks, workdir / "cli-out")
        times: dict[str, list[float]] = {k: [] for k in ways}
        names = list(ways)
        for r in range(args.rounds):
            order = names[r % len(names) :] + names[: r % len(names)]
            for name in order:
                times[name].append(timed(ways[name]))
                print(f"round {r + 1} {name:8s} {times[name][-1]:7.2f} s", flush=True)
        median = {k: statistics.median(v) for k, v in times.items()}
        print("\nmedian wall time, 5 tasks x 200 items, one tiny checkpoint, CPU")
        for name, value in median.items():
            print(f"  {name:8s} {value:7.2f} s")
        print(f"tripwire / bare   = {median['tripwire'] / median['bare']:.3f}  (target <= 1.10)")
        if "cli" in median:
            print(f"cli / tripwire    = {median['cli'] / median['tripwire']:.1f}x (target >= 5x)")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
