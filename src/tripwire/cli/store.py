"""Commands that read the store: ``report``, ``audit verify``, ``db``."""

from __future__ import annotations

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
        db = Database(settings.resolved_database_url())
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
        db = Database(settings.resolved_database_url())
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
        f"log intact: {result.entries} entries (decisions, reviews, evaluations) and "
        f"{result.checked} decisions' own chain; head {result.head} "
        "(keep it elsewhere and pass it back with --head to detect truncation)",
        highlight=False,
        soft_wrap=True,
    )


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


@db_app.command("current")
@services_in_one_line
def db_current() -> None:
    """Print the database's schema revision and the latest one."""
    from tripwire.store.db import make_engine
    from tripwire.store.migrate import current_revision, head_revision

    engine = make_engine(settings_for().resolved_database_url())
    console.print(f"current {current_revision(engine) or 'none'} · head {head_revision()}")
