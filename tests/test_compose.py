"""docker-compose.yml is a valid Compose file with the services production needs.

There is no Docker engine on the test machines: the file is validated against the Compose
specification (check-jsonschema ships that schema; no network needed) and its structure is
checked here.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.main import get_command

from tests.faults.servers import free_port, wait_for_port
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


def test_redis_persists_its_queue_never_evicts_it_and_has_a_memory_limit(
    services: dict[str, Any],
) -> None:
    redis = services["redis"]
    script = " ".join(redis["command"])
    assert redis["command"][:2] == ["sh", "-c"]
    assert "exec redis-server -" in script, "redis-server is PID 1's child, config on stdin"
    for option in ("--appendonly yes", "--maxmemory-policy noeviction", "--maxmemory ${"):
        assert option in script, option
    assert any(volume.endswith(":/data") for volume in redis["volumes"])


def test_the_redis_password_comes_from_a_secret_and_is_on_no_command_line(
    services: dict[str, Any],
) -> None:
    redis = services["redis"]
    assert redis["secrets"] == ["redis_password"]
    script = " ".join(redis["command"])
    assert "requirepass $$(cat /run/secrets/redis_password)" in script
    assert "--requirepass" not in script


def test_the_redis_health_check_authenticates_and_needs_a_pong(services: dict[str, Any]) -> None:
    """``redis-cli ping`` exits 0 on a refused password: the check must read the answer."""
    test = services["redis"]["healthcheck"]["test"]
    assert test[0] == "CMD-SHELL"
    assert 'REDISCLI_AUTH="$$(cat /run/secrets/redis_password)"' in test[1]
    assert "grep -qx PONG" in test[1]


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")
def test_the_redis_command_and_health_check_work_on_a_real_redis(tmp_path: Path) -> None:
    """The compose command and health check, run by sh against a private redis-server: the
    password from the file is required, a wrong one fails the check, maxmemory is set."""
    compose = yaml.safe_load(COMPOSE.read_text())["services"]["redis"]
    secret = tmp_path / "redis_password"
    secret.write_text("0123abcd\n")
    port = free_port()

    def shell(text: str) -> str:
        text = text.replace("$$", "$").replace("/run/secrets/redis_password", str(secret))
        return re.sub(r"\$\{TRIPWIRE_REDIS_MAXMEMORY:-([^}]*)\}", r"\1", text)

    script = shell(compose["command"][2]).replace(
        "exec redis-server -", f"exec redis-server - --port {port} --dir {tmp_path} --save ''"
    )
    server = subprocess.Popen(["sh", "-c", script], cwd=tmp_path)
    try:
        wait_for_port(port)
        check = shell(compose["healthcheck"]["test"][1]).replace(
            "redis-cli", f"redis-cli -p {port}"
        )
        assert subprocess.run(["sh", "-c", check], check=False).returncode == 0
        wrong = check.replace(f"$(cat {secret})", "wrong")
        assert subprocess.run(["sh", "-c", wrong], check=False).returncode != 0
        maxmemory = subprocess.run(
            [
                "redis-cli",
                "-p",
                str(port),
                "--no-auth-warning",
                "-a",
                "0123abcd",
                "config",
                "get",
                "maxmemory",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        assert maxmemory == ["maxmemory", str(1024**3)]
        cmdline = subprocess.run(
            ["ps", "-o", "args=", "-p", str(server.pid)], capture_output=True, text=True
        ).stdout
        assert "0123abcd" not in cmdline
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_postgres_keeps_its_data_in_a_volume_and_reads_its_password_from_a_secret(
    services: dict[str, Any],
) -> None:
    postgres = services["postgres"]
    assert "postgres-data:/var/lib/postgresql/data" in postgres["volumes"]
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    assert postgres["environment"]["POSTGRES_PASSWORD_FILE"] == "/run/secrets/postgres_password"
    assert "POSTGRES_PASSWORD" not in postgres["environment"]
    assert postgres["secrets"] == ["postgres_password"]


def test_secrets_are_files_and_each_service_gets_only_the_ones_it_needs(
    compose: dict[str, Any], services: dict[str, Any]
) -> None:
    declared = compose["secrets"]
    assert all(set(entry) == {"file"} for entry in declared.values())
    assert all(entry["file"].startswith("./secrets/") for entry in declared.values())
    urls = {"tripwire_database_url", "tripwire_broker_url", "ledger_key"}
    wanted = {
        "redis": {"redis_password"},
        "postgres": {"postgres_password"},
        "api": urls | {"tripwire_secret_key", "tripwire_webhook_secret"},
        "scheduler": urls,
        "worker-gpu": urls,
        "worker-cpu": urls,
        "flower": {"tripwire_broker_url", "flower_basic_auth"},
    }
    for name, service in services.items():
        assert "env_file" not in service, f"{name}: no env file handed to every container"
        assert set(service.get("secrets", [])) == wanted[name], name
        for key, value in (service.get("environment") or {}).items():
            assert "PASSWORD" not in key or key.endswith("_FILE"), (name, key)
            assert "://" not in str(value), (name, key, "a URL in the environment")


def test_env_example_holds_no_password_or_placeholder() -> None:
    """Passwords are generated into ./secrets; a copied .env has nothing to forget to change."""
    text = (ROOT / ".env.example").read_text()
    assert "change-me" not in text
    assert not [
        k for k in env_example() if "PASSWORD" in k or k.endswith(("DATABASE_URL", "BROKER_URL"))
    ]
    assert not [value for value in env_example().values() if "@" in value]


def test_make_secrets_writes_consistent_secrets_once(tmp_path: Path) -> None:
    folder = tmp_path / "secrets"
    run = [sys.executable, str(ROOT / "docker" / "make_secrets.py"), "--dir", str(folder)]
    assert subprocess.run(run, cwd=tmp_path, capture_output=True, check=False).returncode == 0
    names = set(yaml.safe_load(COMPOSE.read_text())["secrets"])
    assert {p.name for p in folder.iterdir()} == names
    assert folder.stat().st_mode & 0o777 == 0o700
    values = {p.name: p.read_text().strip() for p in folder.iterdir()}
    pg, rd = values["postgres_password"], values["redis_password"]
    assert len(pg) == len(rd) == 48 and pg != rd
    assert values["tripwire_database_url"] == (
        f"postgresql+psycopg://tripwire:{pg}@postgres:5432/tripwire"
    )
    assert values["tripwire_broker_url"] == f"redis://:{rd}@redis:6379/0"
    assert re.fullmatch(r"admin:[0-9a-f]{48}", values["flower_basic_auth"])
    subprocess.run(run, cwd=tmp_path, capture_output=True, check=True)  # again: nothing changes
    assert {p.name: p.read_text().strip() for p in folder.iterdir()} == values
    remote = subprocess.run([*run, "--host", "tripwire-host"], cwd=tmp_path, check=True)
    assert remote.returncode == 0
    assert (folder / "tripwire_broker_url").read_text().strip() == (
        f"redis://:{rd}@tripwire-host:6379/0"
    )


def test_tripwire_reads_its_urls_from_secret_files(tmp_path: Path) -> None:
    """What compose mounts at /run/secrets: a file per setting, read when the environment does
    not set it."""
    (tmp_path / "tripwire_database_url").write_text("postgresql+psycopg://u:p@postgres/t\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIPWIRE_")}
    env["TRIPWIRE_SECRETS_DIR"] = str(tmp_path)
    code = "from tripwire.settings import Settings; print(Settings().resolved_database_url())"
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    assert out.stdout.strip() == "postgresql+psycopg://u:p@postgres/t", out.stderr
    env["TRIPWIRE_DATABASE_URL"] = "sqlite:///x.db"  # the environment wins
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    assert out.stdout.strip() == "sqlite:///x.db", out.stderr


def test_every_tripwire_process_runs_under_an_init(services: dict[str, Any]) -> None:
    """As PID 1 a process ignores SIGTERM unless it handles it, and reaps no orphans."""
    for name in (*TRIPWIRE_SERVICES, "redis"):
        assert services[name]["init"] is True, name


def test_the_workers_share_a_hugging_face_cache_at_hf_home(
    compose: dict[str, Any], services: dict[str, Any]
) -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    home = re.search(r"HF_HOME=(\S+)", dockerfile)
    assert home is not None
    for name in ("worker-gpu", "worker-cpu"):
        assert f"hf-cache:{home.group(1)}" in services[name]["volumes"], name
    assert "hf-cache" in compose["volumes"]
    assert "tripwire fetch-data" in COMPOSE.read_text(), "the file says how to fill it"
    assert "fetch-data" in set(get_command(cli_app).commands)  # type: ignore[attr-defined]


def test_the_image_leaves_hub_access_to_tripwire_allow_hub() -> None:
    """HF_*_OFFLINE set in the image's ENV could not be undone by TRIPWIRE_ALLOW_HUB=1."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert not re.search(r"^\s*(ENV\s+)?\S*_OFFLINE=", dockerfile, re.M)
    code = (
        "import os; from tripwire.offline import enforce_offline; enforce_offline(); "
        "print(os.environ['HF_HUB_OFFLINE'], os.environ['HF_DATASETS_OFFLINE'])"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIPWIRE_")}
    env |= {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    allowed = subprocess.run(
        [sys.executable, "-c", code],
        env={**env, "TRIPWIRE_ALLOW_HUB": "1"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert allowed.stdout.split() == ["0", "0"]
    env.pop("HF_HUB_OFFLINE")
    env.pop("HF_DATASETS_OFFLINE")
    offline = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert offline.stdout.split() == ["1", "1"]


def test_flower_is_on_this_machine_only_and_asks_for_a_password(services: dict[str, Any]) -> None:
    flower = services["flower"]
    assert flower["ports"] == ["127.0.0.1:${TRIPWIRE_FLOWER_PORT:-5555}:5555"]
    assert "--conf=/app/docker/flowerconfig.py" in flower["command"]
    config = (ROOT / "docker" / "flowerconfig.py").read_text()
    assert "basic_auth = [" in config and "/run/secrets/flower_basic_auth" in config
    assert "docker/flowerconfig.py" in (ROOT / "Dockerfile").read_text()
    assert flower["healthcheck"]["test"] == ["CMD", "python", "/app/docker/flower_healthcheck.py"]


def test_the_report_pages_are_served_by_the_api(services: dict[str, Any]) -> None:
    """The API renders every report page from the database (the review app); the static
    export the control worker writes lands in the volume the API mounts too; and the page
    templates are installed with the package, so the image can render them."""
    assert services["api"]["command"][:2] == ["tripwire", "serve"]
    for name in ("api", "worker-cpu"):
        assert "tripwire-home:/var/lib/tripwire" in services[name]["volumes"], name
    pyproject = (ROOT / "pyproject.toml").read_text()
    for folder in sorted((ROOT / "src" / "tripwire").rglob("templates")):
        relative = folder.relative_to(ROOT / "src" / "tripwire").as_posix()
        assert f'"{relative}/*"' in pyproject, f"{relative} is not package data"


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
    environment = compose["x-tripwire"]["environment"]
    for key in environment:
        assert key in fields, f"{key} is passed to the containers but is no setting"


def test_the_image_pins_the_same_cpu_torch_as_the_makefile() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    makefile = (ROOT / "Makefile").read_text()
    pinned = re.search(r"^TORCH_VERSION \?= (\S+)$", makefile, re.M)
    assert pinned is not None
    assert f"ARG TORCH_VERSION={pinned.group(1)}" in dockerfile
    assert "ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu" in dockerfile
    assert "docker/worker_healthcheck.py" in dockerfile
    assert (ROOT / "docker" / "worker_healthcheck.py").is_file()


def test_every_writer_signs_the_log_with_one_key_and_one_anchor(
    services: dict[str, Any], tmp_path: Path
) -> None:
    """The ledger key is a secret every writing service gets; the seed make_secrets.py writes
    is a key Tripwire loads."""
    from tripwire.settings import Settings
    from tripwire.store.seal import seal_for

    for name in ("api", "scheduler", "worker-gpu", "worker-cpu"):
        env = services[name]["environment"]
        assert env["TRIPWIRE_LEDGER_KEY"] == "/run/secrets/ledger_key", name
        # the anchor: <home>/ledger-anchor.jsonl, in the volume they share
        assert "tripwire-home:/var/lib/tripwire" in services[name]["volumes"], name
    assert "TRIPWIRE_HOME=/var/lib/tripwire" in (ROOT / "Dockerfile").read_text()
    folder = tmp_path / "secrets"
    run = [sys.executable, str(ROOT / "docker" / "make_secrets.py"), "--dir", str(folder)]
    assert subprocess.run(run, cwd=tmp_path, capture_output=True, check=False).returncode == 0
    settings = Settings(_env_file=None, home=tmp_path, ledger_key=folder / "ledger_key")
    seal = seal_for(settings, writing=True)
    assert seal.signer is not None
    assert seal.verifier.verify("a" * 64, seal.signer.key_id, seal.signer.sign("a" * 64))
