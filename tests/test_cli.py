"""The CLI says in one line that the broker or the database is unreachable, and exits non-zero."""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tripwire.cli import app


@pytest.fixture
def dead_port() -> int:
    """A local TCP port where nothing listens."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize(
    ("args", "setting"),
    [
        (["watch", "{dir}", "--once"], "TRIPWIRE_BROKER_URL"),
        (["worker"], "TRIPWIRE_BROKER_URL"),
        (["worker", "--cpu-workers", "2"], "TRIPWIRE_BROKER_URL"),
        (["status"], "TRIPWIRE_DATABASE_URL"),
        (["watch", "{dir}", "--once"], "TRIPWIRE_DATABASE_URL"),
        (["audit", "verify"], "TRIPWIRE_DATABASE_URL"),
    ],
    ids=["watch-broker", "worker", "worker-supervisor", "status", "watch-database", "audit"],
)
def test_an_unreachable_service_is_one_line_naming_the_setting_and_host_not_the_password(
    args: list[str], setting: str, dead_port: int, tmp_path: Path
) -> None:
    env = {"TRIPWIRE_HOME": str(tmp_path / "home"), "TRIPWIRE_BROKER_URL": ""}
    if setting == "TRIPWIRE_BROKER_URL":
        env[setting] = f"redis://:s3cret@127.0.0.1:{dead_port}/0"
    else:
        env[setting] = f"postgresql+psycopg://tripwire:s3cret@127.0.0.1:{dead_port}/tripwire"
    argv = [a.replace("{dir}", str(tmp_path)) for a in args]

    result = CliRunner().invoke(app, argv, env=env)

    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2, result.output
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error: cannot reach the ")
    assert f"127.0.0.1:{dead_port}" in lines[0] and f"({setting})" in lines[0]
    assert "s3cret" not in result.output and "Traceback" not in result.output


# ---------------------------------------------------------------- README production steps

ROOT = Path(__file__).resolve().parent.parent
README_EXPORTS = {  # "Embedded and production modes"
    "TRIPWIRE_BROKER_URL": "redis://redis-host:6379/0",
    "TRIPWIRE_DATABASE_URL": "postgresql+psycopg://tripwire@pg-host/tripwire",
}
SCALING_EXPORTS = {  # "Scaling workers across machines", step 3
    "TRIPWIRE_BROKER_URL": "redis://:PASSWORD@tripwire-host:6379/0",
    "TRIPWIRE_DATABASE_URL": "postgresql+psycopg://tripwire:PASSWORD@tripwire-host/tripwire",
}


@pytest.fixture
def fresh_clone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder as a fresh clone has it after `cp .env.example .env`, as the working folder."""
    for var in list(os.environ):
        if var.startswith("TRIPWIRE_") and not var.startswith("TRIPWIRE_TEST_"):
            monkeypatch.delenv(var)
    shutil.copy(ROOT / ".env.example", tmp_path / ".env")
    shutil.copytree(ROOT / "triggers", tmp_path / "triggers")
    shutil.copytree(ROOT / "evals", tmp_path / "evals")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def one_line_or_works(argv: list[str], env: dict[str, str]) -> tuple[int, str]:
    result = CliRunner().invoke(app, argv, env=env)
    output = result.output
    assert "Traceback" not in output, output
    assert result.exception is None or isinstance(result.exception, SystemExit), output
    if result.exit_code != 0:
        lines = [line for line in output.splitlines() if line.strip()]
        assert len(lines) == 1, output
        assert lines[0].startswith("error: ")
        assert "PASSWORD" not in output
    return result.exit_code, output


@pytest.mark.parametrize(
    ("argv", "env", "works", "says"),
    [
        (["status"], {}, True, "no checkpoints yet"),
        (["db", "current"], {}, True, "head"),
        (["worker", "--queues", "control"], {}, False, "needs TRIPWIRE_BROKER_URL"),
        (["watch", "/mnt/checkpoints"], README_EXPORTS, False, "redis-host"),
        (
            ["worker", "--gpus", "auto", "--queues", "proxy,deep"],
            README_EXPORTS,
            False,
            "redis-host",
        ),
        (["worker", "--queues", "control"], README_EXPORTS, False, "redis-host"),
        (["status"], README_EXPORTS, False, "pg-host"),
        (["worker", "--gpus", "0,1,2,3", "--queues", "proxy,deep"], SCALING_EXPORTS, False, "GPU"),
        (["fetch-data", "evals/proxy.yaml"], {}, False, "TRIPWIRE_ALLOW_HUB=1"),
    ],
    ids=[
        "status",
        "db-current",
        "worker-without-broker",
        "watch",
        "worker-gpu-queues",
        "worker-control",
        "status-remote",
        "worker-gpus",
        "fetch-data-offline",
    ],
)
def test_each_readme_production_step_works_or_fails_in_one_line(
    fresh_clone: Path, argv: list[str], env: dict[str, str], works: bool, says: str
) -> None:
    code, output = one_line_or_works(argv, env)
    assert (code == 0) == works, output
    assert says in output, output


def test_compose_host_names_used_outside_compose_are_named_as_such(fresh_clone: Path) -> None:
    """The URLs the compose secrets hold name the services postgres and redis, which resolve
    only inside compose: the one line says so and what to use instead."""
    env = {"TRIPWIRE_DATABASE_URL": "postgresql+psycopg://tripwire:s3cret@postgres:5432/tripwire"}
    _, output = one_line_or_works(["status"], env)
    assert "'postgres' is a docker compose service name" in output
    assert "127.0.0.1" in output and "s3cret" not in output
    env = {"TRIPWIRE_BROKER_URL": "redis://:s3cret@redis:6379/0"}
    _, output = one_line_or_works(["worker", "--queues", "control"], env)
    assert "'redis' is a docker compose service name" in output and "s3cret" not in output
