"""Shared by the benchmarks that time a landing: when did the worker claim a checkpoint?"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

from sqlalchemy import select

from tripwire.store.db import Database
from tripwire.store.models import Checkpoint, Job, JobKind


def wait_started(db: Database, path: Path, timeout_s: float = 120.0) -> datetime:
    """When the proxy evaluation of the checkpoint at ``path`` was claimed (polled)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with db.session() as s:
            started = s.scalar(
                select(Job.started_at)
                .join(Checkpoint, Job.checkpoint_id == Checkpoint.id)
                .where(Checkpoint.path == str(path.resolve()), Job.kind == JobKind.proxy_eval)
            )
        if started is not None:
            return started
        time.sleep(0.02)
    raise SystemExit(f"{path} was not picked up within {timeout_s} s")
