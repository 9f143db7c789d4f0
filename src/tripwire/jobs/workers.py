"""``tripwire worker``: Celery worker processes, one per GPU, supervised.

Each GPU gets its own worker process with ``CUDA_VISIBLE_DEVICES`` set to that one device, a
prefork pool of concurrency 1 and a fresh pool child per task (``--max-tasks-per-child 1``), so
an evaluation never inherits another's CUDA context or fragmented memory, and an OOM kill takes
down only the child. This supervising process never imports torch, so CUDA is never
initialised in it. On a machine with no GPU, the same layout runs on the CPU.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import FrameType

from tripwire.errors import DeviceError
from tripwire.jobs.celery_config import worker_argv

log = logging.getLogger(__name__)

CELERY_APP = "tripwire.jobs.tasks:app"


@dataclass(frozen=True)
class WorkerSpec:
    """One worker process to run."""

    name: str
    """What the process is for on this host (``gpu0``, ``cpu1``)."""
    queues: tuple[str, ...]
    gpu: str | None
    """The device index made visible to the process, or None for a CPU worker."""
    loglevel: str = "INFO"
    node: str = ""
    """Celery node name, unique on the host (``proxy-deep.gpu0@%h``); default from the above."""

    def node_name(self) -> str:
        return self.node or node_name(self.queues, self.name)

    def argv(self) -> list[str]:
        celery = [sys.executable, "-m", "celery", f"--app={CELERY_APP}"]
        return celery + worker_argv(
            self.queues, 1, "prefork", self.loglevel, hostname=self.node_name()
        )

    def env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        env = dict(os.environ if base is None else base)
        if self.gpu is None:
            env["CUDA_VISIBLE_DEVICES"] = ""
            env["TRIPWIRE_DEVICE"] = "cpu"
        else:
            env["CUDA_VISIBLE_DEVICES"] = self.gpu
            env["TRIPWIRE_DEVICE"] = "cuda:0"  # the one visible device
        return env


def detect_gpus() -> list[str]:
    """GPU indices from ``nvidia-smi`` (without importing torch); empty when there is none."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        out = subprocess.run(
            [smi, "--query-gpu=index", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout
    except (subprocess.SubprocessError, OSError):
        return []
    return [line.strip() for line in out.splitlines() if line.strip()]


def node_name(queues: Sequence[str], label: str, hostname: str | None = None) -> str:
    """A Celery node name that no other worker on the host has: ``proxy-deep.gpu0@%h``.

    Two workers with one name (Celery's default is ``celery@HOST`` for all) make ``celery
    inspect`` and Flower see one node. ``hostname`` (``--hostname``) replaces the default
    ``<queues>@%h``; ``label`` (``gpu0``, ``cpu1-<pid>``) goes before its ``@``.
    """
    base = hostname or f"{'-'.join(queues)}@%h"
    name, at, host = base.partition("@")
    if not at:
        host = "%h"
    return f"{name}.{label}@{host}" if label else f"{name}@{host}"


@dataclass(frozen=True)
class CudaProbe:
    """What torch sees in a fresh process (the supervisor never imports torch itself)."""

    torch: str | None
    """torch's version, or None when it cannot be imported."""
    cuda: str | None
    """The CUDA version torch was built with; None for a CPU-only build."""
    devices: int
    """GPUs torch can use (0 without a driver, or in a container without GPU access)."""
    error: str = ""


PROBE = (
    "import json, torch\n"
    "n = torch.cuda.device_count() if torch.version.cuda else 0\n"
    "print(json.dumps({'torch': torch.__version__, 'cuda': torch.version.cuda, 'devices': n}))"
)


def probe_cuda() -> CudaProbe:
    """Ask a child Python process what CUDA torch sees (a few seconds: it imports torch)."""
    try:
        done = subprocess.run(
            [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=300, check=False
        )
        found = json.loads(done.stdout.strip().splitlines()[-1])
        return CudaProbe(found["torch"], found["cuda"], int(found["devices"]))
    except (subprocess.SubprocessError, OSError, ValueError, IndexError, KeyError) as exc:
        return CudaProbe(None, None, 0, error=str(exc))


def check_cuda(devices: Sequence[str], asked: str, probe: CudaProbe) -> None:
    """Raise ``DeviceError`` naming the fix unless torch can use every device in ``devices``."""
    cpu_instead = "or run CPU workers instead (leave out --gpus; --cpu-workers N for several)"
    if probe.torch is None:
        raise DeviceError(
            f"{asked}: torch cannot be imported in this environment ({probe.error or 'no output'})"
            f"; install Tripwire's dependencies, {cpu_instead}"
        )
    if probe.cuda is None:
        raise DeviceError(
            f"{asked}: this torch ({probe.torch}) is a CPU-only build, so the workers would "
            "evaluate on the CPU. Install the CUDA build (pip install torch --index-url "
            "https://download.pytorch.org/whl/cu128, picking the cuXXX that matches the "
            "driver; the compose file's worker-gpu image does this through "
            f"TRIPWIRE_TORCH_GPU_INDEX_URL), {cpu_instead}"
        )
    if probe.devices == 0:
        raise DeviceError(
            f"{asked}: torch {probe.torch} (CUDA {probe.cuda}) sees no GPU: no NVIDIA driver, or "
            "a container started without GPU access (the NVIDIA Container Toolkit and the "
            f"service's deploy.resources.reservations.devices); fix that, {cpu_instead}"
        )
    missing = [d for d in devices if int(d) >= probe.devices]
    if missing:
        raise DeviceError(
            f"{asked}: this machine has {probe.devices} GPU(s) (indices 0 to "
            f"{probe.devices - 1}); no device {', '.join(missing)}. List the indices nvidia-smi "
            "shows, or use --gpus auto"
        )


def plan_workers(
    gpus: str | None,
    queues: Sequence[str],
    cpu_workers: int = 1,
    loglevel: str = "INFO",
    *,
    hostname: str | None = None,
    probe: Callable[[], CudaProbe] = probe_cuda,
) -> list[WorkerSpec]:
    """The worker processes for ``--gpus`` (``0,1``, ``auto`` or None for CPU workers).

    GPUs that torch cannot use are a ``DeviceError`` naming the fix (``probe`` asks torch, in a
    child process), never a silent fall-back to the CPU. ``hostname``: ``--hostname``.
    """
    devices: list[str]
    if gpus is None or gpus.strip() in ("", "none"):
        devices = []
    elif gpus.strip() == "auto":
        devices = detect_gpus()  # none: CPU workers (the command says so once it starts them)
    else:
        devices = [g.strip() for g in gpus.split(",") if g.strip()]
        bad = [g for g in devices if not g.isdigit()]
        if bad or len(set(devices)) != len(devices):
            raise ValueError(
                f"--gpus: expected distinct device indices such as 0,1 or 'auto'; got {gpus!r}"
            )
    if devices:
        check_cuda(devices, f"--gpus {gpus}", probe())
        return [
            WorkerSpec(
                f"gpu{g}", tuple(queues), g, loglevel, node_name(queues, f"gpu{g}", hostname)
            )
            for g in devices
        ]
    pid = os.getpid()  # two supervisors on one host must not share CPU node names
    return [
        WorkerSpec(
            f"cpu{i}", tuple(queues), None, loglevel, node_name(queues, f"cpu{i}-{pid}", hostname)
        )
        for i in range(cpu_workers)
    ]


@dataclass
class _Running:
    spec: WorkerSpec
    process: subprocess.Popen[bytes]
    restarts: list[float] = field(default_factory=list)


class Supervisor:
    """Starts the worker processes, restarts one that dies, stops them all on SIGTERM/SIGINT.

    A worker that dies more than ``max_restarts`` times in ``window_s`` is left down and the
    supervisor exits non-zero, so a broken host shows up rather than crash-looping forever.
    """

    def __init__(
        self,
        specs: Sequence[WorkerSpec],
        *,
        max_restarts: int = 5,
        window_s: float = 300.0,
        shutdown_grace_s: float = 60.0,
    ) -> None:
        self.specs = list(specs)
        self.max_restarts = max_restarts
        self.window_s = window_s
        self.shutdown_grace_s = shutdown_grace_s
        self._running: list[_Running] = []
        self._stopping = False

    def _start(self, spec: WorkerSpec) -> subprocess.Popen[bytes]:
        log.info("starting worker %s (gpu %s) on queues %s", spec.name, spec.gpu, spec.queues)
        return subprocess.Popen(spec.argv(), env=spec.env())

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self._stopping = True

    def run(self) -> int:
        previous = {
            sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)
        }
        try:
            self._running = [_Running(s, self._start(s)) for s in self.specs]
            while not self._stopping:
                time.sleep(0.5)
                for worker in self._running:
                    code = worker.process.poll()
                    if code is None or self._stopping:
                        continue
                    now = time.monotonic()
                    worker.restarts = [t for t in worker.restarts if now - t < self.window_s]
                    if len(worker.restarts) >= self.max_restarts:
                        log.error(
                            "worker %s died %d times in %.0f s; giving up",
                            worker.spec.name,
                            len(worker.restarts) + 1,
                            self.window_s,
                        )
                        self._stopping = True
                        self.stop()
                        return 1
                    log.warning("worker %s exited with %s; restarting", worker.spec.name, code)
                    worker.restarts.append(now)
                    worker.process = self._start(worker.spec)
            self.stop()
            return 0
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def stop(self) -> None:
        """Warm shutdown: SIGTERM lets a running task finish; SIGKILL after the grace period."""
        for worker in self._running:
            if worker.process.poll() is None:
                worker.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.shutdown_grace_s
        for worker in self._running:
            try:
                worker.process.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                worker.process.kill()
                worker.process.wait()

    @property
    def pids(self) -> list[int]:
        return [w.process.pid for w in self._running]
