"""Status pages: ``status_snapshot`` walks the checkpoints a page at a time and filters by run;
``tripwire status --run/--limit/--offset/--json`` and ``/api/status?run=&limit=&offset=`` serve
the same pages."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.seed import seed, settings_for
from tests.servers import get_json, serving
from tripwire.status import StatusSnapshot, UnknownRunError, status_snapshot
from tripwire.store.db import Database
from tripwire.web.app import create_app


def _steps(snapshot: StatusSnapshot) -> list[tuple[str, int | None]]:
    return [(run.name, cp.step) for run in snapshot.runs for cp in run.checkpoints]


def test_pages_walk_every_checkpoint_once_in_run_and_step_order(database_url: str) -> None:
    db = Database(database_url)
    seed(db)
    pages = []
    with db.session() as s:
        offset: int | None = 0
        while offset is not None:
            page = status_snapshot(s, limit=3, offset=offset)
            pages.append(page)
            offset = page.next_offset
        only_r1 = status_snapshot(s, run="r1", limit=2)
        with pytest.raises(UnknownRunError):
            status_snapshot(s, run="nope")
    db.dispose()
    assert [_steps(p) for p in pages] == [
        [("r1", 1), ("r1", 2), ("r1", 3)],
        [("r2", 1)],
    ]
    assert [p.total_checkpoints for p in pages] == [4, 4]
    assert pages[0].next_offset == 3 and pages[1].next_offset is None
    assert pages[0].jobs == pages[1].jobs, "job counts are the store's on every page"
    assert pages[0].runs[0].checkpoints[1].review_hold is True
    assert _steps(only_r1) == [("r1", 1), ("r1", 2)]
    assert (only_r1.total_checkpoints, only_r1.next_offset) == (3, 2)


def _tripwire(home: Path, database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TRIPWIRE_HOME": str(home), "TRIPWIRE_DATABASE_URL": database_url}
    return subprocess.run(
        [sys.executable, "-m", "tripwire.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def test_the_status_command_pages_filters_and_prints_json(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'tripwire.db'}"
    db = Database(url)
    seed(db)
    db.dispose()
    done = _tripwire(tmp_path, url, "status", "--run", "r1", "--limit", "2", "--json")
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout)
    assert body["schema_version"] == 2
    assert [cp["step"] for run in body["runs"] for cp in run["checkpoints"]] == [1, 2]
    assert body["next_offset"] == 2
    table = _tripwire(tmp_path, url, "status", "--limit", "2", "--offset", "2")
    assert table.returncode == 0, table.stderr
    assert "3-4" in table.stdout and "--offset" not in table.stdout.split("next page")[-1]
    missing = _tripwire(tmp_path, url, "status", "--run", "nope")
    assert missing.returncode == 1
    assert missing.stderr.strip() == "no run named 'nope'; `tripwire status` lists the runs"


def test_the_status_api_pages_and_documents_its_parameters(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'tripwire.db'}"
    db = Database(url)
    ids = seed(db)
    db.dispose()
    with serving(create_app(settings_for(url, tmp_path))) as base:
        status, page = get_json(f"{base}/api/status?limit=2&offset=2")
        missing, _ = get_json(f"{base}/api/status?run=nope")
        too_many, _ = get_json(f"{base}/api/status?limit=100000")
        _, schema = get_json(f"{base}/openapi.json")
    assert status == 200
    assert [cp["id"] for run in page["runs"] for cp in run["checkpoints"]] == [
        ids["c3"],
        ids["c4"],
    ]
    assert (page["total_checkpoints"], page["next_offset"]) == (4, None)
    assert (missing, too_many) == (404, 422)
    params = {p["name"] for p in schema["paths"]["/api/status"]["get"]["parameters"]}
    assert params == {"run", "limit", "offset"}
