"""The review app's pages and their JSON API, on a run decided live (tests/decided.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text

from tests.decided import decide_live, write_policy
from tests.helpers import as_table_owner
from tests.seed import settings_for
from tripwire.reports.build import write_all_reports
from tripwire.store.db import Database
from tripwire.store.models import Checkpoint, Role
from tripwire.tokens import create_token
from tripwire.web.app import create_app


@pytest.fixture
def decided(database_url: str, tmp_path: Path) -> Iterator[tuple[Database, list[str]]]:
    db = Database(database_url)
    ids = decide_live(db, write_policy(tmp_path))
    with db.session() as s:
        hashes = [
            s.get(Checkpoint, i).content_hash.removeprefix("sha256:")  # type: ignore[union-attr]
            for i in ids
        ]
    yield db, hashes
    db.dispose()


@pytest.fixture
def client(
    decided: tuple[Database, list[str]], database_url: str, tmp_path: Path
) -> Iterator[TestClient]:
    """A client signed in with a viewer's token (every page and API call needs one)."""
    db, _ = decided
    with db.session() as s:
        _, token = create_token(s, name="page-reader", role=Role.viewer)
    app = create_app(settings_for(database_url, tmp_path))
    with TestClient(app, headers={"Authorization": f"Bearer {token}"}) as c:
        yield c


def _get(client: TestClient, url: str) -> Any:
    response = client.get(url)
    assert response.status_code == 200, (url, response.status_code, response.text[:300])
    return response


def test_the_overview_lists_open_reviews_by_severity_and_active_holds(
    client: TestClient, decided: tuple[Database, list[str]]
) -> None:
    _, hashes = decided
    data = _get(client, "/api/overview").json()
    reviews = data["open_reviews"]
    assert reviews[0]["severity"] == "critical" and reviews[0]["held"]
    assert {r["checkpoint"]["step"] for r in reviews} >= {500, 600, 700}
    assert {h["step"] for h in data["holds"]} >= {500}
    html = _get(client, "/").text
    assert "Open reviews" in html and "Active holds" in html
    assert f"/checkpoints/{hashes[4]}" in html


def test_the_run_page_draws_bands_fires_and_the_compute_rule(client: TestClient) -> None:
    run = _get(client, "/api/runs/r").json()
    points = {p["step"]: p for p in run["points"]}
    assert points[100]["baseline_evaluation"] and not points[100]["fired"]
    assert points[500]["fired_severity"] == "critical" and points[500]["held"]
    assert points[600]["baseline_step"] == 300  # the held 500 is no baseline
    assert {b["rule_id"] for b in run["bands"]} == {"plus-5", "plus-12-hold"}
    assert run["compute_rule"] == "every 4x training compute"
    assert [p["compute_rule_fired"] for p in run["points"]][:3] == [True, False, False]
    html = _get(client, "/runs/r").text
    for axis in ("step", "compute"):
        assert f'class="charts charts-{axis}"' in html
    assert 'class="threshold-band"' in html and 'class="fired critical"' in html
    assert 'class="compute-rule"' in html and 'class="first-baseline"' in html


def test_the_checkpoint_page_links_its_baseline_neighbours_items_and_data(
    client: TestClient, decided: tuple[Database, list[str]]
) -> None:
    _, hashes = decided
    html = _get(client, f"/checkpoints/{hashes[4]}").text
    assert "FIRED" in html and "REVIEW HOLD" in html
    for target in (hashes[2], hashes[3], hashes[5]):  # baseline (300), previous, next
        assert f'href="/checkpoints/{target}"' in html
    for suffix in ("/items", ".json", ".md"):
        assert f'href="/checkpoints/{hashes[4]}{suffix}"' in html
    data = _get(client, f"/checkpoints/{hashes[4]}.json").json()
    assert data["baseline"]["step"] == 300 and data["review_hold"]
    assert "plus-12-hold" in _get(client, f"/checkpoints/{hashes[4]}.md").text
    assert client.get("/checkpoints/zzzz").status_code == 404
    assert client.get("/checkpoints/ffffffff").status_code == 404
    assert client.get("/checkpoints/00000000").status_code == 409  # the prefix of several


