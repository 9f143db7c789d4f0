"""Where a page's links point: files beside each other (the static export) or the server's
routes. Templates only ever ask a ``Links`` object, so the same pages serve both."""

from __future__ import annotations

from urllib.parse import quote

from tripwire.reports.paths import checkpoint_stem, safe_name, short_hash


class StaticLinks:
    """Links between the files ``tripwire report`` writes (relative to a run's folder)."""

    web = False

    def home(self) -> str:
        return "../index.html"

    def run(self, run: str) -> str:
        return f"../{safe_name(run)}/index.html"

    def checkpoint(self, step: int | None, content_hash: str) -> str:
        return f"{checkpoint_stem(step, content_hash)}.html"

    def items(self, step: int | None, content_hash: str) -> str:
        return f"{checkpoint_stem(step, content_hash)}-items.html"

    def data(self, step: int | None, content_hash: str, suffix: str) -> str:
        return f"{checkpoint_stem(step, content_hash)}.{suffix}"

    def audit(self) -> str:
        return "../audit.html"


class WebLinks:
    """Links to the server's pages."""

    web = True

    def home(self) -> str:
        return "/"

    def run(self, run: str) -> str:
        return f"/runs/{quote(run, safe='')}"

    def checkpoint(self, step: int | None, content_hash: str) -> str:
        return f"/checkpoints/{short_hash(content_hash, 64)}"

    def items(self, step: int | None, content_hash: str) -> str:
        return f"/checkpoints/{short_hash(content_hash, 64)}/items"

    def data(self, step: int | None, content_hash: str, suffix: str) -> str:
        return f"/checkpoints/{short_hash(content_hash, 64)}.{suffix}"

    def audit(self) -> str:
        return "/audit"


Links = StaticLinks | WebLinks
