"""Celery's prefork pool, replacing an exited child within half a second instead of five.

Tripwire workers run a fresh pool child per evaluation (``--max-tasks-per-child 1``): no CUDA
context or fragmented memory carries over. Celery's ``AsynPool`` replaces exited children from a
timer that fires every 5 s, so back-to-back tasks would each wait up to 5 s for a process. This
pool runs the same maintenance every 0.5 s; nothing else changes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from celery.concurrency.asynpool import AsynPool
from celery.concurrency.prefork import TaskPool

MAINTAIN_INTERVAL_S = 0.5


class PromptRespawnAsynPool(AsynPool):  # type: ignore[misc]
    @property
    def timers(self) -> dict[Callable[..., Any], float]:
        return {self.maintain_pool: MAINTAIN_INTERVAL_S}


class PromptRespawnTaskPool(TaskPool):  # type: ignore[misc]
    Pool = PromptRespawnAsynPool


POOL = f"{__name__}:PromptRespawnTaskPool"
"""The value for Celery's ``--pool`` option."""