def test_the_items_page_shows_what_flipped_with_prompts_and_both_answers(
    client: TestClient, decided: tuple[Database, list[str]]
) -> None:
    _, hashes = decided
    items = _get(client, f"/api/checkpoints/{hashes[4]}/items").json()
    assert items["reference"]["step"] == 300 and items["kind"] == "baseline"
    (task,) = items["tasks"]
    assert task["up"] > task["down"] > 0 and task["texts_kept"]
    row = task["newly_right"][0]
    assert row["before"] == 0.0 and row["after"] == 1.0
    assert row["prompt"].startswith("Q") and row["after_answer"] == row["target"]
    assert row["before_answer"] != row["target"]
    assert task["change"]["discordant"] == [task["up"], task["down"]]
    html = _get(client, f"/checkpoints/{hashes[4]}/items").text
    assert "Newly right" in html and "Newly wrong" in html and row["prompt"][:10] in html
    assert client.get(f"/checkpoints/{hashes[0]}/items").status_code == 404  # no baseline


def test_any_two_checkpoints_can_be_compared_with_the_paired_test(
    client: TestClient, decided: tuple[Database, list[str]]
) -> None:
    _, hashes = decided
    report = _get(client, f"/api/compare?a={hashes[6]}&b={hashes[0]}").json()
    (task,) = report["tasks"]
    assert task["change"]["estimate"] > 20 and task["change"]["p_no_change"] < 0.001
    html = _get(client, f"/compare?a={hashes[6]}&b={hashes[0]}").text
    assert "against" in html and "Newly right" in html


def test_the_audit_view_shows_the_log_and_its_chain_status(
    client: TestClient, decided: tuple[Database, list[str]]
) -> None:
    db, _ = decided
    audit = _get(client, "/api/audit").json()
    assert audit["ok"] and audit["entries"] == len(audit["rows"]) > 20
    assert {r["kind"] for r in audit["rows"]} == {"decision", "evaluation"}
    assert "Chain intact" in _get(client, "/audit").text
    with as_table_owner(db.engine) as conn:
        conn.execute(text("UPDATE task_scores SET score = 0.99 WHERE id = 1"))
    broken = _get(client, "/api/audit").json()
    assert not broken["ok"] and "evaluation" in broken["message"]
    assert "Chain BROKEN" in _get(client, "/audit").text


def test_the_static_export_writes_the_same_pages_for_auditors(
    decided: tuple[Database, list[str]], tmp_path: Path
) -> None:
    db, hashes = decided
    out = tmp_path / "export"
    with db.session() as s:
        index = write_all_reports(s, out)
        steps = {c.content_hash: c.step for c in s.scalars(select(Checkpoint))}
    assert index == out.resolve() / "index.html"
    assert "Chain intact" in (out / "audit.html").read_text()
    items = sorted(p.name for p in (out / "r").glob("*-items.html"))
    assert len(items) == len(steps) - 1  # every checkpoint but the first has a baseline
    page = (out / "r" / f"step-500-{hashes[4][:12]}.html").read_text()
    assert f'href="step-500-{hashes[4][:12]}-items.html"' in page
    assert 'href="step-300-' in page  # the baseline's page, relative
    assert "http" not in page.split("<body>")[1].split("</footer>")[0].replace("https://", "")


def test_a_report_job_updates_the_site_index_from_grouped_counts(
    decided: tuple[Database, list[str]], tmp_path: Path
) -> None:
    """The index a report job writes (site_rows, a few grouped queries) says what the full
    export (every run's report) says."""
    from tripwire.reports.build import write_reports
    from tripwire.reports.overview import site_rows
    from tripwire.reports.trajectory import run_report
    from tripwire.reports.views import site_row
    from tripwire.store.models import Run

    db, _ = decided
    with db.session() as s:
        light = site_rows(s)
        full = [site_row(run_report(s, r.id)) for r in s.scalars(select(Run))]
        cp = s.scalars(select(Checkpoint)).first()
        assert cp is not None
        paths = write_reports(s, cp.id, tmp_path / "out")
    ignore = {"updated_at"}
    assert [r.model_dump(exclude=ignore) for r in light] == [
        r.model_dump(exclude=ignore) for r in full
    ]
    assert "r/index.html" in paths["index"].read_text()
