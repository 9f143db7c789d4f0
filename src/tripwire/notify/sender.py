"""The outbox sender: claim a due notification, deliver it, mark it sent; retry with backoff.

Three short transactions per message, never one held open across the network:

1. **claim**: one ``UPDATE`` takes the oldest due row (``pending``, ``next_attempt_at <= now``),
   counts the attempt and moves ``next_attempt_at`` past ``claim_s``. On PostgreSQL the row is
   picked with ``FOR UPDATE SKIP LOCKED``, so two senders never take the same row; on SQLite
   the ``UPDATE`` takes the database's write lock. Until the claim runs out no other sender
   sees the row as due.
2. **deliver** to the channel, with the row's key as idempotency key.
3. **mark** it ``sent``, or record the error and the next attempt (backoff doubled each time
   from ``backoff_s`` to ``backoff_max_s``), or ``failed`` after ``max_attempts`` attempts or
   ``give_up_after_s`` since it was queued. The update applies only if the row still holds this
   claim's attempt count, so a sender whose claim ran out cannot overwrite a later one.

A sender that dies between 2 and 3 leaves the row pending: when the claim runs out it is sent
again with the same key, which the receiver recognises (at least once to the wire, exactly once
to a receiver that honours the key). ``docs/operations.md`` (Notifications) has the details.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, cast

from pydantic import ValidationError
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from tripwire.errors import DeliveryError
from tripwire.jobs.retry import backoff_s
from tripwire.notify.channels import Outgoing, deliver
from tripwire.notify.config import NotifyConfig, load_notify_config
from tripwire.notify.message import Event, Message, checkpoint_link
from tripwire.notify.producers import enqueue_overdue
from tripwire.settings import Settings
from tripwire.store.db import Database
from tripwire.store.models import Notification, NotificationState, utcnow

log = logging.getLogger(__name__)

ERROR_CHARS = 1000
"""``last_error`` is cut to this length."""
OVERDUE_EVERY_S = 60.0
"""How often a running sender looks for overdue reviews (a scan of fired decisions)."""


@dataclass(frozen=True, slots=True)
class Claimed:
    """A notification this sender has claimed, detached from any session."""

    id: int
    key: str
    event: str
    channel: str
    payload: dict[str, Any]
    attempts: int
    """The attempt count this claim set: the fence for marking the row."""
    created_at: datetime


@dataclass
class SendSummary:
    """What one pass over the due notifications did."""

    sent: int = 0
    retrying: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)
    """``key: error`` for each delivery that did not succeed in this pass."""

    @property
    def attempted(self) -> int:
        return self.sent + self.retrying + self.failed


AfterSend = Callable[[Claimed], None]
"""Called after a delivery succeeded and before it is marked sent (tests inject a crash)."""


class OutboxSender:
    """Delivers due outbox rows to the channels of ``config``.

    ``config`` None (no ``TRIPWIRE_NOTIFY_CONFIG``): nothing is delivered; rows wait, pending.
    ``env`` is where secrets are read (``os.environ`` at each delivery when None); ``clock``
    gives "now".
    """

    def __init__(
        self,
        db: Database,
        config: NotifyConfig | None,
        *,
        config_path: Path | None = None,
        public_url: str | None = None,
        backoff_s: float = 30.0,
        backoff_max_s: float = 3600.0,
        max_attempts: int = 30,
        give_up_after_s: float = 24 * 3600.0,
        claim_s: float = 300.0,
        overdue_h: float | None = 24.0,
        env: Mapping[str, str] | None = None,
        clock: Callable[[], datetime] = utcnow,
        after_send: AfterSend | None = None,
    ) -> None:
        self.db = db
        self.config = config
        self.config_path = config_path
        self.public_url = public_url
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        self.max_attempts = max_attempts
        self.give_up_after_s = give_up_after_s
        self.claim_s = claim_s
        self.overdue_h = overdue_h
        self.env = env
        self.clock = clock
        self.after_send = after_send
        self._overdue_checked: float | None = None

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        db: Database,
        *,
        config: NotifyConfig | None = None,
        after_send: AfterSend | None = None,
    ) -> OutboxSender:
        """A sender as ``TRIPWIRE_*`` configure it, with ``config`` if it was read already;
        raises ``NotifyConfigError`` on a bad file."""
        path = settings.notify_config
        if config is None and path is not None:
            config = load_notify_config(path)
        return cls(
            db,
            config,
            config_path=path,
            public_url=settings.public_url,
            backoff_s=settings.notify_backoff_s,
            backoff_max_s=settings.notify_backoff_max_s,
            max_attempts=settings.notify_max_attempts,
            give_up_after_s=settings.notify_give_up_after_s,
            claim_s=settings.notify_claim_s,
            overdue_h=settings.review_overdue_h,
            after_send=after_send,
        )

    def check_channels(self, names: list[str]) -> list[str]:
        """Warnings for channel names that notifications will be queued to and that the
        channels file does not define (such notifications fail)."""
        if self.config is None:
            return []
        unknown = sorted(set(names) - set(self.config.channels))
        if not unknown:
            return []
        return [
            f"notification channel {', '.join(unknown)} is not defined in {self.config_path}; "
            f"such notifications will fail (defined: {', '.join(sorted(self.config.channels))})"
        ]

    # ------------------------------------------------------------ the loop

    def tick(self) -> SendSummary:
        """One turn of a running service: look for overdue reviews (at most once a minute),
        then deliver what is due."""
        started = time.monotonic()
        if self.overdue_h is not None and (
            self._overdue_checked is None or started - self._overdue_checked >= OVERDUE_EVERY_S
        ):
            self._overdue_checked = started
            with self.db.session() as session:
                enqueue_overdue(session, self.clock(), self.overdue_h)
        return self.drain()

    def drain(self, *, limit: int = 100, budget_s: float | None = 30.0) -> SendSummary:
        """Deliver due rows one by one until none is due, ``limit`` were tried, or ``budget_s``
        seconds have passed (so that a slow channel cannot stall the loop that calls it)."""
        summary = SendSummary()
        if self.config is None:
            return summary
        started = time.monotonic()
        while summary.attempted < limit:
            if budget_s is not None and time.monotonic() - started > budget_s:
                break
            claimed = self.claim()
            if claimed is None:
                break
            self._send(claimed, summary)
        return summary

    # ------------------------------------------------------------ the three steps

    def claim(self) -> Claimed | None:
        """Take the oldest due row for ``claim_s`` and count the attempt (transaction 1)."""
        now = self.clock()
        due = (
            select(Notification.id)
            .where(
                Notification.state == NotificationState.pending,
                Notification.next_attempt_at <= now,
            )
            .order_by(Notification.next_attempt_at, Notification.id)
            .limit(1)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        with self.db.session() as session:
            row = session.execute(
                update(Notification)
                .where(
                    Notification.id == due,
                    Notification.state == NotificationState.pending,
                    Notification.next_attempt_at <= now,
                )
                .values(
                    attempts=Notification.attempts + 1,
                    next_attempt_at=now + timedelta(seconds=self.claim_s),
                )
                .returning(
                    Notification.id,
                    Notification.key,
                    Notification.event,
                    Notification.channel,
                    Notification.payload,
                    Notification.attempts,
                    Notification.created_at,
                )
                .execution_options(synchronize_session=False)
            ).first()
        return Claimed(*row) if row is not None else None

    def _send(self, claimed: Claimed, summary: SendSummary) -> None:
        assert self.config is not None
        channel = self.config.channels.get(claimed.channel)
        if channel is None:
            known = ", ".join(sorted(self.config.channels)) or "none"
            self._failed(
                claimed,
                f"channel {claimed.channel!r} is not defined in {self.config_path or 'the config'}"
                f" (TRIPWIRE_NOTIFY_CONFIG); defined: {known}",
                summary,
                give_up=True,
            )
            return
        try:
            deliver(
                claimed.channel,
                channel,
                outgoing(claimed.key, claimed.event, claimed.payload, self.public_url),
                os.environ if self.env is None else self.env,
                now=self.clock().timestamp(),
            )
        except DeliveryError as exc:
            self._failed(claimed, str(exc), summary, retry_after_s=exc.retry_after_s)
            return
        except Exception as exc:  # a bug in rendering or sending: keep the queue moving
            log.exception("notification %s: unexpected error", claimed.key)
            self._failed(claimed, f"unexpected {type(exc).__name__}: {exc}", summary)
            return
        if self.after_send is not None:
            self.after_send(claimed)
        self._mark_sent(claimed, summary)

    def _mark_sent(self, claimed: Claimed, summary: SendSummary) -> None:
        """Transaction 3 after a delivery: ``sent``, if the row still holds this claim."""
        with self.db.session() as session:
            done = _fenced(claimed).values(
                state=NotificationState.sent, sent_at=self.clock(), last_error=None
            )
            marked = session.execute(done).rowcount  # type: ignore[attr-defined]
        summary.sent += 1
        if marked:
            log.info("notification %s sent to %s", claimed.key, claimed.channel)
        else:  # our claim ran out while sending; another sender took the row (same key)
            log.warning("notification %s sent, but another sender had taken it", claimed.key)

    def _failed(
        self,
        claimed: Claimed,
        error: str,
        summary: SendSummary,
        *,
        give_up: bool = False,
        retry_after_s: float | None = None,
    ) -> None:
        """Transaction 3 after a failed delivery: retry later, or fail the row for good."""
        now = self.clock()
        age_s = (now - claimed.created_at).total_seconds()
        give_up = give_up or claimed.attempts >= self.max_attempts or age_s >= self.give_up_after_s
        delay_s = backoff_s(claimed.attempts, self.backoff_s, self.backoff_max_s)
        if retry_after_s is not None:
            delay_s = max(delay_s, min(retry_after_s, self.backoff_max_s))
        state = NotificationState.failed if give_up else NotificationState.pending
        text = f"attempt {claimed.attempts}: {error}"[:ERROR_CHARS]
        with self.db.session() as session:
            session.execute(
                _fenced(claimed).values(
                    state=state,
                    last_error=text,
                    next_attempt_at=now + timedelta(seconds=delay_s),
                )
            )
        summary.errors.append(f"{claimed.key}: {error}")
        if give_up:
            summary.failed += 1
            log.error("notification %s failed for good: %s", claimed.key, text)
        else:
            summary.retrying += 1
            log.warning("notification %s: %s; next attempt in %.0f s", claimed.key, text, delay_s)


def _fenced(claimed: Claimed) -> Any:
    """An update of ``claimed``'s row that applies only while it is pending under this claim."""
    return (
        update(Notification)
        .where(
            Notification.id == claimed.id,
            Notification.state == NotificationState.pending,
            Notification.attempts == claimed.attempts,
        )
        .execution_options(synchronize_session=False)
    )


def outgoing(key: str, event: str, payload: dict[str, Any], public_url: str | None) -> Outgoing:
    """A stored payload as a message to send. Payloads written by other producers (reviews)
    may lack fields: what is missing is filled in, and anything unreadable is passed on as
    ``details``."""
    title = event.replace("_", " ")
    try:
        message = Message.model_validate({"title": title, **payload, "event": event})
    except ValidationError:
        message = Message(event=cast(Event, event), title=title, details={"payload": payload})
    return Outgoing(key=key, message=message, link=checkpoint_link(public_url, message.checkpoint))


def counts_by_state(session: Session) -> dict[NotificationState, int]:
    """Outbox rows by state, zeros included."""
    found = {
        NotificationState(state): n
        for state, n in session.execute(
            select(Notification.state, func.count()).group_by(Notification.state)
        ).tuples()
    }
    return {state: int(found.get(state, 0)) for state in NotificationState}
