"""Delivering one message to one channel: Slack, a signed JSON webhook, or email.

Each delivery carries the outbox row's key as an idempotency key (HTTP: ``Idempotency-Key``;
email: a ``Message-ID`` derived from it, and ``X-Tripwire-Idempotency-Key``), so a message sent
again after a crash between sending and marking it sent is recognised as the same one.
Secrets (a Slack URL, a signing key, an SMTP login) are read from the environment at each
delivery and never appear in an error.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import smtplib
import ssl
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any
from urllib.parse import urlsplit

from tripwire.errors import DeliveryError
from tripwire.notify.config import Channel, EmailChannel, SlackChannel, WebhookChannel
from tripwire.notify.message import Message, lines, subject
from tripwire.notify.signing import SIGNATURE_HEADER, signature_header

IDEMPOTENCY_HEADER = "Idempotency-Key"
EVENT_HEADER = "X-Tripwire-Event"
EMAIL_KEY_HEADER = "X-Tripwire-Idempotency-Key"
USER_AGENT = "tripwire-notify/1"
ERROR_BODY_CHARS = 300
"""How much of a refusing server's answer is kept in the row's error."""


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message on its way to one channel."""

    key: str
    """The idempotency key (the outbox row's key)."""
    message: Message
    link: str | None = None
    """The checkpoint's page in the review app."""


def deliver(
    name: str, channel: Channel, outgoing: Outgoing, env: Mapping[str, str], *, now: float
) -> None:
    """Send ``outgoing`` to ``channel``; raise ``DeliveryError`` (free of secrets) if it was not
    accepted. ``now`` (unix seconds) stamps webhook signatures."""
    secrets: list[str] = []
    try:
        if isinstance(channel, SlackChannel):
            url = _secret(env, name, "url_env", channel.url_env, secrets)
            _post(url, slack_body(outgoing), _headers(outgoing), channel.timeout_s)
        elif isinstance(channel, WebhookChannel):
            key = _secret(env, name, "secret_env", channel.secret_env, secrets)
            body = webhook_body(outgoing)
            headers = _headers(outgoing)
            headers[SIGNATURE_HEADER] = signature_header(key, int(now), body)
            _post(channel.url, body, headers, channel.timeout_s)
        else:
            _send_email(name, channel, outgoing, env, secrets, now)
    except DeliveryError as exc:
        raise DeliveryError(_redact(str(exc), secrets), retry_after_s=exc.retry_after_s) from None


def _secret(
    env: Mapping[str, str], channel: str, field: str, variable: str, found: list[str]
) -> str:
    value = env.get(variable, "")
    if not value:
        raise DeliveryError(
            f"environment variable {variable} is not set (channel {channel}, {field}); set it "
            "in the sender's environment"
        )
    found.append(value)
    return value


def _redact(message: str, secrets: list[str]) -> str:
    for secret in sorted(secrets, key=len, reverse=True):
        message = message.replace(secret, "***")
    return message


# ---------------------------------------------------------------- HTTP


def _headers(outgoing: Outgoing) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        IDEMPOTENCY_HEADER: outgoing.key,
        EVENT_HEADER: outgoing.message.event,
    }


def slack_body(outgoing: Outgoing) -> bytes:
    """Slack's incoming-webhook JSON: ``text`` (the fallback every client shows) and blocks."""
    message = outgoing.message
    text = lines(message, outgoing.link)
    detail = [_mrkdwn(line) for line in text[1:] if line != outgoing.link]
    section = f"*{_mrkdwn(message.title)}*"
    if detail:
        section += "\n" + "\n".join(detail)
    if outgoing.link:
        section += f"\n<{outgoing.link}|Open in Tripwire>"
    body = {
        "text": "\n".join(text),
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": section}},
            {
                "type": "context",
                "elements": [
                    {"type": "mrkdwn", "text": f"{message.event} · {_mrkdwn(outgoing.key)}"}
                ],
            },
        ],
    }
    return json.dumps(body, separators=(",", ":")).encode()


