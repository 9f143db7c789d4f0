"""A report job updates the site index from its own run's records: the rows last written
(``site.json``) keep the other runs' lines, and its run's line is what a full listing says."""

from __future__ import annotations

from pathlib import Path

from tests.decided import decide_live, write_policy
from tripwire.reports.build import write_reports
from tripwire.reports.model import SiteRow
from tripwire.reports.overview import site_rows
from tripwire.reports.render import read_site_rows
from tripwire.store import repo
from tripwire.store.db import Database


def _lines(rows: list[SiteRow]) -> dict[str, dict[str, object]]:
    return {r.run: r.model_dump(exclude={"updated_at"}) for r in rows}


def test_a_report_job_replaces_its_runs_line_and_keeps_the_others(
    database_url: str, tmp_path: Path
) -> None:
    db = Database(database_url)
    out = tmp_path / "reports"
    try:
        ids = decide_live(db, write_policy(tmp_path))
        with db.session() as s:
            other, _ = repo.record_checkpoint(
                s, content_hash="sha256:" + "e" * 64, path="/ck/o1", run="other", step=1
            )
            other_id = other.id
        with db.session() as s:
            write_reports(s, ids[-1], out)  # a new folder: every run listed from the store
            assert _lines(read_site_rows(out) or []) == _lines(site_rows(s))
        with db.session() as s:
            repo.record_checkpoint(
                s, content_hash="sha256:" + "f" * 64, path="/ck/o2", run="other", step=2
            )
        with db.session() as s:
            write_reports(s, ids[0], out)  # run r's job: "other" keeps the line it had
            lines = _lines(read_site_rows(out) or [])
            assert lines["other"]["checkpoints"] == 1
            assert lines["r"] == _lines(site_rows(s))["r"]
            write_reports(s, other_id, out)  # other's job brings its line up to date
            assert _lines(read_site_rows(out) or []) == _lines(site_rows(s))
        assert "other/index.html" in (out / "index.html").read_text()
    finally:
        db.dispose()
