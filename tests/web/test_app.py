"""``tripwire serve``: health, status and metrics from a real uvicorn server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.conftest import REDIS_URL, require_service
from tests.seed import seed, settings_for
from tests.servers import STARTUP_DEADLINE_S, closed_port, get, get_json, sample, scrape, serving
from tripwire.store import source_state
from tripwire.store.db import Database
from tripwire.web.app import create_app


def test_health_is_ok_with_a_database_and_the_embedded_broker(tmp_path: Path) -> None:
    with serving(create_app(settings_for(f"sqlite:///{tmp_path / 't.db'}", tmp_path))) as base:
        status, body = get_json(f"{base}/healthz")
    assert (status, body) == (
        200,
        {
            "status": "ok",
            "database": "ok",
            "broker": "embedded",
            "reconcile": "no watcher",
            "scan_failures": 0,
        },
    )


def test_health_pings_a_redis_broker(tmp_path: Path) -> None:
    require_service("Redis", REDIS_URL, 6379)
    broker = f"{REDIS_URL.rsplit('/', 1)[0]}/13"  # a PING only: no keys are written
    settings = settings_for(f"sqlite:///{tmp_path / 't.db'}", tmp_path, broker)
    with serving(create_app(settings)) as base:
        status, body = get_json(f"{base}/healthz")
    assert (status, body["broker"]) == (200, "ok")


def test_health_is_503_naming_the_broker_without_error_text_when_it_is_down(
    tmp_path: Path,
) -> None:
    broker = f"redis://127.0.0.1:{closed_port()}/0"
    settings = settings_for(f"sqlite:///{tmp_path / 't.db'}", tmp_path, broker)
    with serving(create_app(settings)) as base:
        status, body = get_json(f"{base}/healthz")
    assert status == 503
    assert body["status"] == "unavailable"
    assert body["database"] == "ok"
    assert body["broker"] == "unreachable", "what is down, never the driver's error text"


def test_health_and_status_are_503_when_the_database_is_unreachable(tmp_path: Path) -> None:
    """The server still starts (and says why it is unhealthy) while the database is down."""
    url = f"postgresql+psycopg://tripwire@127.0.0.1:{closed_port()}/tripwire"
    with serving(create_app(settings_for(url, tmp_path))) as base:
        health_status, health = get_json(f"{base}/healthz")
        status_status, status = get_json(f"{base}/api/status")
    assert health_status == 503
    assert health["database"] == "unreachable"
    assert health["broker"] == "embedded"
    assert health["reconcile"] == "unknown"
    assert status_status == 503
    assert status["detail"] == "database unavailable"


def test_status_lists_runs_checkpoints_and_job_counts(database_url: str, tmp_path: Path) -> None:
    db = Database(database_url)
    ids = seed(db)
    db.dispose()
    with serving(create_app(settings_for(database_url, tmp_path))) as base:
        status, body = get_json(f"{base}/api/status")
    assert status == 200
    assert body["schema_version"] == 2
    runs = {run["name"]: run["checkpoints"] for run in body["runs"]}
    assert list(runs) == ["r1", "r2"]
    assert [cp["step"] for cp in runs["r1"]] == [1, 2, 3]
    by_id = {cp["id"]: cp for run in runs.values() for cp in run}
    assert by_id[ids["c1"]]["state"] == "decided"
    assert by_id[ids["c1"]]["fired_rules"] == ["mmlu-delta"]
    assert by_id[ids["c2"]]["fired_rules"] == ["mmlu-delta", "wmdp-level"]
    assert by_id[ids["c2"]]["deep_jobs"] == ["running"]
    assert by_id[ids["c2"]]["review_hold"] is True
    assert by_id[ids["c1"]]["review_hold"] is False
    assert by_id[ids["c3"]]["fired_rules"] == []
    assert by_id[ids["c4"]]["error"] == "corrupt shard"
    assert body["jobs"] == {
        "proxy_eval": {"done": 2, "failed": 1, "pending": 1},
        "deep_eval": {"running": 1},
        "decide": {"running": 1},
        "report": {"pending": 2},
    }


def test_the_openapi_schema_lists_the_endpoints(tmp_path: Path) -> None:
    with serving(create_app(settings_for(f"sqlite:///{tmp_path / 't.db'}", tmp_path))) as base:
        status, schema = get_json(f"{base}/openapi.json")
    assert status == 200
    assert {"/metrics", "/healthz", "/api/status"} <= set(schema["paths"])


def test_the_api_docs_page_loads_nothing_from_elsewhere(tmp_path: Path) -> None:
    """FastAPI's /docs and /redoc fetch their scripts from a CDN; ours is one local page."""
    with serving(create_app(settings_for(f"sqlite:///{tmp_path / 't.db'}", tmp_path))) as base:
        status, content_type, page = get(f"{base}/docs")
        redoc = get(f"{base}/redoc")[0]
    assert (status, content_type.split(";")[0]) == (200, "text/html")
    assert "/api/status" in page and "/healthz" in page and "/openapi.json" in page
    assert "<script" not in page and "http://" not in page and "https://" not in page
    assert redoc == 404


