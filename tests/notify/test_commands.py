"""``tripwire notify send --once`` and ``notify list``; the outbox in /metrics; payloads that
other producers write are still delivered."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from prometheus_client.core import Metric
from typer.testing import CliRunner

from tests.notify.conftest import write_config
from tests.notify.receivers import HttpReceiver
from tripwire.cli import app
from tripwire.metrics import TripwireCollector
from tripwire.notify import enqueue
from tripwire.notify.sender import outgoing
from tripwire.store.db import Database


@pytest.fixture
def env(
    tmp_path: Path, receiver: HttpReceiver, monkeypatch: pytest.MonkeyPatch, database_url: str
) -> Database:
    path = write_config(
        tmp_path,
        f"channels:\n  audit:\n    type: webhook\n    url: {receiver.url()}\n"
        "    secret_env: HOOK_SECRET\n",
    )
    for name, value in {
        "TRIPWIRE_NOTIFY_CONFIG": str(path),
        "TRIPWIRE_DATABASE_URL": database_url,
        "HOOK_SECRET": "s3cret",
    }.items():
        monkeypatch.setenv(name, value)
    db = Database(database_url)
    with db.session() as s:
        enqueue(s, key="job_failed:1", event="job_failed", channels=["audit"], payload={})
        enqueue(s, key="job_failed:2", event="job_failed", channels=["nowhere"], payload={})
    return db


def test_send_once_delivers_what_is_due_and_list_shows_every_state(
    env: Database, receiver: HttpReceiver
) -> None:
    receiver.start()
    result = CliRunner().invoke(app, ["notify", "send", "--once"])
    assert result.exit_code == 1, result.output  # one row could not be delivered
    assert "sent 1, retrying 0, failed 1" in result.output
    assert "channel 'nowhere' is not defined" in result.output
    assert receiver.keys() == ["job_failed:1:audit"]

    result = CliRunner().invoke(app, ["notify", "list"])
    assert result.exit_code == 0, result.output
    assert "job_failed:1:audit" in result.output and "job_failed:2:nowhere" in result.output
    assert "0 pending, 1 sent, 1 failed" in result.output
    result = CliRunner().invoke(app, ["notify", "list", "--state", "failed"])
    assert "job_failed:2:nowhere" in result.output and "job_failed:1:audit" not in result.output

    families: dict[str, Metric] = {m.name: m for m in TripwireCollector(env).collect()}
    samples = {s.labels["state"]: s.value for s in families["tripwire_notifications"].samples}
    assert samples == {"pending": 0, "sent": 1, "failed": 1}
    env.dispose()


def test_send_without_a_channels_file_says_which_setting(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("TRIPWIRE_NOTIFY_CONFIG", raising=False)
    monkeypatch.setenv("TRIPWIRE_DATABASE_URL", f"sqlite:///{tmp_path / 'db.sqlite'}")
    result = CliRunner().invoke(app, ["notify", "send", "--once"])
    assert result.exit_code == 2
    assert "TRIPWIRE_NOTIFY_CONFIG is not set" in result.output


def test_a_payload_from_another_producer_is_delivered_with_what_it_has() -> None:
    sent = outgoing(
        "review_hold:7:audit",
        "review_hold",
        {"checkpoint": "sha256:" + "c" * 64, "actor": "alice", "comment": "wait for bio"},
        "https://t.example.org",
    )
    assert sent.message.title == "review hold" and sent.message.event == "review_hold"
    assert sent.link == "https://t.example.org/checkpoints/" + "c" * 64
    body = sent.message.model_dump(mode="json")
    assert body["actor"] == "alice" and body["comment"] == "wait for bio"
    odd = outgoing("review_hold:8:audit", "review_hold", {"step": "not a number"}, None)
    assert odd.message.details == {"payload": {"step": "not a number"}}
    assert json.loads(json.dumps(odd.message.model_dump(mode="json")))["title"] == "review hold"
