"""What a notification says: the stored payload (a typed model) and its text for people.

Producers build a :class:`Message` and store it in the outbox row; the sender renders it for the
channel when it sends (the link to the review app is added then, from ``TRIPWIRE_PUBLIC_URL``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

MESSAGE_SCHEMA_VERSION: Literal[1] = 1

Event = Literal["rule_fired", "job_failed", "review_hold", "review_overdue", "test"]


class Message(BaseModel):
    """The payload of an outbox row, as stored and as sent to webhooks."""

    model_config = ConfigDict(extra="allow", frozen=True)

    schema_version: Literal[1] = MESSAGE_SCHEMA_VERSION
    event: Event
    title: str
    """One line: what happened, to what."""
    run: str | None = None
    step: int | None = None
    checkpoint: str | None = None
    """The checkpoint's content hash (``sha256:...``)."""
    rule: str | None = None
    severity: str | None = None
    """``alert`` or ``critical``, for a rule."""
    policy: str | None = None
    decision_id: int | None = None
    explanation: str | None = None
    """The verdict's explanation, or a failed job's error."""
    review_hold: bool = False
    """The checkpoint is held for review (it cannot become a baseline or pass the gate)."""
    job: dict[str, Any] | None = None
    """A failed job: ``id``, ``kind``, ``key``, ``attempts``."""
    overdue_h: float | None = None
    """A review overdue after this many hours."""
    details: dict[str, Any] = Field(default_factory=dict)
    """Anything else a producer wants a receiver to have (e.g. a review's actor and comment)."""


def checkpoint_link(public_url: str | None, checkpoint: str | None) -> str | None:
    """The checkpoint's page in the review app, when ``public_url`` is set."""
    if not public_url or not checkpoint:
        return None
    return f"{public_url.rstrip('/')}/checkpoints/{checkpoint.removeprefix('sha256:')}"


def lines(message: Message, link: str | None) -> list[str]:
    """The message as lines of plain text (email bodies, Slack's fallback text)."""
    out = [message.title]
    where = []
    if message.run is not None:
        where.append(f"run {message.run}")
    if message.step is not None:
        where.append(f"step {message.step}")
    if message.checkpoint is not None:
        where.append(f"checkpoint {message.checkpoint.removeprefix('sha256:')[:12]}")
    if where:
        out.append(", ".join(where))
    if message.rule is not None:
        rule = f"rule {message.rule}"
        if message.severity:
            rule += f" ({message.severity})"
        if message.policy:
            rule += f", policy {message.policy}"
        out.append(rule)
    if message.review_hold:
        out.append("held for review: it cannot become a baseline or pass the deployment gate")
    if message.explanation:
        out.append(message.explanation)
    if link:
        out.append(link)
    return out


def subject(message: Message) -> str:
    """An email subject line."""
    return f"[tripwire] {message.title}"
