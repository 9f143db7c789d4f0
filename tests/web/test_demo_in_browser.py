"""The review app on the demo's own data, in a real browser (Debian's Chromium through
Playwright): the run page's compute-rule markers and threshold bands, a fired decision, its
flipped items, an approval with a reviewer token, and the audit view with the chain valid. A
screenshot of each page is kept (``TRIPWIRE_SCREENSHOTS``, else the test's temporary folder).
"""

from __future__ import annotations

import io
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from tests.seed import settings_for
from tests.servers import serving
from tripwire import tokens
from tripwire.demo.run import run_demo
from tripwire.store.db import Database
from tripwire.store.models import Role
from tripwire.web.app import create_app

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)"
    ),
]


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, Path]]:
    """The demo run to step 450 (checkpoints 0, 150, 300, 450) into a store, and a reviewer."""
    out = tmp_path_factory.mktemp("demo")
    run_demo(out, steps=450, fresh=True, console=Console(file=io.StringIO()))
    url = f"sqlite:///{out / 'tripwire.db'}"
    db = Database(url)
    with db.session() as s:
        _, token = tokens.create_token(s, name="rev", role=Role.reviewer)
    db.dispose()
    yield url, token, out


@pytest.fixture
def page() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-sync",
                "--disable-background-networking",
            ],
        )
        tab = browser.new_page(viewport={"width": 1280, "height": 900})
        tab.errors = []  # type: ignore[attr-defined]
        tab.requests = []  # type: ignore[attr-defined]
        tab.on("pageerror", lambda e: tab.errors.append(str(e)))  # type: ignore[attr-defined]
        tab.on("request", lambda r: tab.requests.append(r.url))  # type: ignore[attr-defined]
        try:
            yield tab
        finally:
            browser.close()


def test_a_reviewer_follows_a_fire_from_the_trajectory_to_its_items_and_approves_it(
    demo_store: tuple[str, str, Path], page: Any, tmp_path: Path
) -> None:
    url, token, out = demo_store
    shots = (
        Path(os.environ["TRIPWIRE_SCREENSHOTS"])
        if os.environ.get("TRIPWIRE_SCREENSHOTS")
        else tmp_path
    )
    shots.mkdir(parents=True, exist_ok=True)
    # the demo's home: its ledger key signs the approval, its anchor holds the heads
    settings = settings_for(url, tmp_path).model_copy(update={"home": out})
    with serving(create_app(settings)) as base:
        page.goto(f"{base}/")
        assert page.url.startswith(f"{base}/login")
        page.fill("#token", token)
        page.click("button[type=submit]")
        page.goto(f"{base}/")
        assert "Open reviews" in page.content()
        page.screenshot(path=str(shots / "1-overview.png"), full_page=True)

        # the run page: a panel per benchmark with threshold bands and the compute rule's marks
        page.get_by_role("link", name="demo-run", exact=True).first.click()
        page.wait_for_load_state()
        assert page.url.endswith("/runs/demo-run")
        step_charts = page.locator(".charts-step")
        assert step_charts.locator("svg.panel").count() == 3
        assert step_charts.locator(".threshold-band").count() > 0
        assert step_charts.locator(".compute-rule").count() > 0
        assert step_charts.locator(".first-baseline").count() == 3
        assert step_charts.locator(".fired.critical").count() > 0
        page.screenshot(path=str(shots / "2-run.png"), full_page=True)
        page.get_by_text("training compute (FLOP)", exact=True).first.click()
        compute = page.locator(".charts-compute svg.panel").first
        assert compute.bounding_box() is not None, "the compute axis is shown"
        page.screenshot(path=str(shots / "3-run-compute.png"), full_page=True)

        # the fired decision: the critical hold at step 300
        page.locator("tr.fired.critical a").first.click()
        page.wait_for_load_state()
        body = page.locator("body").inner_text()
        assert "FIRED" in body and "addition-plus-25" in body and "REVIEW HOLD" in body
        checkpoint_url = page.url
        page.screenshot(path=str(shots / "4-checkpoint.png"), full_page=True)

        # the items that flipped against its baseline
        page.get_by_role("link", name="items that changed").click()
        page.wait_for_load_state()
        assert "Newly right" in page.content()
        assert page.locator(".item-text").count() > 0, "prompts are shown"
        page.screenshot(path=str(shots / "5-items.png"), full_page=True)

        # approve it with the reviewer's token (signed in above)
        page.goto(checkpoint_url)
        form = page.locator("#reviews form.review-actions")
        form.locator("textarea[name=comment]").fill("deep evaluation read: within the plan")
        form.locator("button[value=approve]").click()
        page.wait_for_load_state()
        assert "Approved" in page.locator(".flash").first.inner_text()
        assert "approve" in page.locator("#reviews").inner_text()
        page.screenshot(path=str(shots / "6-approved.png"), full_page=True)

        # the audit view: the approval is in the log and the chain verifies
        page.get_by_role("link", name="Audit", exact=True).click()
        page.wait_for_load_state()
        assert "Chain intact" in page.content()
        assert "approve by rev (reviewer)" in page.locator("body").inner_text()
        page.screenshot(path=str(shots / "7-audit.png"), full_page=True)
    assert page.errors == [], "no script errors"
    assert all(u.startswith(base) for u in page.requests), "nothing loaded from elsewhere"
