"""The hot paths (a decision, a report job, a status page, a scan's folder notes) look rows up by
index: no query they send scans the whole of jobs, decisions, evaluations or task_scores.

The queries are the ones the real code sends (recorded from the engine), explained on a decided
store: SQLite's ``EXPLAIN QUERY PLAN``, PostgreSQL's ``EXPLAIN`` with sequential scans priced out
(``enable_seqscan = off``), so a table too small to be worth an index still shows whether one
could serve the query.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, event, select, text

from tests.decided import decide_live, land, write_policy
from tripwire.decisions import decide_checkpoint
from tripwire.reports.build import write_reports
from tripwire.status import status_snapshot
from tripwire.store import source_state
from tripwire.store.db import Database
from tripwire.store.models import Checkpoint, Job
from tripwire.store.source_state import NoteKind, Observed

WATCHED = ("jobs", "decisions", "evaluations", "task_scores")
TAIL = re.compile(r"ORDER BY \w+\.id DESC\s+LIMIT", re.IGNORECASE)
"""Reading the last row by primary key (the chain's head): SQLite calls that a SCAN."""
COUNTS = re.compile(r"GROUP BY jobs\.kind, jobs\.state", re.IGNORECASE)
"""The job counts of every status page read the (kind, state) index whole: a covering index
scan, never the table."""


@contextmanager
def recorded(db: Database) -> Iterator[list[tuple[str, Any]]]:
    """Every SELECT sent through ``db``'s engine meanwhile, with its parameters."""
    sent: list[tuple[str, Any]] = []

    def before(_c: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            sent.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", before)
    try:
        yield sent
    finally:
        event.remove(db.engine, "before_cursor_execute", before)


def full_scans(connection: Connection, statement: str, parameters: Any) -> list[str]:
    """The plan lines that read a watched table whole."""
    if connection.dialect.name == "sqlite":
        rows = connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)
        lines = [str(r[-1]) for r in rows]
        bad = [
            line
            for line in lines
            if re.match(rf"SCAN ({'|'.join(WATCHED)})\b", line)
            and not (COUNTS.search(statement) and "COVERING INDEX" in line)
        ]
    else:
        connection.exec_driver_sql("SET enable_seqscan = off")
        rows = connection.exec_driver_sql("EXPLAIN " + statement, parameters)
        lines = [str(r[0]) for r in rows]
        bad = [line for line in lines if re.search(rf"Seq Scan on ({'|'.join(WATCHED)})\b", line)]
    return [] if TAIL.search(statement) else bad


def test_the_hot_paths_use_indexes(database_url: str, tmp_path: Path) -> None:
    db = Database(database_url)
    try:
        policy = write_policy(tmp_path)
        ids = decide_live(db, policy)  # a run of seven, deep jobs and a review hold among them
        late = land(db, 800, 0.70, 1e23, 80)
        if db.engine.dialect.name == "postgresql":  # SQLite's statistics would price small
            with db.session() as s:  # tables as too small for an index
                s.execute(text("ANALYZE"))
        with db.session() as s:  # a new report folder lists every run once; after that, one
            write_reports(s, ids[0], tmp_path / "reports")
        with recorded(db) as sent:
            with db.session() as s:
                cp = s.get(Checkpoint, late)
                assert cp is not None
                assert decide_checkpoint(s, policy, cp, datetime.now(UTC)) is not None
            with db.session() as s:
                for checkpoint_id in (ids[4], late):
                    write_reports(s, checkpoint_id, tmp_path / "reports")
                status_snapshot(s, limit=3, offset=2)
                status_snapshot(s, run="r", limit=50)
                source_state.sync_folders(
                    s, "/ck", {"/ck/x": Observed(NoteKind.failed, "bad")}, [], datetime.now(UTC)
                )
            with db.session() as s:
                assert s.scalars(select(Job)).first() is not None
        assert len(sent) > 30
        with db.engine.connect() as connection:
            found = {
                statement: scans
                for statement, parameters in sent
                if (scans := full_scans(connection, statement, parameters))
            }
        found.pop(str(select(Job).compile(db.engine)), None)  # the check just above
        assert not found, "\n\n".join(f"{s}\n  -> {v}" for s, v in found.items())
    finally:
        db.dispose()
