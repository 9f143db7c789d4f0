"""Finding a checkpoint or a run from a URL: a content hash (with or without ``sha256:``) or a
unique prefix of at least 8 hex characters."""

from __future__ import annotations

import re

from fastapi import HTTPException
from sqlalchemy import select
from sqlalchemy.orm import Session

from tripwire.store.models import Checkpoint, Run

_HEX = re.compile(r"^[0-9a-f]{8,64}$")


def find_checkpoint(session: Session, ident: str) -> Checkpoint:
    """The checkpoint ``ident`` names; 404 when none, 409 when a prefix is ambiguous."""
    key = ident.lower().removeprefix("sha256:")
    if not _HEX.match(key):
        raise HTTPException(
            404, f"{ident!r} is not a checkpoint hash (64 hex characters, or a prefix of 8+)"
        )
    found = list(
        session.scalars(
            select(Checkpoint).where(Checkpoint.content_hash.startswith(f"sha256:{key}")).limit(2)
        )
    )
    if not found:
        raise HTTPException(404, f"no checkpoint with hash {key}")
    if len(found) > 1:
        raise HTTPException(409, f"{key} is the prefix of several checkpoints; give more of it")
    return found[0]


def find_run(session: Session, name: str) -> Run:
    run = session.scalar(select(Run).where(Run.name == name))
    if run is None:
        raise HTTPException(404, f"no run named {name!r}")
    return run
