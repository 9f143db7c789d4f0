"""Notifications: a durable outbox in the database, drained by a sender with retries.

Producers (a fired rule with ``notify`` channels, a failed job, a review hold, an overdue
review) call :func:`enqueue` in the transaction that records what happened, so a message exists
exactly when its cause does. The sender (``tripwire.notify.sender``) delivers each row to its
channel and marks it sent; ``key`` travels with it as an idempotency key, so a message sent again
after a crash between sending and marking is recognised by the receiver as the same one.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tripwire.store.models import Notification

EVENTS = ("rule_fired", "job_failed", "review_hold", "review_overdue")
"""What a notification is about."""


def enqueue(
    session: Session,
    *,
    key: str,
    event: str,
    channels: list[str],
    payload: dict[str, Any],
    checkpoint_id: int | None = None,
) -> list[Notification]:
    """One outbox row per channel, keyed ``<key>:<channel>``; a key already queued is left as it
    is (enqueueing twice sends once). Returns the rows created."""
    if event not in EVENTS:
        raise ValueError(f"unknown notification event {event!r}; allowed: {', '.join(EVENTS)}")
    created = []
    for channel in dict.fromkeys(channels):
        full = f"{key}:{channel}"
        if session.scalar(select(Notification.id).where(Notification.key == full)) is not None:
            continue
        try:
            with session.begin_nested():
                row = Notification(
                    key=full,
                    event=event,
                    channel=channel,
                    checkpoint_id=checkpoint_id,
                    payload=payload,
                )
                session.add(row)
            created.append(row)
        except IntegrityError:
            continue
    return created
