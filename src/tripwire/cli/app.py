"""The ``tripwire`` application object and what every command shares: one-line errors,
settings, the consoles."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, ParamSpec

import typer
from rich.console import Console

from tripwire.errors import BrokerError, StoreError, TripwireError
from tripwire.offline import enforce_offline
from tripwire.settings import Settings, compose_hint, shown_url

if TYPE_CHECKING:
    pass

enforce_offline()

app = typer.Typer(
    help="Capability triggers for AI-safety evaluations.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
policy_app = typer.Typer(help="Validate and inspect trigger policies.", no_args_is_help=True)
app.add_typer(policy_app, name="policy")
audit_app = typer.Typer(help="Check the decision log.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")
db_app = typer.Typer(help="Database schema migrations (Alembic).", no_args_is_help=True)
app.add_typer(db_app, name="db")
cache_app = typer.Typer(help="The response cache of model answers.", no_args_is_help=True)
app.add_typer(cache_app, name="cache")
system_app = typer.Typer(
    help="Served systems (OpenAI-compatible endpoints) as subjects.", no_args_is_help=True
)
app.add_typer(system_app, name="system")
console = Console(width=None if sys.stdout.isatty() else 160)  # piped: no 80-column wrap
err = Console(stderr=True)


def fail(exc: TripwireError) -> typer.Exit:
    err.print(f"[bold red]error:[/] {exc}", highlight=False, markup=True, soft_wrap=True)
    return typer.Exit(code=2)


P = ParamSpec("P")


def services_in_one_line(command: Callable[P, None]) -> Callable[P, None]:
    """An unreachable database or broker ends the command with one line naming the setting
    and the host (never a password) and a non-zero exit, instead of a traceback."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            command(*args, **kwargs)
        except Exception as exc:
            unreachable = _unreachable(exc)
            if unreachable is None:
                raise
            raise fail(unreachable) from None

    return wrapper


def _unreachable(exc: Exception) -> TripwireError | None:
    """``exc`` as a one-line error if it says the database or the broker cannot be reached."""
    import kombu.exceptions
    import redis.exceptions
    import sqlalchemy.exc

    settings = Settings()
    if isinstance(exc, sqlalchemy.exc.OperationalError | sqlalchemy.exc.InterfaceError):
        url = settings.resolved_database_url()
        detail = _redacted(str(exc.orig or exc).strip().splitlines()[0], url)
        return StoreError(
            f"cannot reach the database at {shown_url(url)} (TRIPWIRE_DATABASE_URL): {detail}"
            f"{compose_hint(url)}"
        )
    broker_errors = (
        kombu.exceptions.OperationalError,
        redis.exceptions.ConnectionError,
        redis.exceptions.TimeoutError,
    )
    if isinstance(exc, broker_errors) and settings.broker_url:
        detail = _redacted(str(exc).strip().splitlines()[0], settings.broker_url)
        return BrokerError(
            f"cannot reach the broker at {shown_url(settings.broker_url)} "
            f"(TRIPWIRE_BROKER_URL): {detail}{compose_hint(settings.broker_url)}"
        )
    return None


def _redacted(message: str, url: str) -> str:
    from urllib.parse import urlsplit

    password = urlsplit(url).password
    return message.replace(password, "***") if password else message


def settings_for(policy: Path | None = None) -> Settings:
    settings = Settings()
    if policy is not None:
        settings.policy = policy
    return settings
