"""Accepted webhook events taken through the watcher's own ingest.

The web app only stores the event (durably, before its 202). The watcher takes each accepted
event at every scan: the folder is checked and hashed as ``tripwire eval`` checks one
(``read_checkpoint``: taken as complete, since its trainer announced it), the event's fields
win over the folder's sidecar, and ``pipeline.ingest`` records the checkpoint and queues its
proxy evaluation, exactly as for a scanned folder. Taking an event twice records one
checkpoint.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import select

from tripwire.errors import TripwireError
from tripwire.intake.event import CheckpointEvent
from tripwire.jobs.context import Context
from tripwire.jobs.pipeline import ingest
from tripwire.sources import DiscoveredCheckpoint
from tripwire.sources.local import read_checkpoint
from tripwire.sources.metadata import CheckpointMetadata
from tripwire.store.models import IntakeEvent

log = logging.getLogger(__name__)

Fetch = Callable[[str], DiscoveredCheckpoint]
"""Downloads and identifies the checkpoint at an object-store URI (``ObjectStoreSource.fetch``)."""


def announced(found: DiscoveredCheckpoint, event: CheckpointEvent) -> DiscoveredCheckpoint:
    """``found`` with the fields the event sets winning over the sidecar's."""
    fields = {
        k: getattr(event, k) for k in event.model_fields_set if k in CheckpointMetadata.model_fields
    }
    metadata = found.metadata.model_copy(update=fields)
    update: dict[str, Any] = {"metadata": metadata, "run": metadata.run or found.run}
    if "step" in fields:
        update["step"] = metadata.step
    return found.model_copy(update=update)


def take_events(ctx: Context, *, fetch: Fetch | None = None, limit: int = 100) -> int:
    """Take up to ``limit`` accepted events; returns how many were recorded. An event whose
    folder is not a usable checkpoint is marked ``failed`` with the reason."""
    with ctx.db.session() as session:
        pending = [
            (e.id, e.uri, e.body)
            for e in session.scalars(
                select(IntakeEvent)
                .where(IntakeEvent.state == "accepted")
                .order_by(IntakeEvent.id)
                .limit(limit)
            )
        ]
    recorded = 0
    for event_id, uri, body in pending:
        state, error, checkpoint_id = "recorded", None, None
        try:
            event = CheckpointEvent.model_validate(body)
            if uri.startswith("/"):
                local = read_checkpoint(Path(uri), hash_cache=ctx.hash_cache)
            elif fetch is not None:
                local = fetch(uri)
            else:
                continue  # an object-store URI: left for a watcher with an object-store source
            found = announced(local, event)
            if event.content_hash is not None and event.content_hash != found.content_hash:
                error = (
                    f"the announced content hash {event.content_hash} differs from the files' "
                    f"{found.content_hash}; the files' is recorded"
                )
            checkpoint_id, _ = ingest(ctx, found)
            recorded += 1
        except TripwireError as exc:
            state, error = "failed", str(exc)
            log.warning("cannot take announced checkpoint %s: %s", uri, exc)
        with ctx.db.session() as session:
            row = session.get(IntakeEvent, event_id)
            if row is not None:
                row.state, row.error, row.checkpoint_id = state, error, checkpoint_id
    return recorded
