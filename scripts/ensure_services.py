"""Start the local Redis and PostgreSQL that the tests use, if they are down.

``make test`` runs this first. Under ``CI=true`` a service that cannot be started is an error;
elsewhere the tests that need it skip with a message naming it.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

SERVICES = {
    "redis": (
        "127.0.0.1",
        6379,
        [
            "redis-server",
            "--daemonize",
            "yes",
            "--bind",
            "127.0.0.1",
            "-::1",
            "--port",
            "6379",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            "/var/lib/redis",
            "--logfile",
            "/var/log/redis/ci.log",
        ],
    ),
    "postgresql": ("127.0.0.1", 5432, None),
}


def is_up(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def start(name: str, command: list[str] | None) -> None:
    if name == "postgresql":
        versions = sorted(os.listdir("/etc/postgresql")) if Path("/etc/postgresql").is_dir() else []
        if not versions or shutil.which("pg_ctlcluster") is None:
            return
        command = ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main", "start"]
    if command is None or shutil.which(command[0]) is None:
        return
    subprocess.run(command, check=False, capture_output=True, timeout=60)


def ensure_chromium() -> None:
    """The report-page tests drive Debian's Chromium; install it if missing (best effort)."""
    if shutil.which("chromium") or shutil.which("chromium-browser"):
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        print(
            "chromium is not installed: the browser tests will be skipped "
            "(apt-get install chromium)",
            flush=True,
        )
        return
    print("chromium is not installed; installing Debian's package", flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    done = subprocess.run(
        ["apt-get", "install", "-y", "--no-install-recommends", "chromium"],
        check=False,
        capture_output=True,
        timeout=900,
        env=env,
    )
    if done.returncode != 0:
        print("could not install chromium: the browser tests will be skipped", flush=True)


def main() -> int:
    ci = os.environ.get("CI", "").lower() == "true"
    ensure_chromium()
    missing = []
    for name, (host, port, command) in SERVICES.items():
        if is_up(host, port):
            continue
        print(f"{name} is down on {host}:{port}; starting it", flush=True)
        start(name, command)
        for _ in range(30):
            if is_up(host, port):
                break
            time.sleep(0.5)
        else:
            missing.append(name)
    for name in missing:
        print(
            f"{name} could not be started: tests that need it will "
            f"{'fail (CI=true)' if ci else 'be skipped'}",
            flush=True,
        )
    return 1 if (ci and missing) else 0


if __name__ == "__main__":
    sys.exit(main())
