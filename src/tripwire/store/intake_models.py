"""Tables of checkpoint intake: webhook events and object-store listing cursors."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from tripwire.store.models import Base, UTCDateTime, utcnow


class IntakeEvent(Base):
    """A checkpoint announced through ``POST /v1/checkpoints``, stored before the 202."""

    __tablename__ = "intake_events"
    id: Mapped[int] = mapped_column(primary_key=True)
    signature: Mapped[str] = mapped_column(String(128), unique=True)
    """The request's HMAC (hex): a second request with it is a replay."""
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    sent_at: Mapped[int] = mapped_column(Integer)
    """The sender's timestamp (Unix seconds) the signature covers."""
    uri: Mapped[str] = mapped_column(Text)
    body: Mapped[dict[str, Any]] = mapped_column()
    """The event as accepted (``tripwire.intake.webhook.CheckpointEvent``)."""
    state: Mapped[str] = mapped_column(String(16), default="accepted")
    """``accepted``, ``recorded`` (checkpoint stored, proxy job queued) or ``failed``."""
    checkpoint_id: Mapped[int | None] = mapped_column(ForeignKey("checkpoints.id"))
    error: Mapped[str | None] = mapped_column(Text)
    __table_args__ = (Index("ix_intake_events_state", "state"),)


class SourceCursor(Base):
    """How far an object-store source has listed: restart resumes here."""

    __tablename__ = "source_cursors"
    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(String(1024), unique=True)
    """The source's root URI (``s3://bucket/prefix``)."""
    state: Mapped[dict[str, Any]] = mapped_column(default=dict)
    """``tripwire.sources.objectstore.Cursor`` as JSON."""
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
