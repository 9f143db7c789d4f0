"""``tripwire token create|list|revoke``: API tokens, straight against the database
(``TRIPWIRE_DATABASE_URL``)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from tripwire.cli.app import app, console, err, fail, services_in_one_line, settings_for
from tripwire.errors import TripwireError
from tripwire.store.models import Role, utcnow

token_app = typer.Typer(
    help="API tokens for the review app (viewer, reviewer, admin).", no_args_is_help=True
)
app.add_typer(token_app, name="token")


@token_app.command("create")
@services_in_one_line
def token_create(
    name: Annotated[str, typer.Option(help="Who holds it; review actions are attributed to it.")],
    role: Annotated[Role, typer.Option(help="viewer reads; reviewer also acts; admin too.")],
) -> None:
    """Make a token and print it once (only its sha256 is stored)."""
    from tripwire import tokens
    from tripwire.store.db import Database

    db = Database.for_settings(settings_for())
    try:
        with db.session() as session:
            _, token = tokens.create_token(session, name=name, role=role)
    except TripwireError as exc:
        raise fail(exc) from None
    finally:
        db.dispose()
    err.print(
        f"token for {name.strip()} ({role}); shown once, store it now "
        "(use it as TRIPWIRE_TOKEN, a Bearer header, or at /login):",
        highlight=False,
        soft_wrap=True,
    )
    print(token)


@token_app.command("list")
@services_in_one_line
def token_list() -> None:
    """Every token: name, role, the first characters, when created, last used, revoked."""
    from tripwire import tokens
    from tripwire.reports.views import timestamp
    from tripwire.store.db import Database

    db = Database.for_settings(settings_for())
    try:
        with db.session() as session:
            rows = tokens.list_tokens(session)
            table = Table("name", "role", "token starts", "created", "last used", "revoked")
            for row in rows:
                table.add_row(
                    row.name,
                    str(row.role),
                    f"{row.prefix}…",
                    timestamp(row.created_at),
                    timestamp(row.last_used_at) if row.last_used_at else "never",
                    timestamp(row.revoked_at) if row.revoked_at else "",
                )
    finally:
        db.dispose()
    if not rows:
        console.print("no tokens; make one with `tripwire token create --name NAME --role ROLE`")
        return
    console.print(table)


@token_app.command("revoke")
@services_in_one_line
def token_revoke(
    name: Annotated[str, typer.Argument(help="The token's name.")],
) -> None:
    """Refuse the token from now on (its browser sessions end at their next request)."""
    from tripwire import tokens
    from tripwire.store.db import Database

    db = Database.for_settings(settings_for())
    try:
        with db.session() as session:
            row = tokens.revoke_token(session, name, utcnow())
            revoked_at = row.revoked_at
    except TripwireError as exc:
        raise fail(exc) from None
    finally:
        db.dispose()
    console.print(f"revoked {name} (at {revoked_at:%Y-%m-%d %H:%M:%S} UTC)", highlight=False)
