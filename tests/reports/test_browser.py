"""Report pages in a real browser: Debian's Chromium driven by Playwright, served on localhost.

Skips with a message when Chromium is not installed (``apt-get install chromium``); Playwright
never downloads a browser of its own here.
"""

from __future__ import annotations

import functools
import http.server
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.reports.test_render import HOSTILE, fired_checkpoint, run_report
from tripwire.reports import write_checkpoint_report, write_run_report, write_site_index

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)"
)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[str]:
    """A report site (index, a run page, a fired checkpoint page, a hostile run) on localhost."""
    out = tmp_path / "reports"
    runs = [run_report(), run_report(run=HOSTILE)]
    for run in runs:
        write_run_report(run, out)
    write_checkpoint_report(fired_checkpoint(), out)
    write_site_index(runs, out)

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *_: Any) -> None:
            return None

    handler = functools.partial(Quiet, directory=str(out))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def page(site: str) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        page = browser.new_page()
        page.errors = []  # type: ignore[attr-defined]
        page.requests = []  # type: ignore[attr-defined]
        page.dialogs = []  # type: ignore[attr-defined]
        page.on("pageerror", lambda e: page.errors.append(str(e)))  # type: ignore[attr-defined]
        page.on("request", lambda r: page.requests.append(r.url))  # type: ignore[attr-defined]

        def on_dialog(dialog: Any) -> None:
            page.dialogs.append(dialog.message)  # type: ignore[attr-defined]
            dialog.dismiss()

        page.on("dialog", on_dialog)
        try:
            yield page
        finally:
            browser.close()


def test_a_reader_goes_from_the_index_to_a_fired_checkpoint(site: str, page: Any) -> None:
    page.goto(f"{site}/index.html")
    page.get_by_role("link", name="llama-7b-pretrain").click()
    page.wait_for_load_state()
    assert page.url.endswith("/llama-7b-pretrain/index.html")

    chart = page.locator(".charts-step svg.panel").first
    box = chart.bounding_box()
    assert box is not None and box["width"] > 200 and box["height"] > 100, "the chart is drawn"
    assert page.locator(".charts-step svg.panel").count() == 3
    assert page.locator(".charts-step svg .fired").count() == 3
    assert page.locator(".charts-compute svg.panel").first.bounding_box() is None, "hidden"
    page.get_by_text("training compute (FLOP)", exact=True).first.click()
    assert page.locator(".charts-compute svg.panel").first.bounding_box() is not None
    assert page.locator(".charts-step svg.panel").first.bounding_box() is None

    page.locator("a[href^='step-3000']").first.click()
    page.wait_for_load_state()
    assert "/step-3000-" in page.url
    body = page.locator("body").inner_text()
    assert "mmlu-plus-5" in body
    assert "fired" in body.lower()
    assert "mmlu rose 8.0 points" in body

    assert page.errors == [], "no script errors"
    assert all(url.startswith(site) for url in page.requests), "no asset from elsewhere"


def test_hostile_run_names_are_text_not_markup(site: str, page: Any) -> None:
    page.goto(f"{site}/index.html")
    page.get_by_role("link", name=HOSTILE).click()
    page.wait_for_load_state()
    assert HOSTILE in page.locator("body").inner_text()
    assert page.dialogs == [], "the script in the run name did not run"
    assert page.locator("script").count() == 0
