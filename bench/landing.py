"""Shared by the benchmarks that time a landing: when did the worker claim a checkpoint?"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from tripwire.store.db import Database
from tripwire.store.models import Checkpoint, Job, JobKind, utcnow


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


def time_landings(service: Any, run_folder: Path, landings: int) -> list[float]:
    """Land ``landings`` tiny checkpoints in ``run_folder`` the way trainers do (a temporary
    folder renamed into place, the ready marker last), one at a time; the seconds from each
    marker to its proxy evaluation's claim, in landing order."""
    from tests.helpers import make_checkpoint

    out: list[float] = []
    for i in range(landings):
        tmp = run_folder / f".tmp-{i}"
        make_checkpoint(tmp, seed=1000 + i, ready=False)
        final = run_folder / f"step-{i}"
        tmp.rename(final)
        ready_at = utcnow()
        (final / "READY").touch()
        started = wait_started(service.ctx.db, final)
        out.append((started - ready_at).total_seconds())
        service.wait_until_settled(timeout_s=600)
    return out
