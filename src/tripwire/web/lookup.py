"""Finding a checkpoint or a run from a URL (``tripwire.reviews.find_checkpoint`` names a
checkpoint by its content hash, with or without ``sha256:``, or a unique prefix of 8+ hex
characters), as HTTP errors: 404 when none matches, 409 when several do."""

from __future__ import annotations

from fastapi import HTTPException
from sqlalchemy import select
from sqlalchemy.orm import Session

from tripwire.errors import ReviewError
from tripwire.reviews import find_checkpoint as _find
from tripwire.store.models import Checkpoint, Run


def find_checkpoint(session: Session, ident: str) -> Checkpoint:
    try:
        return _find(session, ident)
    except ReviewError as exc:
        raise HTTPException(exc.status, str(exc)) from None


def find_run(session: Session, name: str) -> Run:
    run = session.scalar(select(Run).where(Run.name == name))
    if run is None:
        raise HTTPException(404, f"no run named {name!r}")
    return run
