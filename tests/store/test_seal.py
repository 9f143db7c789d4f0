"""The sealed ledger: what a database administrator can still do, and what ``audit verify`` sees.

Each tamper is done the way someone with the database's owner credentials would: the
append-only triggers lifted, rows rewritten with the project's own hash functions. The log is
verified without ``--head``: the entries' signatures and the anchor outside the database catch
what the hash chain alone cannot.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Connection, create_engine, select, text, update
from sqlalchemy.exc import DBAPIError
from typer.testing import CliRunner

from tests.helpers import as_table_owner, binary_suite_result, write_decision_log
from tests.seed import NOW, settings_for
from tripwire.audit import AuditReport, verify_chain
from tripwire.cli import app
from tripwire.settings import Settings
from tripwire.store import ledger, repo
from tripwire.store.db import Database
from tripwire.store.models import Checkpoint, Decision, LedgerEntry, Review, ReviewAction
from tripwire.store.seal import Signer, create_key, seal_for


@pytest.fixture
def sealed(database_url: str, tmp_path: Path) -> Iterator[tuple[Database, Settings]]:
    settings = settings_for(database_url, tmp_path)
    db = Database.for_settings(settings)
    yield db, settings
    db.dispose()


def _verify(db: Database) -> AuditReport:
    with db.session() as s:
        return verify_chain(s)


def _log_with_scores(db: Database) -> list[int]:
    ids = write_decision_log(db)
    with db.session() as s:
        cp = s.scalars(select(Checkpoint)).one()
        repo.save_evaluation(s, cp, binary_suite_result(30, 50, started_at=NOW), "proxy")
    return ids


def _rechain(conn: Connection, signer: Signer | None = None) -> None:
    """Recompute every entry's body and chain hash from the rows as they now are, as a forger
    with write access (and, if ``signer`` is given, a key of their own) would."""
    from sqlalchemy.orm import Session

    with Session(bind=conn) as s:
        prev = ledger.GENESIS_HASH
        for decision in s.scalars(select(Decision).order_by(Decision.id)):
            fields = ledger.decision_fields(decision)
            record = repo.record_hash_of(prev, fields)
            s.execute(
                update(Decision)
                .where(Decision.id == decision.id)
                .values(prev_hash=prev, record_hash=record)
            )
            prev = record
        prev = ledger.GENESIS_HASH
        for entry in s.scalars(select(LedgerEntry).order_by(LedgerEntry.id)):
            row = s.get(ledger.MODELS[entry.kind], entry.ref_id)
            body = ledger.body_hash(entry.kind, row)
            chained = ledger.entry_hash(prev, entry.kind, entry.ref_id, body)
            values: dict[str, object] = {"body_hash": body, "prev_hash": prev}
            values["entry_hash"] = chained
            if signer is not None:
                values |= {"signature": signer.sign(chained), "key_id": signer.key_id}
            s.execute(update(LedgerEntry).where(LedgerEntry.id == entry.id).values(**values))
            prev = chained
        s.flush()


def test_a_sealed_log_signs_every_entry_and_anchors_each_commit(
    sealed: tuple[Database, Settings],
) -> None:
    db, settings = sealed
    _log_with_scores(db)
    report = _verify(db)
    assert report.ok, report.broken
    assert report.entries == report.signed == 5
    assert report.anchored == 2, "one anchored head per committing transaction"
    assert not report.notes
    anchor = (settings.home / "ledger-anchor.jsonl").read_text().splitlines()
    assert len(anchor) == 2
    key = settings.home / "ledger_key"
    assert key.stat().st_mode & 0o777 == 0o600


def test_update_and_delete_are_refused_even_for_the_owner(
    sealed: tuple[Database, Settings],
) -> None:
    db, _ = sealed
    ids = _log_with_scores(db)
    with db.session() as s:
        review = Review(checkpoint_id=1, action=ReviewAction.approve, actor="a", role="reviewer")
        s.add(review)
        s.flush()
        repo.lock_decision_log(s)
        ledger.append(s, "review", review)
    for statement in (
        "UPDATE decisions SET verdict = 'not_fired' WHERE id = :id",
        "DELETE FROM decisions WHERE id = :id",
        "UPDATE ledger SET signature = NULL WHERE id = :id",
        "DELETE FROM ledger WHERE id = :id",
        "UPDATE task_scores SET score = 0.99 WHERE id = :id",
        "DELETE FROM reviews",
        "UPDATE reviews SET comment = 'x'",
    ):
        with pytest.raises(DBAPIError, match="append-only"), db.engine.begin() as conn:
            conn.execute(text(statement), {"id": ids[0]})
    assert _verify(db).ok


def test_a_forged_append_is_caught_without_a_head(sealed: tuple[Database, Settings]) -> None:
    db, _ = sealed
    write_decision_log(db)
    # a decision and its ledger entry, chained with the project's own hash functions
    plain = Database(db.url, create=False)  # the database's credentials, not the ledger key
    with plain.session() as s:
        cp = s.scalars(select(Checkpoint)).one()
        repo.lock_decision_log(s)
        repo.append_decision(
            s,
            Decision(
                checkpoint_id=cp.id,
                policy_name="p",
                policy_hash="h",
                rule_id="forged",
                rule_type="delta",
                severity="alert",
                verdict="not_fired",
                explanation="cleared",
                inputs={},
                actions={},
            ),
        )
    plain.dispose()
    broken = _verify(db).broken
    assert broken is not None and broken.kind == "unsigned", broken
    assert "written without the ledger key" in broken.message


def test_an_append_signed_with_another_key_is_caught(
    sealed: tuple[Database, Settings], tmp_path: Path
) -> None:
    db, _ = sealed
    write_decision_log(db)
    create_key(tmp_path / "their_key")
    theirs = Settings(
        _env_file=None,
        home=tmp_path / "elsewhere",
        database_url=db.url,
        ledger_key=tmp_path / "their_key",
    )
    forger = Database.for_settings(theirs, create=False)
    write_decision_log(forger, rules=("e",))
    forger.dispose()
    broken = _verify(db).broken
    assert broken is not None and broken.kind == "forged", broken
    assert "not a trusted key" in broken.message


def test_a_rechained_forgery_is_caught_by_the_signatures(
    sealed: tuple[Database, Settings],
) -> None:
    db, _ = sealed
    ids = _log_with_scores(db)
    with as_table_owner(db.engine) as conn:
        conn.execute(
            text("UPDATE decisions SET verdict = 'not_fired' WHERE id = :id"), {"id": ids[1]}
        )
        _rechain(conn)
    broken = _verify(db).broken
    assert broken is not None and broken.kind == "forged", broken


def test_a_rechained_forgery_signed_with_another_key_is_caught(
    sealed: tuple[Database, Settings], tmp_path: Path
) -> None:
    db, _ = sealed
    ids = _log_with_scores(db)
    create_key(tmp_path / "their_key")
    forger = seal_for(
        Settings(_env_file=None, home=tmp_path / "x", ledger_key=tmp_path / "their_key"),
        writing=True,
    ).signer
    with as_table_owner(db.engine) as conn:
        conn.execute(
            text("UPDATE decisions SET verdict = 'not_fired' WHERE id = :id"), {"id": ids[1]}
        )
        _rechain(conn, forger)
    broken = _verify(db).broken
    assert broken is not None and broken.kind == "forged", broken
    assert "not a trusted key" in broken.message


def test_stripped_signatures_after_a_rechain_are_caught_by_the_anchor(
    sealed: tuple[Database, Settings],
) -> None:
    db, _ = sealed
    _log_with_scores(db)
    with as_table_owner(db.engine) as conn:
        conn.execute(text("UPDATE task_scores SET score = 0.99"))
        conn.execute(text("UPDATE ledger SET signature = NULL, key_id = NULL"))
        _rechain(conn)
    broken = _verify(db).broken
    assert broken is not None and broken.kind == "truncated", broken
    assert "rewritten" in broken.message


def test_a_deleted_tail_is_caught_without_a_head(sealed: tuple[Database, Settings]) -> None:
    db, _ = sealed
    ids = write_decision_log(db)
    with as_table_owner(db.engine) as conn:
        conn.execute(
            text("DELETE FROM ledger WHERE kind = 'decision' AND ref_id = :id"), {"id": ids[-1]}
        )
        conn.execute(text("DELETE FROM decisions WHERE id = :id"), {"id": ids[-1]})
    broken = _verify(db).broken
    assert broken is not None and broken.kind == "truncated", broken
    assert "is gone from the log" in broken.message


def test_two_logs_sharing_one_home_keep_their_own_anchored_heads(tmp_path: Path) -> None:
    """A home moved from one database to another (SQLite, then PostgreSQL) shares one key and
    one anchor: each log is judged by its own heads, and one rewritten from its first entry
    without the key is still judged by all of them."""
    first = settings_for(f"sqlite:///{tmp_path}/first.db", tmp_path)
    second = first.model_copy(update={"database_url": f"sqlite:///{tmp_path}/second.db"})
    one, two = Database.for_settings(first), Database.for_settings(second)
    write_decision_log(one, rules=("a", "b", "c", "d", "e", "f"))
    write_decision_log(two, rules=("a", "b"), decided_at=NOW + timedelta(days=1))
    for db in (one, two):
        report = _verify(db)
        assert report.broken is None, report.broken
        assert any("other log" in note for note in report.notes), report.notes
    with as_table_owner(two.engine) as conn:  # the second log rewritten unsigned from entry 1
        conn.execute(text("UPDATE ledger SET signature = NULL, key_id = NULL"))
        conn.execute(text("UPDATE decisions SET explanation = 'rewritten'"))
        _rechain(conn)
    broken = _verify(two).broken
    assert broken is not None and broken.kind == "truncated", broken
    one.dispose()
    two.dispose()


def test_an_edited_task_score_is_caught(sealed: tuple[Database, Settings]) -> None:
    db, _ = sealed
    _log_with_scores(db)
    with as_table_owner(db.engine) as conn:
        conn.execute(text("UPDATE task_scores SET score = 0.99"))
    broken = _verify(db).broken
    assert broken is not None and broken.kind == "altered" and broken.record == "evaluation"


def test_an_emptied_anchor_is_caught(sealed: tuple[Database, Settings]) -> None:
    db, settings = sealed
    write_decision_log(db)
    (settings.home / "ledger-anchor.jsonl").write_text("")
    broken = _verify(db).broken
    assert broken is not None and broken.kind == "anchor" and "restore it" in broken.message


def test_an_edited_anchor_record_is_caught(sealed: tuple[Database, Settings]) -> None:
    db, settings = sealed
    write_decision_log(db)
    anchor = settings.home / "ledger-anchor.jsonl"
    record = json.loads(anchor.read_text())
    record["entry_hash"] = "e" * 64  # pointing the anchor at another head
    anchor.write_text(json.dumps(record) + "\n")
    broken = _verify(db).broken
    assert (
        broken is not None and broken.kind == "anchor" and "the anchor was edited" in broken.message
    )


def test_an_object_store_anchor(database_url: str, tmp_path: Path) -> None:
    prefix = f"memory://anchors-{uuid.uuid4().hex[:8]}/tripwire"
    settings = settings_for(database_url, tmp_path).model_copy(update={"ledger_anchor": prefix})
    db = Database.for_settings(settings)
    ids = write_decision_log(db)
    report = _verify(db)
    assert report.ok and report.anchored == 1, report
    with as_table_owner(db.engine) as conn:
        conn.execute(
            text("DELETE FROM ledger WHERE kind = 'decision' AND ref_id = :id"), {"id": ids[-1]}
        )
        conn.execute(text("DELETE FROM decisions WHERE id = :id"), {"id": ids[-1]})
    broken = _verify(db).broken
    assert broken is not None and broken.kind == "truncated"
    db.dispose()


def test_the_commands_seal_a_legacy_log_and_an_auditor_verifies_with_the_public_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path}/audit.db"
    monkeypatch.setenv("TRIPWIRE_DATABASE_URL", url)
    monkeypatch.setenv("TRIPWIRE_HOME", str(tmp_path / "home"))
    legacy = Database(url)  # written before the ledger was sealed
    write_decision_log(legacy)
    legacy.dispose()
    runner = CliRunner()
    unsealed = runner.invoke(app, ["audit", "verify"])
    assert unsealed.exit_code == 0 and "not sealed yet" in unsealed.output, unsealed.output
    anchored = runner.invoke(app, ["audit", "anchor"])
    assert anchored.exit_code == 0 and "anchored entry 4" in anchored.output, anchored.output
    public = runner.invoke(app, ["audit", "public-key"])
    assert public.exit_code == 0 and "BEGIN PUBLIC KEY" in public.output
    (tmp_path / "ledger.pub").write_text(public.output)
    # the auditor holds no private key: only the public half and the anchor
    monkeypatch.setenv("TRIPWIRE_LEDGER_KEY", str(tmp_path / "no-such-key"))
    monkeypatch.setenv("TRIPWIRE_LEDGER_PUBLIC_KEYS", str(tmp_path / "ledger.pub"))
    monkeypatch.setenv("TRIPWIRE_LEDGER_ANCHOR", str(tmp_path / "home" / "ledger-anchor.jsonl"))
    ok = runner.invoke(app, ["audit", "verify"])
    assert ok.exit_code == 0 and "1 anchored heads" in ok.output, ok.output
    db = Database(url)
    with as_table_owner(db.engine) as conn:  # an unsigned decision appended after the anchor
        write_decision_log_in(conn)
    broken = runner.invoke(app, ["audit", "verify"])
    assert broken.exit_code == 1 and "without the ledger key" in broken.output, broken.output
    db.dispose()


def write_decision_log_in(conn: Connection) -> None:
    from sqlalchemy.orm import Session

    with Session(bind=conn) as s:
        cp = s.scalars(select(Checkpoint)).one()
        repo.append_decision(
            s,
            Decision(
                checkpoint_id=cp.id,
                policy_name="p",
                policy_hash="h",
                rule_id="late",
                rule_type="delta",
                severity="alert",
                verdict="not_fired",
                explanation="x",
                inputs={},
                actions={},
            ),
        )
        s.flush()


def test_the_application_role_may_append_but_not_rewrite(postgres_url: str, tmp_path: Path) -> None:
    from tests.conftest import reset_postgres

    reset_postgres(postgres_url)
    owner = Database(postgres_url)  # migrations run as the owner
    role = f"tripwire_app_{uuid.uuid4().hex[:8]}"
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE ROLE {role} LOGIN"))
    try:
        runner = CliRunner()
        granted = runner.invoke(
            app, ["db", "grant", role], env={"TRIPWIRE_DATABASE_URL": postgres_url}
        )
        assert granted.exit_code == 0, granted.output
        app_url = postgres_url.replace("postgres@", f"{role}@", 1)
        settings = settings_for(app_url, tmp_path)
        service = Database.for_settings(settings)  # at head: the app role need not migrate
        ids = write_decision_log(service)  # also updates log_lock, a working table
        for statement in (
            "UPDATE decisions SET verdict = 'not_fired' WHERE id = :id",
            "DELETE FROM ledger WHERE id = :id",
            "UPDATE task_scores SET score = 0 WHERE id = :id",
            "TRUNCATE decisions CASCADE",
        ):
            with (
                pytest.raises(DBAPIError, match="permission denied"),
                service.engine.begin() as conn,
            ):
                conn.execute(text(statement), {"id": ids[0]})
        assert _verify(service).ok
        service.dispose()
    finally:
        owner.dispose()
        with admin.connect() as conn:
            conn.execute(text(f"DROP OWNED BY {role}"))
            conn.execute(text(f"DROP ROLE {role}"))
        admin.dispose()
