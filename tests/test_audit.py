"""``tripwire audit verify``: tampering with one decision is found and the record named."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select, text
from typer.testing import CliRunner

from tests.helpers import as_table_owner, binary_suite_result, write_decision_log
from tripwire.audit import AuditReport, verify_chain
from tripwire.cli import app
from tripwire.store import repo
from tripwire.store.db import Database
from tripwire.store.models import Checkpoint

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def _verify(db: Database, head: str | None = None) -> AuditReport:
    with db.session() as s:
        return verify_chain(s, expected_head=head)


def test_an_untouched_log_verifies(database_url: str) -> None:
    db = Database(database_url)
    ids = write_decision_log(db)
    report = _verify(db)
    assert report.ok and report.checked == len(ids)
    db.dispose()


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE decisions SET verdict = 'undecidable' WHERE id = :id",
        "UPDATE decisions SET explanation = 'nothing to see' WHERE id = :id",
        "UPDATE decisions SET statistic = 0.5 WHERE id = :id",
        "UPDATE decisions SET decided_at = decided_at - interval '1 day' WHERE id = :id",
    ],
)
def test_an_altered_decision_is_named(database_url: str, statement: str) -> None:
    db = Database(database_url)
    ids = write_decision_log(db)
    if "interval" in statement and database_url.startswith("sqlite"):
        statement = "UPDATE decisions SET decided_at = '2026-11-22 12:00:00' WHERE id = :id"
    with as_table_owner(db.engine) as conn:
        conn.execute(text(statement), {"id": ids[2]})
    report = _verify(db)
    assert report.broken is not None
    assert report.broken.kind == "altered"
    assert report.broken.decision_id == ids[2]
    assert f"decision {ids[2]} " in report.broken.message
    assert report.checked == 2
    db.dispose()


def test_a_removed_decision_is_found_at_the_next_record(database_url: str) -> None:
    db = Database(database_url)
    ids = write_decision_log(db)
    with as_table_owner(db.engine) as conn:
        conn.execute(text("DELETE FROM decisions WHERE id = :id"), {"id": ids[1]})
    report = _verify(db)
    broken = report.broken
    assert broken is not None
    assert broken.kind == "removed"
    assert broken.decision_id == ids[2]
    assert f"does not follow decision {ids[0]}" in broken.message
    assert f"ids {ids[1]}..{ids[1]} are missing" in broken.message
    db.dispose()


def test_a_deleted_last_decision_is_caught_by_its_ledger_entry(database_url: str) -> None:
    db = Database(database_url)
    ids = write_decision_log(db)
    with as_table_owner(db.engine) as conn:
        conn.execute(text("DELETE FROM decisions WHERE id = :id"), {"id": ids[-1]})
    report = _verify(db)
    assert report.broken is not None and report.broken.kind == "removed"
    assert "the decision it records was deleted" in report.broken.message
    db.dispose()


def test_removing_the_last_entries_and_rows_is_caught_by_an_anchored_head(
    database_url: str,
) -> None:
    db = Database(database_url)
    ids = write_decision_log(db)
    head = _verify(db).head
    with as_table_owner(db.engine) as conn:
        conn.execute(
            text("DELETE FROM ledger WHERE kind = 'decision' AND ref_id = :id"), {"id": ids[-1]}
        )
        conn.execute(text("DELETE FROM decisions WHERE id = :id"), {"id": ids[-1]})
    assert _verify(db).ok, "a shorter chain is consistent on its own"
    report = _verify(db, head)
    assert report.broken is not None and report.broken.kind == "head_missing"
    db.dispose()


def test_an_edited_task_score_and_an_unlogged_decision_are_found(database_url: str) -> None:
    db = Database(database_url)
    write_decision_log(db)
    with db.session() as s:
        cp = s.scalars(select(Checkpoint)).one()
        result = binary_suite_result(30, 50, started_at=NOW)
        evaluation = repo.save_evaluation(s, cp, result, "proxy")
        evaluation_id = evaluation.id
    assert _verify(db).ok and _verify(db).entries == 5
    with as_table_owner(db.engine) as conn:
        conn.execute(
            text("UPDATE task_scores SET score = 0.9 WHERE evaluation_id = :id"),
            {"id": evaluation_id},
        )
    report = _verify(db)
    assert report.broken is not None and report.broken.kind == "altered"
    assert report.broken.record == "evaluation"
    assert "scores or item outcomes" in report.broken.message
    with as_table_owner(db.engine) as conn:
        conn.execute(
            text("UPDATE task_scores SET score = 0.6 WHERE evaluation_id = :id"),
            {"id": evaluation_id},
        )
    assert _verify(db).ok
    with as_table_owner(db.engine) as conn:  # a decision inserted behind Tripwire's back
        conn.execute(
            text(
                "INSERT INTO decisions (checkpoint_id, policy_name, policy_hash, rule_id, "
                "rule_type, severity, verdict, explanation, inputs, actions, decided_at, "
                "prev_hash, record_hash) SELECT checkpoint_id, policy_name, policy_hash, 'z', "
                "rule_type, severity, 'fired', explanation, inputs, actions, decided_at, "
                "record_hash, :forged FROM decisions ORDER BY id DESC LIMIT 1"
            ),
            {"forged": "f" * 64},
        )
    report = _verify(db)
    assert report.broken is not None and report.broken.kind in ("altered", "unlogged")
    db.dispose()


def test_the_command_fails_and_names_the_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path}/audit.db"
    monkeypatch.setenv("TRIPWIRE_DATABASE_URL", url)
    db = Database(url)
    ids = write_decision_log(db)
    runner = CliRunner()
    ok = runner.invoke(app, ["audit", "verify"])
    assert ok.exit_code == 0, ok.output
    assert f"{len(ids)} entries" in ok.output
    with as_table_owner(db.engine) as conn:
        conn.execute(text("UPDATE decisions SET verdict = 'fired' WHERE id = :id"), {"id": ids[0]})
    broken = runner.invoke(app, ["audit", "verify"])
    assert broken.exit_code == 1
    assert f"decision {ids[0]} " in broken.output and "altered" in broken.output
    db.dispose()
