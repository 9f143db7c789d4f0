"""Commands that read the store: ``report``, ``audit verify``, ``db``."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from tripwire.cli.app import (
    app,
    audit_app,
    console,
    db_app,
    err,
    fail,
    services_in_one_line,
    settings_for,
)
from tripwire.errors import TripwireError

if TYPE_CHECKING:
    pass


@app.command()
@services_in_one_line
def report(
    out: Annotated[Path | None, typer.Option(help="Folder; default TRIPWIRE_REPORT_DIR.")] = None,
) -> None:
    """Write the report pages of every checkpoint and run from the stored decision records.

    Nothing is decided again: the pages say what the live loop (and any `tripwire decide`)
    recorded, whatever policy file is around.
    """
    from tripwire.reports.build import write_all_reports
    from tripwire.store.db import Database

    settings = settings_for()
    try:
        db = Database.for_settings(settings, writing=False)
        with db.session() as session:
            index = write_all_reports(session, out or settings.resolved_report_dir())
    except TripwireError as exc:
        raise fail(exc) from None
    console.print(f"report: {index}")


@audit_app.command("verify")
@services_in_one_line
def audit_verify(
    head: Annotated[
        str | None, typer.Option(help="A head hash printed earlier: fail if it is gone.")
    ] = None,
) -> None:
    """Recompute the log's hash chains; name the first altered, removed or unlogged record."""
    from tripwire.audit import verify_chain
    from tripwire.store.db import Database

    settings = settings_for()
    try:
        db = Database.for_settings(settings, writing=False)
        with db.session() as session:
            result = verify_chain(session, expected_head=head)
    except TripwireError as exc:
        raise fail(exc) from None
    if result.broken is not None:
        err.print(f"[bold red]broken:[/] {result.broken.message}", highlight=False, soft_wrap=True)
        err.print(
            f"{result.entries} log entries and {result.checked} decisions verified before it",
            highlight=False,
        )
        raise typer.Exit(code=1)
    console.print(
        f"log intact: {result.entries} entries (decisions, reviews, evaluations), "
        f"{result.signed} signatures and {result.anchored} anchored heads verified, and "
        f"{result.checked} decisions' own chain; head {result.head}",
        highlight=False,
        soft_wrap=True,
    )
    for note in result.notes:
        console.print(f"note: {note}", highlight=False, soft_wrap=True)


@audit_app.command("anchor")
@services_in_one_line
def audit_anchor() -> None:
    """Sign the ledger's current head and append it to the anchor.

    Heads are anchored after every commit; run this once on a log written before the ledger
    was sealed (it vouches for the log as it stands, so verify it first), or after restoring
    the anchor.
    """
    from tripwire.audit import verify_chain
    from tripwire.store import ledger
    from tripwire.store.db import Database

    settings = settings_for()
    try:
        db = Database.for_settings(settings)
        seal = db.seal
        if seal is None or seal.signer is None or seal.anchor is None:
            raise TripwireError("the ledger is not sealed here (TRIPWIRE_LEDGER_SIGNING=false)")
        with db.session() as session:
            checked = verify_chain(session, seal=replace(seal, anchor=None))
            if checked.broken is not None:
                raise TripwireError(
                    f"not anchoring a log that does not verify: {checked.broken.message}"
                )
            head = ledger.head(session)
            start = ledger.first(session)
        if head is None or start is None:
            console.print("the ledger is empty: nothing to anchor")
            return
        seal.anchor_head(
            head.id, head.entry_hash, seal.signer.sign(head.entry_hash), start.entry_hash
        )
    except TripwireError as exc:
        raise fail(exc) from None
    console.print(
        f"anchored entry {head.id} ({head.entry_hash}) at {seal.anchor.location}",
        highlight=False,
        soft_wrap=True,
    )


@audit_app.command("public-key")
def audit_public_key() -> None:
    """Print the ledger key's public half (PEM), for auditors' TRIPWIRE_LEDGER_PUBLIC_KEYS."""
    from tripwire.store.seal import public_pem, seal_for

    try:
        seal = seal_for(settings_for(), writing=True)
    except TripwireError as exc:
        raise fail(exc) from None
    if seal.signer is None:
        raise fail(TripwireError("the ledger is not sealed here (TRIPWIRE_LEDGER_SIGNING=false)"))
    print(public_pem(seal.signer.public), end="")


@db_app.command("upgrade")
@services_in_one_line
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Migrate TRIPWIRE_DATABASE_URL to the latest schema (safe to run from many hosts)."""
    from tripwire.store.db import make_engine
    from tripwire.store.migrate import current_revision, upgrade

    engine = make_engine(settings_for().resolved_database_url())
    before = upgrade(engine, revision)
    console.print(f"database at revision {current_revision(engine)} (was {before or 'empty'})")


@db_app.command("grant")
@services_in_one_line
def db_grant(
    role: Annotated[str, typer.Argument(help="The PostgreSQL role the services run as.")],
) -> None:
    """Let ROLE append to the decision log but never change or delete it (PostgreSQL).

    Run as the tables' owner (the role that runs `tripwire db upgrade`), after each upgrade.
    """
    from tripwire.store.append_only import grant_app_role
    from tripwire.store.db import make_engine

    engine = make_engine(settings_for().resolved_database_url())
    try:
        with engine.begin() as connection:
            statements = grant_app_role(connection, role)
    except TripwireError as exc:
        raise fail(exc) from None
    finally:
        engine.dispose()
    for statement in statements:
        console.print(statement, highlight=False, soft_wrap=True)


@db_app.command("current")
@services_in_one_line
def db_current() -> None:
    """Print the database's schema revision and the latest one."""
    from tripwire.store.db import make_engine
    from tripwire.store.migrate import current_revision, head_revision

    engine = make_engine(settings_for().resolved_database_url())
    console.print(f"current {current_revision(engine) or 'none'} · head {head_revision()}")
