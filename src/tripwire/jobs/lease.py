"""A job's lease: renewed by a heartbeat while it runs, checked before its results are written."""

from __future__ import annotations

import logging
import threading
from types import TracebackType

from sqlalchemy.orm import Session

from tripwire.errors import JobError
from tripwire.jobs.context import Context
from tripwire.store import repo
from tripwire.store.models import utcnow

log = logging.getLogger(__name__)


class LostLease(JobError):
    """Another worker took the job over (our lease expired); our results are discarded."""


class Heartbeat:
    """Renews a job's lease in the background while it runs."""

    def __init__(self, ctx: Context, job_id: int) -> None:
        self.ctx, self.job_id = ctx, job_id
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"heartbeat-{job_id}")

    def _run(self) -> None:
        while not self._stop.wait(self.ctx.heartbeat_s):
            try:
                with self.ctx.db.session() as session:
                    held = repo.renew_lease(
                        session, self.job_id, self.ctx.owner, self.ctx.lease_s, utcnow()
                    )
            except Exception:  # the database may be briefly unreachable; try again next beat
                log.warning("heartbeat for job %s failed", self.job_id, exc_info=True)
                continue
            if not held:
                self.lost.set()
                return

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def assert_owner(ctx: Context, session: Session, job_id: int) -> None:
    """Inside the result-writing transaction: fail unless this worker still holds the lease."""
    if not repo.renew_lease(session, job_id, ctx.owner, ctx.lease_s, utcnow()):
        raise LostLease(f"job {job_id}: lease lost to another worker; result discarded")
