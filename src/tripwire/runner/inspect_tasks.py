"""Inspect tasks as a deep suite: ``python -m tripwire.runner.inspect_tasks CHECKPOINT RESULT``.

Run by the command contract (``tripwire.runner.command``), in a process of its own so that the
suite's time limit can stop it whole: it scores the checkpoint with Inspect's Hugging Face
provider (``hf/local`` with the checkpoint's path; remote code never trusted), keeps Inspect's
logs under the log folder it is given, and writes the contract's JSON: per task the first
scorer's first metric, its ``stderr`` metric when Inspect reports one, and every sample's score
as a float (Inspect's ``value_to_float``: C/I, yes/no, numbers), keyed by the sample id.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any


def _task_spec(spec: str, suite_dir: Path) -> str:
    """A ``file.py@name`` spec relative to the suite's folder, or a registered task name."""
    file, _, name = spec.partition("@")
    if file.endswith(".py"):
        path = (suite_dir / file).resolve()
        return f"{path}@{name}" if name else str(path)
    return spec


def _score_of(log: Any, task: str) -> dict[str, Any]:
    from inspect_ai.scorer import value_to_float

    if log.status != "success":
        error = getattr(log.error, "message", None) or log.status
        raise SystemExit(f"inspect task {task} ended {log.status}: {error}")
    results = log.results
    if results is None or not results.scores:
        raise SystemExit(f"inspect task {task} reported no scores")
    scorer = results.scores[0]
    metrics = {name: metric.value for name, metric in scorer.metrics.items()}
    metric = next((m for m in metrics if m != "stderr"), None)
    if metric is None:
        raise SystemExit(f"inspect task {task}: scorer {scorer.name} reported no metric")
    to_float = value_to_float()
    ids: list[str] = []
    values: list[float] = []
    for sample in log.samples or []:
        score = (sample.scores or {}).get(scorer.name)
        if score is None:
            continue
        ids.append(
            f"{sample.id}:{sample.epoch}" if sample.epoch and sample.epoch > 1 else str(sample.id)
        )
        values.append(float(to_float(score.value)))
    return {
        "score": float(metrics[metric]),
        "stderr": float(metrics["stderr"]) if "stderr" in metrics else None,
        "n_items": len(values),
        "metric": f"{scorer.name}/{metric}",
        "higher_is_better": True,
        "items": {"ids": ids, "values": values},
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("result", type=Path)
    parser.add_argument("--suite", type=Path, required=True)
    parser.add_argument("--log-dir", type=Path, required=True)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)

    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        os.environ.setdefault(name, "1")
    from inspect_ai import eval as inspect_eval

    from tripwire.suites import load_suite

    suite = load_suite(args.suite)
    spec = suite.suite.inspect
    assert spec is not None
    model_args: dict[str, Any] = {
        **spec.model_args,
        "model_path": str(args.checkpoint),
        "device": args.device,
        "trust_remote_code": False,
    }
    args.log_dir.mkdir(parents=True, exist_ok=True)
    tasks: dict[str, Any] = {}
    logs: list[str] = []
    for entry in suite.suite.tasks:
        (log,) = inspect_eval(
            _task_spec(entry.task, suite.path.parent),
            model="hf/local",
            model_args=model_args,
            log_dir=str(args.log_dir),
            limit=spec.limit,
            max_tokens=spec.max_tokens,
            seed=suite.suite.seed,
            display="none",
        )
        logs.append(str(log.location))
        tasks[entry.task] = _score_of(log, entry.task)
    args.result.write_text(json.dumps({"tasks": tasks, "logs": logs}))


if __name__ == "__main__":
    try:
        main()
    except SystemExit as stop:
        if isinstance(stop.code, str):
            print(stop.code, file=sys.stderr)
            raise SystemExit(2) from None
        raise
