"""`tripwire worker` refuses bad flags with the allowed values, before starting anything."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from tripwire.cli import app
from tripwire.jobs.workers import plan_workers

BROKER = {"TRIPWIRE_BROKER_URL": "redis://127.0.0.1:1/0"}  # never reached: flags fail first


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--queues", "proxi,deep"], BROKER, "unknown queue proxi; allowed: proxy, deep, control"),
        (["--queues", ","], BROKER, "unknown queue (none)"),
        (["--gpus", "0,x"], BROKER, "--gpus: expected distinct device indices"),
        (["--gpus", "1,1"], BROKER, "--gpus: expected distinct device indices"),
        ([], {"TRIPWIRE_BROKER_URL": ""}, "needs TRIPWIRE_BROKER_URL"),
    ],
)
def test_bad_worker_flags_fail_with_a_reason(
    args: list[str], env: dict[str, str], message: str
) -> None:
    result = CliRunner().invoke(app, ["worker", *args], env=env)
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())


def test_one_worker_per_gpu_and_cpu_workers_without_gpus() -> None:
    gpus = plan_workers("0,3", ["proxy", "deep"])
    assert [(w.name, w.gpu) for w in gpus] == [("gpu0", "0"), ("gpu3", "3")]
    env = gpus[1].env({})
    assert env["CUDA_VISIBLE_DEVICES"] == "3" and env["TRIPWIRE_DEVICE"] == "cuda:0"
    assert "--max-tasks-per-child=1" in gpus[0].argv()
    assert "--concurrency=1" in gpus[0].argv()
    cpus = plan_workers(None, ["control"], cpu_workers=2)
    assert [(w.name, w.gpu) for w in cpus] == [("cpu0", None), ("cpu1", None)]
    assert cpus[0].env({})["CUDA_VISIBLE_DEVICES"] == ""
