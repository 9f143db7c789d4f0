"""The CLI says in one line that the broker or the database is unreachable, and exits non-zero."""

from __future__ import annotations

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
