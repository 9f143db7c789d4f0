"""The embedded mode: a Celery worker thread on Celery's in-memory transport.

With no ``TRIPWIRE_BROKER_URL``, ``tripwire watch`` and ``tripwire demo`` run the very same
Celery tasks as production workers, but on a ``solo``-pool worker thread inside the process,
fed through kombu's in-memory transport. No Redis, no second process. Work is done one job at a
time, which is what a laptop wants. The database still says what has been done, so stopping
the process loses nothing: the next start re-sends pending jobs.
"""

from __future__ import annotations

import threading
from types import TracebackType

from celery.worker import WorkController

from tripwire.jobs import tasks
from tripwire.jobs.celery_config import QUEUES


class EmbeddedWorker:
    """A Celery worker consuming every queue in a background thread of this process."""

    def __init__(self) -> None:
        tasks.configure("memory://localhost/")
        self._controller = WorkController(
            app=tasks.app,
            pool_cls="solo",
            concurrency=1,
            queues=list(QUEUES),
            without_heartbeat=True,
            without_mingle=True,
            without_gossip=True,
            loglevel="WARNING",
            hostname="tripwire-embedded@localhost",
        )
        self._thread = threading.Thread(
            target=self._controller.start, daemon=True, name="tripwire-embedded-worker"
        )

    def start(self) -> EmbeddedWorker:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._controller.stop(in_sighandler=False)
        self._thread.join(timeout=30)

    def __enter__(self) -> EmbeddedWorker:
        return self.start()

    def __exit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        self.stop()
