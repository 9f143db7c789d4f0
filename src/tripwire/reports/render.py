"""Write reports to disk: JSON for machines, HTML for reviewers, Markdown for tickets.

Layout under ``out_dir``::

    index.html, site.json             every run (write_site_index)
    <run>/index.html, index.json      the run's trajectory (write_run_report)
    <run>/<checkpoint>.html|json|md   one checkpoint's job report (write_checkpoint_report)

Names are sanitised (``paths.safe_name``) and every file is replaced atomically. HTML pages are
self-contained: inline CSS and SVG, no scripts, no external assets.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import jinja2
from pydantic import BaseModel

from tripwire.reports import panels, views
from tripwire.reports.links import StaticLinks
from tripwire.reports.model import CheckpointReport, RunReport, SiteRow

if TYPE_CHECKING:
    from tripwire.reports.items import ItemsReport
    from tripwire.reports.overview import AuditPage
from tripwire.reports.paths import (
    checkpoint_stem,
    run_dir,
    safe_name,
    short_hash,
    write_atomic,
)


@cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("tripwire", "reports/templates"),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",), default=False),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.globals["LEVEL_VERDICTS"] = views.LEVEL_VERDICTS
    env.filters.update(
        points=views.points,
        pm=views.plus_minus,
        signed=views.signed,
        number=views.number,
        p_value=views.p_value,
        alpha=views.alpha,
        quantity=views.quantity,
        scientific=views.scientific,
        count=views.count,
        ts=views.timestamp,
        short=short_hash,
        md=views.md_cell,
    )
    return env


def _render(template: str, **context: object) -> str:
    return environment().get_template(template).render(**context)


def write_checkpoint_report(report: CheckpointReport, out_dir: Path) -> dict[str, Path]:
    """Write a checkpoint's report as JSON, HTML and Markdown; return the paths by format."""
    stem = checkpoint_stem(report.checkpoint.step, report.checkpoint.content_hash)
    directory = run_dir(out_dir, report.checkpoint.run)
    paths = {fmt: directory / f"{stem}.{fmt}" for fmt in ("json", "html", "md")}
    context = {
        "r": report,
        "banner": views.banner(report),
        "decisions": views.ordered_decisions(report),
        "links": StaticLinks(),
    }
    write_atomic(paths["json"], report.model_dump_json(indent=2) + "\n")
    write_atomic(paths["html"], _render("checkpoint.html.j2", **context))
    write_atomic(paths["md"], _render("checkpoint.md.j2", **context))
    return paths


def run_charts(report: RunReport) -> dict[str, object]:
    """The run page's chart context: one panel per benchmark on each axis the run knows."""
    axes = [a for a in panels.AXES if panels.available(report, a)]
    return {
        "axes": [(a, panels.AXES[a]) for a in axes],
        "missing_axes": [panels.AXES[a] for a in panels.AXES if a not in axes and a != "order"],
        "panels": {a: [panels.panel(report, t, a) for t in report.tasks] for a in axes},
        "legend": panels.legend(),
    }


def write_run_report(report: RunReport, out_dir: Path) -> Path:
    """Write a run's trajectory page (``index.html``) and its JSON; return the HTML path."""
    directory = run_dir(out_dir, report.run)
    html = _render("run.html.j2", r=report, links=StaticLinks(), **run_charts(report))
    write_atomic(directory / "index.json", report.model_dump_json(indent=2) + "\n")
    write_atomic(directory / "index.html", html)
    return directory / "index.html"


def write_site_index(
    runs: Sequence[RunReport | SiteRow], out_dir: Path, *, generated_at: datetime | None = None
) -> Path:
    """Write ``out_dir/index.html`` listing every run, with links to their pages."""
    summaries = [r if isinstance(r, SiteRow) else views.site_row(r) for r in runs]
    rows = [
        {"row": r, "href": f"{safe_name(r.run)}/index.html"}
        for r in sorted(summaries, key=lambda r: r.run)
    ]
    now = generated_at or datetime.now(UTC)
    path = out_dir.resolve() / "index.html"
    listed = SiteRows(rows=sorted(summaries, key=lambda r: r.run))
    write_atomic(out_dir.resolve() / SITE_ROWS_NAME, listed.model_dump_json(indent=2) + "\n")
    write_atomic(path, _render("site.html.j2", rows=rows, generated_at=now))
    return path


SITE_ROWS_NAME = "site.json"
"""The site index's rows as JSON, beside ``index.html``: a report job replaces its run's row."""


class SiteRows(BaseModel):
    """The rows of the site index, as written."""

    schema_version: Literal[1] = 1
    rows: list[SiteRow]


@contextmanager
def site_lock(out_dir: Path) -> Iterator[None]:
    """Hold ``out_dir/.site.lock`` (an advisory ``flock``) while the site rows are read and
    written again, so that report jobs in several worker processes take turns."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / ".site.lock", "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def read_site_rows(out_dir: Path) -> list[SiteRow] | None:
    """The rows the site index was last written with; None when there is no readable copy (an
    older folder, or a hand edit): the caller then lists every run from the store."""
    try:
        text = (out_dir.resolve() / SITE_ROWS_NAME).read_text(encoding="utf-8")
        return SiteRows.model_validate_json(text).rows
    except (OSError, ValueError):
        return None


def write_items_report(report: ItemsReport, out_dir: Path) -> Path:
    """Write the items page of a checkpoint against its baseline, beside its report."""
    c = report.checkpoint
    directory = run_dir(out_dir, c.run or "")
    path = directory / f"{checkpoint_stem(c.step, c.content_hash)}-items.html"
    write_atomic(path, _render("items.html.j2", r=report, links=StaticLinks()))
    return path


def write_audit_page(page: AuditPage, out_dir: Path) -> Path:
    """Write ``audit.html`` (the log and its chain status) next to the site index."""
    path = out_dir.resolve() / "audit.html"
    write_atomic(path, _render("audit.html.j2", a=page, links=StaticLinks()))
    return path
