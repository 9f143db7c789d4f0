"""`tripwire worker` refuses bad flags with the allowed values, before starting anything."""

from __future__ import annotations

import os

import pytest
from typer.testing import CliRunner

from tripwire.cli import app
from tripwire.errors import DeviceError
from tripwire.jobs.workers import CudaProbe, node_name, plan_workers

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


CUDA = CudaProbe(torch="2.13.0+cu128", cuda="12.8", devices=4)


def test_one_worker_per_gpu_and_cpu_workers_without_gpus() -> None:
    gpus = plan_workers("0,3", ["proxy", "deep"], probe=lambda: CUDA)
    assert [(w.name, w.gpu) for w in gpus] == [("gpu0", "0"), ("gpu3", "3")]
    env = gpus[1].env({})
    assert env["CUDA_VISIBLE_DEVICES"] == "3" and env["TRIPWIRE_DEVICE"] == "cuda:0"
    assert "--max-tasks-per-child=1" in gpus[0].argv()
    assert "--concurrency=1" in gpus[0].argv()
    cpus = plan_workers(None, ["control"], cpu_workers=2)
    assert [(w.name, w.gpu) for w in cpus] == [("cpu0", None), ("cpu1", None)]
    assert cpus[0].env({})["CUDA_VISIBLE_DEVICES"] == ""


def test_worker_node_names_are_unique_on_a_host_and_say_queues_and_gpu() -> None:
    """Two workers named celery@HOST look like one node to `celery inspect` and Flower."""
    gpus = plan_workers("0,1", ["proxy", "deep"], probe=lambda: CUDA)
    assert [w.node_name() for w in gpus] == ["proxy-deep.gpu0@%h", "proxy-deep.gpu1@%h"]
    assert "--hostname=proxy-deep.gpu0@%h" in gpus[0].argv()
    cpus = plan_workers(None, ["control"], cpu_workers=2)
    pid = os.getpid()
    assert [w.node_name() for w in cpus] == [f"control.cpu0-{pid}@%h", f"control.cpu1-{pid}@%h"]
    named = plan_workers("0", ["proxy"], hostname="trainer-a@gpu-host", probe=lambda: CUDA)
    assert named[0].node_name() == "trainer-a.gpu0@gpu-host"
    assert node_name(["proxy", "deep"], "4242") == "proxy-deep.4242@%h"
    assert node_name(["control"], "", "ctl") == "ctl@%h"


@pytest.mark.parametrize(
    ("probe", "message"),
    [
        (CudaProbe("2.13.0+cpu", None, 0), "CPU-only build"),
        (CudaProbe("2.13.0+cu128", "12.8", 0), "sees no GPU"),
        (CudaProbe("2.13.0+cu128", "12.8", 1), "has 1 GPU(s) (indices 0 to 0); no device 3"),
        (CudaProbe(None, None, 0, "No module named 'torch'"), "torch cannot be imported"),
    ],
)
def test_gpus_that_torch_cannot_use_are_an_error_naming_the_fix(
    probe: CudaProbe, message: str
) -> None:
    with pytest.raises(DeviceError, match="--gpus 0,3") as raised:
        plan_workers("0,3", ["proxy"], probe=lambda: probe)
    assert message in str(raised.value)
    fix = "nvidia-smi" if "no device" in message else "run CPU workers instead (leave out --gpus"
    assert fix in str(raised.value)


def test_worker_gpus_on_this_machine_without_cuda_is_one_line_naming_the_fix() -> None:
    """The real probe (torch in a child process): the test machines have CPU torch only."""
    result = CliRunner().invoke(app, ["worker", "--gpus", "0"], env=BROKER)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and lines[0].startswith("error: --gpus 0: ")
    assert "CPU-only build" in lines[0] or "sees no GPU" in lines[0]
    assert "Traceback" not in result.output
