"""The review queue in a real browser (Debian's Chromium driven by Playwright) on a live server:
sign in with a token, hold and approve through the plain forms, sign out.

Skips with a message when Chromium is not installed (``apt-get install chromium``).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.seed import settings_for
from tests.servers import serving
from tests.web.reviewing import land_and_decide, load_test_policy, make_token
from tripwire.store.db import Database
from tripwire.store.models import Role
from tripwire.web.app import create_app

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)"
)
SCREENSHOTS = (
    Path(os.environ["TRIPWIRE_SCREENSHOTS"]) if os.environ.get("TRIPWIRE_SCREENSHOTS") else None
)
"""Set to a folder to keep the screenshots (they go to the test's temporary folder otherwise)."""


@pytest.fixture
def browser_page(tmp_path: Path) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync"],
        )
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.errors = []  # type: ignore[attr-defined]
        page.on("pageerror", lambda e: page.errors.append(str(e)))  # type: ignore[attr-defined]
        try:
            yield page
        finally:
            browser.close()


def test_a_reviewer_signs_in_holds_and_approves_from_the_queue(
    browser_page: Any, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 't.db'}"
    db = Database(url)
    policy = load_test_policy(tmp_path)
    for step, accuracy in ((100, 0.40), (200, 0.47), (300, 0.62)):
        land_and_decide(db, policy, step, accuracy)
    token = make_token(db, "alice", Role.reviewer)
    db.dispose()
    shots = SCREENSHOTS or tmp_path
    shots.mkdir(parents=True, exist_ok=True)
    page = browser_page
    with serving(create_app(settings_for(url, tmp_path))) as base:
        page.goto(f"{base}/reviews")
        assert page.url == f"{base}/login?next=/reviews"
        page.fill("#token", token)
        page.screenshot(path=str(shots / "login.png"))
        page.click("button[type=submit]")
        assert page.url == f"{base}/reviews"
        assert page.locator(".who").inner_text() == "alice · reviewer"
        page.screenshot(path=str(shots / "reviews.png"), full_page=True)

        open_card = page.locator("section.review-item.open")
        assert open_card.count() == 1
        open_card.locator("button[value=hold]").click()  # no comment: refused, nothing recorded
        assert "Not recorded: comment: hold needs a comment" in page.locator(".flash").inner_text()
        open_card = page.locator("section.review-item.open")
        open_card.locator("textarea[name=comment]").fill("wait for the red team")
        open_card.locator("button[value=hold]").click()
        assert "Held checkpoint" in page.locator(".flash").inner_text()
        assert page.locator("section.review-item.held").count() == 2
        page.screenshot(path=str(shots / "reviews-held.png"), full_page=True)

        for _ in range(2):
            held = page.locator("section.review-item.held").first
            held.locator("textarea[name=comment]").fill("cleared after deep evaluation")
            held.locator("button[value=approve]").click()
            assert "Approved checkpoint" in page.locator(".flash").inner_text()
        assert page.locator("section.review-item").count() == 0
        assert "No checkpoint is held." in page.content()
        page.screenshot(path=str(shots / "reviews-approved.png"), full_page=True)

        page.click("nav.top form button")
        assert page.url.startswith(f"{base}/login")
        page.goto(f"{base}/reviews")
        assert page.url.startswith(f"{base}/login")
    assert page.errors == []
