"""Commands about notifications: ``notify send``, ``notify list``, ``notify test``."""

from __future__ import annotations

import os
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from tripwire.cli.app import app, console, err, fail, services_in_one_line, settings_for
from tripwire.errors import DeliveryError, TripwireError
from tripwire.store.models import NotificationState

if TYPE_CHECKING:
    from tripwire.notify.sender import SendSummary

notify_app = typer.Typer(
    help="The notification outbox: send, list, test a channel.", no_args_is_help=True
)
app.add_typer(notify_app, name="notify")


@notify_app.command("send")
@services_in_one_line
def send(
    once: Annotated[
        bool, typer.Option(help="Send what is due now and exit (1 if a delivery failed).")
    ] = False,
    interval_s: Annotated[
        float | None,
        typer.Option(min=0.1, help="Seconds between passes; default TRIPWIRE_SCAN_INTERVAL_S."),
    ] = None,
) -> None:
    """Deliver due notifications (and queue overdue-review reminders) until stopped.

    `tripwire watch` does this at every scan already; run this where no watcher runs, or to
    drain the outbox by hand. Any number may run at once: each row is claimed by one sender.
    """
    from tripwire.notify.sender import OutboxSender
    from tripwire.store.db import Database

    settings = settings_for()
    if settings.notify_config is None:
        raise fail(
            TripwireError(
                "TRIPWIRE_NOTIFY_CONFIG is not set: name the channels file "
                "(docs/operations.md, Notifications)"
            )
        )
    try:
        db = Database.for_settings(settings)
        sender = OutboxSender.from_settings(settings, db)
    except TripwireError as exc:
        raise fail(exc) from None
    if once:
        summary = sender.tick()
        _print_summary(summary)
        raise typer.Exit(code=1 if summary.retrying or summary.failed else 0)
    interval = interval_s or settings.scan_interval_s
    console.print(
        f"sending notifications from {settings.notify_config} every {interval:g} s "
        f"({len(sender.config.channels) if sender.config else 0} channels); Ctrl-C stops"
    )
    stop = threading.Event()
    try:
        while not stop.is_set():
            started = time.monotonic()
            summary = sender.tick()
            if summary.attempted:
                _print_summary(summary)
            stop.wait(max(interval - (time.monotonic() - started), 0.0))
    except KeyboardInterrupt:
        stop.set()


def _print_summary(summary: SendSummary) -> None:
    console.print(
        f"sent {summary.sent}, retrying {summary.retrying}, failed {summary.failed}",
        highlight=False,
    )
    for line in summary.errors:
        err.print(f"[yellow]not delivered:[/] {line}", highlight=False, soft_wrap=True)


@notify_app.command("list")
@services_in_one_line
def list_command(
    state: Annotated[
        NotificationState | None, typer.Option(help="Only rows in this state.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="Newest rows shown.")] = 50,
) -> None:
    """The outbox's rows, newest first, with their attempts and last error."""
    from sqlalchemy import select

    from tripwire.notify.sender import counts_by_state
    from tripwire.store.db import Database
    from tripwire.store.models import Notification

    settings = settings_for()
    db = Database.for_settings(settings)
    with db.session() as session:
        query = select(Notification).order_by(Notification.id.desc()).limit(limit)
        if state is not None:
            query = query.where(Notification.state == state)
        rows = list(session.scalars(query))
        counts = counts_by_state(session)
    table = Table(title="notifications")
    for column in ("id", "key", "event", "channel", "state", "attempts", "when", "last error"):
        table.add_column(column, overflow="fold")
    for row in rows:
        when = row.sent_at if row.state == NotificationState.sent else row.next_attempt_at
        table.add_row(
            str(row.id),
            row.key,
            row.event,
            row.channel,
            row.state.value,
            str(row.attempts),
            _when(when, row.state),
            row.last_error or "",
        )
    console.print(table)
    console.print(", ".join(f"{n} {s.value}" for s, n in counts.items()), highlight=False)


def _when(moment: datetime | None, state: NotificationState) -> str:
    if moment is None:
        return ""
    text = moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    return {NotificationState.sent: "sent ", NotificationState.pending: "next "}.get(
        state, "last "
    ) + text


@notify_app.command("test")
def test(
    channel: Annotated[str, typer.Argument(help="A channel name from TRIPWIRE_NOTIFY_CONFIG.")],
) -> None:
    """Send a test message to one channel now (not through the outbox); exit 1 if it fails."""
    from tripwire.notify.channels import Outgoing, deliver
    from tripwire.notify.config import load_notify_config
    from tripwire.notify.message import Message

    settings = settings_for()
    if settings.notify_config is None:
        raise fail(TripwireError("TRIPWIRE_NOTIFY_CONFIG is not set: name the channels file"))
    try:
        config = load_notify_config(settings.notify_config)
    except TripwireError as exc:
        raise fail(exc) from None
    target = config.channels.get(channel)
    if target is None:
        known = ", ".join(sorted(config.channels)) or "none"
        raise fail(
            TripwireError(
                f"channel {channel!r} is not defined in {settings.notify_config}; defined: {known}"
            )
        )
    key = f"test:{uuid.uuid4().hex}:{channel}"
    message = Message(
        event="test",
        title=f"Tripwire test message to {channel}",
        explanation="If you can read this, the channel works.",
    )
    try:
        deliver(channel, target, Outgoing(key, message), os.environ, now=time.time())
    except DeliveryError as exc:
        err.print(f"[bold red]not delivered:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(code=1) from None
    console.print(f"delivered to {channel} ({target.type}); idempotency key {key}")