def test_health_is_degraded_when_a_watcher_stopped_reconciling(tmp_path: Path) -> None:
    """A watcher that died without stopping leaves its heartbeat to age: 503 "overdue"; one
    that stopped on purpose is "no watcher"; a scan that fails is counted."""
    url = f"sqlite:///{tmp_path / 't.db'}"
    db = Database(url)
    now = datetime.now(UTC)
    with db.session() as s:
        source_state.beat(s, "host:1", 10.0, now - timedelta(minutes=5))
    with serving(create_app(settings_for(url, tmp_path))) as base:
        status, body = get_json(f"{base}/healthz")
        assert (status, body["status"], body["reconcile"]) == (503, "degraded", "overdue")
        with db.session() as s:
            source_state.beat(s, "host:1", 10.0, datetime.now(UTC))
        status, body = get_json(f"{base}/healthz")
        assert (status, body["reconcile"]) == (200, "ok")
        with db.session() as s:
            observed = {"/ck": source_state.Observed(source_state.NoteKind.scan, "boom")}
            source_state.sync_folders(s, "/ck", observed, ["/ck"], datetime.now(UTC))
        status, body = get_json(f"{base}/healthz")
        assert (status, body["status"], body["scan_failures"]) == (503, "degraded", 1)
        with db.session() as s:
            source_state.sync_folders(s, "/ck", {}, [], datetime.now(UTC))
            source_state.end_beat(s, "host:1")
        status, body = get_json(f"{base}/healthz")
        assert (status, body["reconcile"], body["scan_failures"]) == (200, "no watcher", 0)
    db.dispose()


def test_the_serve_command_serves_health_and_metrics(tmp_path: Path) -> None:
    """``tripwire serve --port N`` as a user runs it, in its own process."""
    port = closed_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("TRIPWIRE_") or key.startswith("TRIPWIRE_TEST_")
    }
    env |= {
        "TRIPWIRE_HOME": str(tmp_path / "home"),
        "TRIPWIRE_DATABASE_URL": f"sqlite:///{tmp_path / 'serve.db'}",
    }
    command = [sys.executable, "-m", "tripwire.cli", "serve", "--port", str(port)]
    server = subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_DEADLINE_S
        while True:
            assert server.poll() is None, server.communicate()[0].decode()
            try:
                status, body = get_json(f"{base}/healthz")
                break
            except (urllib.error.URLError, ConnectionError):
                assert time.monotonic() < deadline, "tripwire serve did not start"
                time.sleep(0.1)
        assert (status, body["database"]) == (200, "ok")
        metrics = scrape(base)
        assert sample(metrics, "tripwire_database_up") == 1
        assert get(f"{base}/api/status")[0] == 200
    finally:
        server.send_signal(signal.SIGINT)
        output = server.communicate(timeout=STARTUP_DEADLINE_S)[0].decode()
    assert "Application shutdown complete" in output, output
