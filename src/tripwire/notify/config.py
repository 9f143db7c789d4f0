"""The notification channels file (``TRIPWIRE_NOTIFY_CONFIG``): where each named channel sends.

A policy names channels (``actions: {notify: [safety-team]}``); this file says what a name is::

    schema_version: 1
    channels:
      safety-team:
        type: slack
        url_env: TRIPWIRE_SLACK_SAFETY_URL     # the incoming-webhook URL is itself a secret
      audit-log:
        type: webhook
        url: https://audit.example.org/tripwire
        secret_env: TRIPWIRE_AUDIT_HOOK_SECRET  # HMAC-SHA256 key
      oncall:
        type: email
        host: smtp.example.org
        port: 587
        tls: starttls
        user_env: TRIPWIRE_SMTP_USER
        password_env: TRIPWIRE_SMTP_PASSWORD
        from: tripwire@example.org
        to: [oncall@example.org]

Secrets are never in the file: it names environment variables, read when a message is sent.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from tripwire.errors import NotifyConfigError
from tripwire.validation import load_model


def _matching(pattern: str, what: str) -> AfterValidator:
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if not compiled.fullmatch(value):
            raise ValueError(f"not {what}")
        return value

    return AfterValidator(check)


EnvName = Annotated[
    str,
    _matching(
        r"[A-Za-z_][A-Za-z0-9_]*",
        "an environment variable name (letters, digits and _, not starting with a digit)",
    ),
]
"""The name of an environment variable (not its value)."""
ChannelName = Annotated[
    str,
    _matching(
        r"[A-Za-z0-9][A-Za-z0-9_.-]*",
        "a channel name (letters, digits, '.', '_' and '-', starting with a letter or digit)",
    ),
]
"""A channel's name as policies and ``TRIPWIRE_NOTIFY_FAILURES`` write it."""
Address = Annotated[str, _matching(r"[^@\s<>]+@[^@\s<>]+", "an email address (name@domain)")]


class _Channel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    _secret_fields: ClassVar[dict[str, str]] = {}
    """Fields someone may write the secret into, and the ``*_env`` field to use instead."""

    timeout_s: float = Field(default=10.0, gt=0, le=120)
    """How long one delivery may take (connect and answer)."""

    @model_validator(mode="before")
    @classmethod
    def _no_secrets_in_the_file(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for field, instead in cls._secret_fields.items():
                if field in data:
                    raise ValueError(
                        f"{field}: secrets are not kept in this file; put the value in an "
                        f"environment variable and name that variable in {instead}"
                    )
        return data


class SlackChannel(_Channel):
    """A Slack (or Slack-compatible: Mattermost, Rocket.Chat) incoming webhook."""

    _secret_fields: ClassVar[dict[str, str]] = {"url": "url_env"}

    type: Literal["slack"]
    url_env: EnvName
    """Environment variable holding the incoming-webhook URL (its path is the credential)."""


class WebhookChannel(_Channel):
    """A generic JSON POST, signed with HMAC-SHA256 (``X-Tripwire-Signature``)."""

    _secret_fields: ClassVar[dict[str, str]] = {"secret": "secret_env"}

    type: Literal["webhook"]
    url: Annotated[str, _matching(r"https?://[^\s/]+(/\S*)?", "an http:// or https:// URL")]
    """Where to POST (``http://`` or ``https://``)."""
    secret_env: EnvName
    """Environment variable holding the signing key."""


class EmailChannel(_Channel):
    """Email through an SMTP server."""

    _secret_fields: ClassVar[dict[str, str]] = {"user": "user_env", "password": "password_env"}

    type: Literal["email"]
    host: str = Field(min_length=1)
    port: int = Field(default=587, ge=1, le=65535)
    tls: Literal["starttls", "ssl", "none"] = "starttls"
    """``starttls`` (port 587), ``ssl`` (implicit TLS, port 465) or ``none`` (a local relay)."""
    user_env: EnvName | None = None
    """Environment variable holding the SMTP user name; unset: no login."""
    password_env: EnvName | None = None
    """Environment variable holding the SMTP password (with ``user_env``)."""
    from_: Address = Field(alias="from")
    to: list[Address] = Field(min_length=1)

    @model_validator(mode="after")
    def _login_pairs(self) -> EmailChannel:
        if (self.user_env is None) != (self.password_env is None):
            raise ValueError("give both user_env and password_env, or neither (no login)")
        return self


Channel = Annotated[SlackChannel | WebhookChannel | EmailChannel, Field(discriminator="type")]
CHANNEL_TYPES = ("slack", "webhook", "email")


class NotifyConfig(BaseModel):
    """The channels file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = 1
    channels: dict[ChannelName, Channel] = Field(default_factory=dict)


def load_notify_config(path: Path | str) -> NotifyConfig:
    """Read and validate the channels file; every problem names the file, line and field."""
    return load_model(Path(path), NotifyConfig, NotifyConfigError)
