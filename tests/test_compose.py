"""docker-compose.yml is a valid Compose file with the services production needs.

There is no Docker engine on the test machines: the file is validated against the Compose
specification (check-jsonschema ships that schema; no network needed) and its structure is
checked here.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.main import get_command

from tripwire.cli import app as cli_app
from tripwire.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
TRIPWIRE_SERVICES = ("api", "scheduler", "worker-gpu", "worker-cpu", "flower")
VARIABLE = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)")
"""``${NAME}``, ``${NAME:-default}``, ``${NAME:?error}``; not ``$${NAME}`` (escaped for the
container's shell)."""


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = compose["services"]
    return found


def env_example() -> dict[str, str]:
    entries = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            entries[key.strip()] = value
    return entries


def validate(path: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec"]
    return subprocess.run([*command, str(path)], capture_output=True, text=True, check=False)


def test_the_file_validates_against_the_compose_specification() -> None:
    result = validate(COMPOSE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_validation_catches_a_misspelt_key(tmp_path: Path) -> None:
    """The check above is not vacuous: an unknown service key fails it."""
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(COMPOSE.read_text().replace("    healthcheck:", "    healthchek:", 1))
    result = validate(broken)
    assert result.returncode != 0
    assert "healthchek" in result.stdout


def test_every_service_is_there(services: dict[str, Any]) -> None:
    assert set(services) == {"redis", "postgres", *TRIPWIRE_SERVICES}


def test_redis_persists_its_queue_and_never_evicts_it(services: dict[str, Any]) -> None:
    redis = services["redis"]
    command = redis["command"]
    assert command[0] == "redis-server"
    assert command[command.index("--appendonly") + 1] == "yes"
    assert command[command.index("--maxmemory-policy") + 1] == "noeviction"
    assert any(volume.endswith(":/data") for volume in redis["volumes"])
    assert redis["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]


def test_postgres_keeps_its_data_in_a_volume(services: dict[str, Any]) -> None:
    postgres = services["postgres"]
    assert "postgres-data:/var/lib/postgresql/data" in postgres["volumes"]
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])


def test_named_volumes_are_declared(compose: dict[str, Any], services: dict[str, Any]) -> None:
    used = {
        volume.split(":", 1)[0]
        for service in services.values()
        for volume in service.get("volumes", [])
        if not volume.startswith(("/", ".", "$"))
    }
    assert used <= set(compose["volumes"])


def test_the_gpu_worker_reserves_an_nvidia_gpu(services: dict[str, Any]) -> None:
    worker = services["worker-gpu"]
    devices = worker["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "device_ids": ["0"], "capabilities": ["gpu"]}]
    assert worker["command"][:4] == ["tripwire", "worker", "--gpus", "0"]
    assert "TORCH_INDEX_URL" in worker["build"]["args"], "the GPU image needs the CUDA wheel"


def test_each_service_runs_the_right_command(services: dict[str, Any]) -> None:
    assert services["api"]["command"][:2] == ["tripwire", "serve"]
    assert services["scheduler"]["command"] == ["tripwire", "watch", "/checkpoints"]
    cpu = services["worker-cpu"]["command"]
    assert cpu[:2] == ["tripwire", "worker"]
    assert cpu[cpu.index("--queues") + 1] == "control"
    assert services["flower"]["command"][:4] == [
        "celery",
        "--app",
        "tripwire.jobs.tasks:app",
        "flower",
    ]
    commands = set(get_command(cli_app).commands)  # type: ignore[attr-defined]
    for name in TRIPWIRE_SERVICES:
        command = services[name]["command"]
        if command[0] == "tripwire":
            assert command[1] in commands, f"{name}: no `tripwire {command[1]}` command"


def test_every_service_but_the_watcher_has_a_health_check(services: dict[str, Any]) -> None:
    """The watcher has none on purpose: it exits when it stops, and a stuck one shows in the
    oldest-pending-job metric."""
    for name, service in services.items():
        if name != "scheduler":
            assert service["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL"), name


def test_tripwire_services_wait_for_healthy_redis_and_postgres(services: dict[str, Any]) -> None:
    for name in ("api", "scheduler", "worker-gpu", "worker-cpu"):
        depends = services[name]["depends_on"]
        for dependency in ("redis", "postgres"):
            assert depends[dependency]["condition"] == "service_healthy", (name, dependency)
        assert services[name]["env_file"] == ".env"


def test_the_watcher_and_the_workers_see_checkpoints_at_the_same_path(
    services: dict[str, Any],
) -> None:
    """A job names the checkpoint by the path the watcher saw; a worker must open that path."""
    for name in ("scheduler", "worker-gpu", "worker-cpu"):
        mounts = [v for v in services[name]["volumes"] if v.startswith("${TRIPWIRE_CHECKPOINT")]
        assert [m.rsplit(":", 2)[1:] for m in mounts] == [["/checkpoints", "ro"]], name


def test_every_variable_the_file_uses_is_in_env_example() -> None:
    used = set(VARIABLE.findall(COMPOSE.read_text()))
    assert used, "the pattern found no variables"
    assert not used - set(env_example()), "missing from .env.example"


def test_env_example_names_only_real_settings(compose: dict[str, Any]) -> None:
    """A misspelt TRIPWIRE_ variable would be ignored silently by the settings."""
    used = set(VARIABLE.findall(COMPOSE.read_text()))
    fields = {f"TRIPWIRE_{name.upper()}" for name in Settings.model_fields}
    for key in env_example():
        if key.startswith("TRIPWIRE_"):
            assert key in fields or key in used, f"{key} is neither a setting nor used in compose"
    assert {"TRIPWIRE_DATABASE_URL", "TRIPWIRE_BROKER_URL"} <= set(env_example())
    assert env_example()["TRIPWIRE_DATABASE_URL"].startswith("postgresql+psycopg://")
    assert env_example()["TRIPWIRE_BROKER_URL"].startswith("redis://")


def test_the_image_pins_the_same_cpu_torch_as_the_makefile() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    makefile = (ROOT / "Makefile").read_text()
    pinned = re.search(r"^TORCH_VERSION \?= (\S+)$", makefile, re.M)
    assert pinned is not None
    assert f"ARG TORCH_VERSION={pinned.group(1)}" in dockerfile
    assert "ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu" in dockerfile
    assert "docker/worker_healthcheck.py" in dockerfile
    assert (ROOT / "docker" / "worker_healthcheck.py").is_file()
