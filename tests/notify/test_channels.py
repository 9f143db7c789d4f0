"""What each channel puts on the wire: Slack's JSON, a signed webhook, an email with a
Message-ID derived from the idempotency key; and ``tripwire notify test``."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.notify.conftest import write_config
from tests.notify.receivers import HttpReceiver, SmtpReceiver
from tripwire.cli import app
from tripwire.notify.channels import Outgoing, deliver, message_id
from tripwire.notify.config import EmailChannel, SlackChannel, WebhookChannel
from tripwire.notify.message import Message
from tripwire.notify.signing import signature_header, verify

MESSAGE = Message(
    event="rule_fired",
    title="critical trigger fired: wmdp-bio-rise on run-7 step 4500",
    run="run-7",
    step=4500,
    checkpoint="sha256:" + "ab" * 32,
    rule="wmdp-bio-rise",
    severity="critical",
    policy="frontier",
    decision_id=42,
    explanation="wmdp_bio rose 6.1 points (one-sided 95% lower bound 3.2) over the baseline",
    review_hold=True,
)
LINK = "https://tripwire.example.org/checkpoints/" + "ab" * 32
OUT = Outgoing("rule_fired:42:safety-team", MESSAGE, LINK)


def test_slack_gets_text_blocks_and_the_idempotency_key(receiver: HttpReceiver) -> None:
    receiver.start()
    channel = SlackChannel(type="slack", url_env="SLACK_URL")
    deliver("safety-team", channel, OUT, {"SLACK_URL": receiver.url("/services/T/B/x")}, now=0)
    (request,) = receiver.requests
    assert request.path == "/services/T/B/x"
    assert request.headers["Idempotency-Key"] == "rule_fired:42:safety-team"
    assert request.headers["Content-Type"] == "application/json"
    body = json.loads(request.body)
    assert set(body) == {"text", "blocks"}
    assert body["text"].splitlines()[0] == MESSAGE.title
    assert LINK in body["text"] and MESSAGE.explanation in body["text"]
    section, context = body["blocks"]
    assert section["type"] == "section" and section["text"]["type"] == "mrkdwn"
    assert section["text"]["text"].startswith(f"*{MESSAGE.title}*\n")
    assert f"<{LINK}|Open in Tripwire>" in section["text"]["text"]
    assert context["type"] == "context"


def test_a_webhook_signature_verifies_with_the_secret_and_fails_with_a_wrong_one(
    receiver: HttpReceiver,
) -> None:
    receiver.start()
    channel = WebhookChannel(type="webhook", url=receiver.url(), secret_env="HOOK_SECRET")
    now = time.time()
    deliver("audit", channel, OUT, {"HOOK_SECRET": "s3cret"}, now=now)
    (request,) = receiver.requests
    header = request.headers["X-Tripwire-Signature"]
    assert request.headers["Idempotency-Key"] == OUT.key
    assert request.headers["X-Tripwire-Event"] == "rule_fired"

    # what a receiver does, by hand: HMAC-SHA256 over "<t>.<raw body>"
    fields = dict(part.split("=", 1) for part in header.split(","))
    assert fields["t"] == str(int(now))
    signed = fields["t"].encode() + b"." + request.body
    assert hmac.compare_digest(
        hmac.new(b"s3cret", signed, hashlib.sha256).hexdigest(), fields["v1"]
    )
    assert not hmac.compare_digest(
        hmac.new(b"wrong", signed, hashlib.sha256).hexdigest(), fields["v1"]
    )
    # and the helper receivers can use
    assert verify("s3cret", header, request.body, now=now)
    assert not verify("wrong", header, request.body, now=now)
    assert not verify("s3cret", header, request.body + b" ", now=now)  # body altered
    assert not verify("s3cret", header, request.body, now=now + 301)  # replayed later
    assert not verify("s3cret", "v1=" + fields["v1"], request.body, now=now)  # no timestamp
    rotated = f"t={fields['t']},v1={'0' * 64},v1={fields['v1']}"
    assert verify("s3cret", rotated, request.body, now=now)

    body = json.loads(request.body)
    assert body["idempotency_key"] == OUT.key and body["link"] == LINK
    assert body["schema_version"] == 1 and body["event"] == "rule_fired"
    assert (body["run"], body["step"], body["rule"], body["severity"]) == (
        "run-7",
        4500,
        "wmdp-bio-rise",
        "critical",
    )
    assert body["checkpoint"] == MESSAGE.checkpoint and body["explanation"] == MESSAGE.explanation


def test_signature_header_format() -> None:
    body = b'{"a":1}'
    digest = hmac.new(b"k", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert signature_header("k", 1_700_000_000, body) == f"t=1700000000,v1={digest}"


def test_an_email_carries_a_message_id_derived_from_the_idempotency_key() -> None:
    with SmtpReceiver() as smtp:
        channel = EmailChannel.model_validate(
            {
                "type": "email",
                "host": "127.0.0.1",
                "port": smtp.port,
                "tls": "none",
                "from": "tripwire@example.org",
                "to": ["safety@example.org", "oncall@example.org"],
            }
        )
        for _ in range(2):  # sent twice (a crash before marking): the same Message-ID
            deliver("oncall", channel, OUT, {}, now=time.time())
        first, second = smtp.inbox.messages
    expected = message_id(OUT.key, "tripwire@example.org")
    assert first["Message-ID"] == second["Message-ID"] == expected
    assert expected.endswith("@example.org>")
    assert first["X-Tripwire-Idempotency-Key"] == OUT.key
    assert first["Subject"] == f"[tripwire] {MESSAGE.title}"
    assert first["From"] == "tripwire@example.org"
    assert first["To"] == "safety@example.org, oncall@example.org"
    assert smtp.inbox.envelopes[0] == (
        "tripwire@example.org",
        ["safety@example.org", "oncall@example.org"],
    )
    text = first.get_content()
    assert MESSAGE.explanation in text and LINK in text and "held for review" in text


def test_a_refused_smtp_login_is_an_error_without_the_password() -> None:
    with SmtpReceiver() as smtp:  # no AUTH offered over plain text
        channel = EmailChannel.model_validate(
            {
                "type": "email",
                "host": "127.0.0.1",
                "port": smtp.port,
                "tls": "none",
                "user_env": "SMTP_USER",
                "password_env": "SMTP_PASSWORD",
                "from": "tripwire@example.org",
                "to": ["safety@example.org"],
            }
        )
        env = {"SMTP_USER": "bot", "SMTP_PASSWORD": "hunter2-very-secret"}
        from tripwire.errors import DeliveryError

        with pytest.raises(DeliveryError) as caught:
            deliver("oncall", channel, OUT, env, now=time.time())
    assert f"SMTP server 127.0.0.1:{smtp.port}" in str(caught.value)
    assert "hunter2-very-secret" not in str(caught.value)
    assert smtp.inbox.messages == []


def test_notify_test_sends_a_test_message_to_a_channel(
    tmp_path: Path, receiver: HttpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    receiver.start()
    path = write_config(
        tmp_path,
        f"channels:\n  audit:\n    type: webhook\n    url: {receiver.url()}\n"
        "    secret_env: HOOK_SECRET\n",
    )
    monkeypatch.setenv("TRIPWIRE_NOTIFY_CONFIG", str(path))
    monkeypatch.setenv("HOOK_SECRET", "s3cret")
    result = CliRunner().invoke(app, ["notify", "test", "audit"])
    assert result.exit_code == 0, result.output
    assert "delivered to audit (webhook)" in result.output
    (request,) = receiver.requests
    assert json.loads(request.body)["event"] == "test"
    assert verify("s3cret", request.headers["X-Tripwire-Signature"], request.body, now=time.time())

    result = CliRunner().invoke(app, ["notify", "test", "nope"])
    assert result.exit_code == 2
    assert "channel 'nope' is not defined" in result.output and "defined: audit" in result.output

    receiver.stop()
    result = CliRunner().invoke(app, ["notify", "test", "audit"])
    assert result.exit_code == 1
    assert "not delivered: cannot reach" in result.output


def test_the_receiver_snippet_in_the_docs_verifies_a_real_delivery(receiver: HttpReceiver) -> None:
    docs = (Path(__file__).parents[2] / "docs" / "operations.md").read_text()
    section = docs.split("### What a receiver gets", 1)[1]
    snippet = section.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict[str, object] = {}
    exec(snippet, namespace)
    verified = namespace["verified"]
    assert callable(verified)
    receiver.start()
    channel = WebhookChannel(type="webhook", url=receiver.url(), secret_env="HOOK_SECRET")
    deliver("audit", channel, OUT, {"HOOK_SECRET": "s3cret"}, now=time.time())
    (request,) = receiver.requests
    header = request.headers["X-Tripwire-Signature"]
    assert verified(b"s3cret", header, request.body)
    assert not verified(b"wrong", header, request.body)
    assert not verified(b"s3cret", header, request.body.replace(b"critical", b"alert"))