def _mrkdwn(text: str) -> str:
    """Text safe inside Slack's mrkdwn (``&``, ``<`` and ``>`` are its control characters)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def webhook_body(outgoing: Outgoing) -> bytes:
    """The generic webhook's JSON: the message's fields, its idempotency key and the link."""
    body: dict[str, Any] = {
        **outgoing.message.model_dump(mode="json"),
        "idempotency_key": outgoing.key,
        "link": outgoing.link,
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is an error: following it would drop the body (or send it elsewhere)."""

    def redirect_request(self, *_: Any, **__: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect())


def _post(url: str, body: bytes, headers: dict[str, str], timeout_s: float) -> None:
    parts = urlsplit(url)
    where = f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with _OPENER.open(request, timeout=timeout_s) as response:
            response.read()
    except urllib.error.HTTPError as exc:
        answer = exc.read(ERROR_BODY_CHARS).decode("utf-8", "replace").strip()
        raise DeliveryError(
            f"HTTP {exc.code} from {where}" + (f": {answer}" if answer else ""),
            retry_after_s=_retry_after(exc.headers.get("Retry-After")),
        ) from None
    except urllib.error.URLError as exc:
        raise DeliveryError(f"cannot reach {where}: {exc.reason}") from None
    except (OSError, http.client.HTTPException) as exc:
        raise DeliveryError(f"cannot reach {where}: {type(exc).__name__}: {exc}") from None


def _retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds (the HTTP-date form is ignored)."""
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        return None


# ---------------------------------------------------------------- email


def message_id(key: str, sender: str) -> str:
    """A ``Message-ID`` that depends only on the idempotency key (and the sender's domain): the
    same notification sent twice carries the same one, which mail systems use to drop
    duplicates."""
    domain = sender.rsplit("@", 1)[-1]
    return f"<{hashlib.sha256(key.encode()).hexdigest()[:40]}.tripwire@{domain}>"


def email_message(channel: EmailChannel, outgoing: Outgoing, now: float) -> EmailMessage:
    email = EmailMessage()
    email["Subject"] = subject(outgoing.message)
    email["From"] = channel.from_
    email["To"] = ", ".join(channel.to)
    email["Date"] = formatdate(now, usegmt=True)
    email["Message-ID"] = message_id(outgoing.key, channel.from_)
    email[EMAIL_KEY_HEADER] = outgoing.key
    email[EVENT_HEADER] = outgoing.message.event
    email.set_content("\n\n".join(lines(outgoing.message, outgoing.link)) + "\n")
    return email


def _send_email(
    name: str,
    channel: EmailChannel,
    outgoing: Outgoing,
    env: Mapping[str, str],
    secrets: list[str],
    now: float,
) -> None:
    login = None
    if channel.user_env is not None and channel.password_env is not None:
        login = (
            _secret(env, name, "user_env", channel.user_env, secrets),
            _secret(env, name, "password_env", channel.password_env, secrets),
        )
    email = email_message(channel, outgoing, now)
    where = f"{channel.host}:{channel.port}"
    try:
        smtp: smtplib.SMTP
        if channel.tls == "ssl":
            context = ssl.create_default_context()
            smtp = smtplib.SMTP_SSL(
                channel.host, channel.port, timeout=channel.timeout_s, context=context
            )
        else:
            smtp = smtplib.SMTP(channel.host, channel.port, timeout=channel.timeout_s)
        with smtp:
            if channel.tls == "starttls":
                smtp.starttls(context=ssl.create_default_context())
            if login is not None:
                smtp.login(*login)
            smtp.send_message(email)
    except smtplib.SMTPException as exc:
        raise DeliveryError(f"SMTP server {where} refused the message: {exc}") from None
    except OSError as exc:
        raise DeliveryError(
            f"cannot reach SMTP server {where}: {type(exc).__name__}: {exc}"
        ) from None
