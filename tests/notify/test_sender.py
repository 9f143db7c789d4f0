"""The outbox sender: a receiver that is down gets each notification exactly once when it
returns; a crash between sending and marking resends with the same key; backoff, caps, and two
senders at once."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.notify.conftest import Clock, write_config
from tests.notify.receivers import HttpReceiver
from tripwire.notify import enqueue
from tripwire.notify.config import load_notify_config
from tripwire.notify.sender import Claimed, OutboxSender, counts_by_state
from tripwire.store.db import Database
from tripwire.store.models import Notification, NotificationState

SLACK_TOKEN = "T0001/B0002/XyZsecretTOKEN"
SECRET = "webhook-signing-key"


def _config(tmp_path: Path, receiver: HttpReceiver) -> Path:
    return write_config(
        tmp_path,
        f"""\
channels:
  safety-team:
    type: slack
    url_env: SLACK_URL
    timeout_s: 5
  audit:
    type: webhook
    url: {receiver.url("/audit")}
    secret_env: HOOK_SECRET
    timeout_s: 5
""",
    )


def _sender(
    db: Database, path: Path, receiver: HttpReceiver, clock: Clock, **kwargs: object
) -> OutboxSender:
    env = {"SLACK_URL": receiver.url(f"/services/{SLACK_TOKEN}"), "HOOK_SECRET": SECRET}
    options: dict[str, object] = {"backoff_s": 30.0, "backoff_max_s": 3600.0, **kwargs}
    return OutboxSender(
        db,
        load_notify_config(path),
        config_path=path,
        env=env,
        clock=clock,
        public_url="https://tripwire.example.org",
        **options,  # type: ignore[arg-type]
    )


def _queue(db: Database, n: int, channels: list[str]) -> None:
    with db.session() as s:
        for i in range(n):
            enqueue(
                s,
                key=f"rule_fired:{i}",
                event="rule_fired",
                channels=channels,
                payload={
                    "title": f"critical trigger fired: r{i}",
                    "checkpoint": f"sha256:{i:064d}",
                    "severity": "critical",
                },
            )


def _rows(db: Database) -> list[Notification]:
    with db.session() as s:
        return list(s.scalars(select(Notification).order_by(Notification.id)))


def test_a_receiver_that_is_down_gets_each_notification_exactly_once_when_it_returns(
    db: Database, tmp_path: Path, receiver: HttpReceiver, clock: Clock
) -> None:
    sender = _sender(db, _config(tmp_path, receiver), receiver, clock)
    _queue(db, 3, ["safety-team", "audit"])

    down = sender.drain()
    assert (down.sent, down.retrying, down.failed) == (0, 6, 0)
    for row in _rows(db):
        assert row.state == NotificationState.pending and row.attempts == 1
        assert f"cannot reach http://127.0.0.1:{receiver.port}" in (row.last_error or "")
        assert SLACK_TOKEN not in (row.last_error or "")  # the Slack URL is a secret
        assert (row.next_attempt_at - clock.now).total_seconds() == pytest.approx(30, abs=1)
    clock.advance(10)
    assert sender.drain().attempted == 0, "a row was tried again before its backoff ended"

    receiver.start()
    clock.advance(25)
    up = sender.drain()
    assert (up.sent, up.retrying, up.failed) == (6, 0, 0)
    assert len(receiver.requests) == 6 and len(receiver.accepted()) == 6
    assert sorted(receiver.keys()) == sorted(row.key for row in _rows(db))
    assert all(row.state == NotificationState.sent and row.attempts == 2 for row in _rows(db))

    clock.advance(2 * 24 * 3600)  # long after: nothing is sent again
    assert sender.drain().attempted == 0
    assert len(receiver.requests) == 6
    with db.session() as s:
        assert counts_by_state(s) == {
            NotificationState.pending: 0,
            NotificationState.sent: 6,
            NotificationState.failed: 0,
        }


class Crash(Exception):
    """The sender process dies after the receiver took the message, before it is marked."""


def test_a_crash_between_sending_and_marking_sends_again_with_the_same_key(
    db: Database, tmp_path: Path, receiver: HttpReceiver, clock: Clock
) -> None:
    path = _config(tmp_path, receiver)
    receiver.start()
    _queue(db, 1, ["audit"])

    def crash(_: Claimed) -> None:
        raise Crash

    doomed = _sender(db, path, receiver, clock, after_send=crash, claim_s=120)
    with pytest.raises(Crash):
        doomed.drain()
    (row,) = _rows(db)
    assert (row.state, row.attempts, row.sent_at) == (NotificationState.pending, 1, None)
    assert len(receiver.requests) == 1

    restarted = _sender(db, path, receiver, clock, claim_s=120)
    assert restarted.drain().attempted == 0, "the claim had not run out yet"
    clock.advance(121)
    assert restarted.drain().sent == 1
    (row,) = _rows(db)
    assert (row.state, row.attempts) == (NotificationState.sent, 2)
    assert receiver.keys() == ["rule_fired:0:audit", "rule_fired:0:audit"]
    assert list(receiver.accepted()) == ["rule_fired:0:audit"]  # counted once by the receiver
    first, second = receiver.requests
    assert first.body == second.body  # the same message; only the signature's time may differ


def test_the_backoff_doubles_up_to_its_cap_and_the_row_fails_after_the_last_attempt(
    db: Database, tmp_path: Path, receiver: HttpReceiver, clock: Clock
) -> None:
    receiver.status, receiver.answer = 500, b"boom"
    receiver.start()
    sender = _sender(
        db, _config(tmp_path, receiver), receiver, clock, backoff_max_s=100, max_attempts=4
    )
    _queue(db, 1, ["audit"])
    pauses = []
    for _ in range(3):
        assert sender.drain().retrying == 1
        (row,) = _rows(db)
        pauses.append(round((row.next_attempt_at - clock.now).total_seconds()))
        clock.advance(pauses[-1])
    assert pauses == [30, 60, 100]
    last = sender.drain()
    assert (last.failed, last.retrying) == (1, 0)
    (row,) = _rows(db)
    assert (row.state, row.attempts) == (NotificationState.failed, 4)
    assert row.last_error == f"attempt 4: HTTP 500 from http://127.0.0.1:{receiver.port}: boom"
    clock.advance(10_000)
    assert sender.drain().attempted == 0 and len(receiver.requests) == 4


def test_a_row_undelivered_past_the_give_up_time_fails(
    db: Database, tmp_path: Path, receiver: HttpReceiver, clock: Clock
) -> None:
    sender = _sender(db, _config(tmp_path, receiver), receiver, clock, give_up_after_s=600)
    _queue(db, 1, ["audit"])
    assert sender.drain().retrying == 1
    clock.advance(601)
    assert sender.drain().failed == 1
    (row,) = _rows(db)
    assert row.state == NotificationState.failed and row.attempts == 2


def test_retry_after_from_the_receiver_is_honoured(
    db: Database, tmp_path: Path, receiver: HttpReceiver, clock: Clock
) -> None:
    receiver.status, receiver.extra_headers = 429, {"Retry-After": "300"}
    receiver.start()
    sender = _sender(db, _config(tmp_path, receiver), receiver, clock)
    _queue(db, 1, ["audit"])
    assert sender.drain().retrying == 1
    (row,) = _rows(db)
    assert round((row.next_attempt_at - clock.now).total_seconds()) == 300


def test_an_unknown_channel_fails_the_row_at_once_with_a_clear_error(
    db: Database, tmp_path: Path, receiver: HttpReceiver, clock: Clock
) -> None:
    path = _config(tmp_path, receiver)
    sender = _sender(db, path, receiver, clock)
    _queue(db, 1, ["leadership"])
    assert sender.drain().failed == 1
    (row,) = _rows(db)
    assert row.state == NotificationState.failed and row.attempts == 1
    assert row.last_error == (
        f"attempt 1: channel 'leadership' is not defined in {path} (TRIPWIRE_NOTIFY_CONFIG); "
        "defined: audit, safety-team"
    )
    assert sender.check_channels(["safety-team", "leadership"]) == [
        f"notification channel leadership is not defined in {path}; such notifications will "
        "fail (defined: audit, safety-team)"
    ]


def test_a_missing_secret_is_retried_and_named_by_its_variable(
    db: Database, tmp_path: Path, receiver: HttpReceiver, clock: Clock
) -> None:
    path = _config(tmp_path, receiver)
    receiver.start()
    sender = OutboxSender(db, load_notify_config(path), config_path=path, env={}, clock=clock)
    _queue(db, 1, ["audit"])
    assert sender.drain().retrying == 1
    (row,) = _rows(db)
    assert row.last_error == (
        "attempt 1: environment variable HOOK_SECRET is not set (channel audit, secret_env); "
        "set it in the sender's environment"
    )
    assert receiver.requests == []


def test_without_a_channels_file_rows_wait_in_the_outbox(db: Database, clock: Clock) -> None:
    _queue(db, 2, ["safety-team"])
    assert OutboxSender(db, None, clock=clock).drain().attempted == 0
    assert [row.state for row in _rows(db)] == [NotificationState.pending] * 2


def test_two_senders_at_once_deliver_each_row_once(
    database_url: str, tmp_path: Path, receiver: HttpReceiver, clock: Clock
) -> None:
    path = _config(tmp_path, receiver)
    receiver.start()
    setup = Database(database_url)
    _queue(setup, 20, ["safety-team", "audit"])
    databases = [Database(database_url) for _ in range(2)]
    senders = [_sender(d, path, receiver, clock) for d in databases]
    barrier = threading.Barrier(2)
    sent = [0, 0]

    def run(i: int) -> None:
        barrier.wait()
        sent[i] = senders[i].drain().sent

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert sum(sent) == 40 and min(sent) > 0, sent  # both worked, neither took a row twice
    assert len(receiver.requests) == 40 and len(receiver.accepted()) == 40
    assert all(row.state == NotificationState.sent and row.attempts == 1 for row in _rows(setup))
    for database in (setup, *databases):
        database.dispose()
