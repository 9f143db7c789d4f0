"""Private Redis and PostgreSQL servers for tests that kill, wipe or restart them.

The machine's own services are left as they are: each server here runs on a free port with its
data in the test's temporary folder, and is stopped at the end.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

PG_BIN = next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin"))), None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), 0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on port {port} after {timeout_s} s")


class PrivateRedis:
    """``redis-server`` on a free port, keeping nothing on disk (a restart wipes it)."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> PrivateRedis:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                shutil.which("redis-server") or "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port)
        return self

    def kill(self) -> None:
        """SIGKILL: the server and everything in it are gone."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        self.kill()


class PrivatePostgres:
    """A PostgreSQL cluster of its own (initdb as the ``postgres`` user) on a free port.

    Its folder is a fresh one under the system temp folder, not pytest's: the ``postgres`` user
    must be able to reach it.
    """

    def __init__(self) -> None:
        if PG_BIN is None:
            raise RuntimeError("PostgreSQL server binaries not found under /usr/lib/postgresql")
        self.workdir = Path(tempfile.mkdtemp(prefix="tripwire-pg-"))
        self.datadir = self.workdir / "pgdata"
        self.port = free_port()

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _as_postgres(self, *argv: str) -> None:
        cmd = [str(a) for a in argv]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def init(self) -> PrivatePostgres:
        if os.geteuid() == 0:
            shutil.chown(self.workdir, "postgres", "postgres")
        assert PG_BIN is not None
        self._as_postgres(
            str(PG_BIN / "initdb"), "-D", str(self.datadir), "-A", "trust", "-U", "postgres"
        )
        return self

    def start(self) -> PrivatePostgres:
        assert PG_BIN is not None
        self._as_postgres(
            str(PG_BIN / "pg_ctl"),
            "-D",
            str(self.datadir),
            "-o",
            f"-p {self.port} -k {self.workdir} -c listen_addresses=127.0.0.1 -c fsync=off",
            "-l",
            str(self.workdir / "postgres.log"),
            "-w",
            "start",
        )
        wait_for_port(self.port)
        return self

    def stop(self, mode: str = "fast") -> None:
        assert PG_BIN is not None
        if (self.datadir / "postmaster.pid").exists():
            self._as_postgres(
                str(PG_BIN / "pg_ctl"), "-D", str(self.datadir), "-m", mode, "-w", "stop"
            )

    def remove(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.workdir, ignore_errors=True)
