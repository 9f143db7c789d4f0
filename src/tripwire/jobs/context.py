"""What a job needs to run: the database, the policy, the runner and a way to send work."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol

from tripwire.policy.schema import LoadedPolicy, load_policy
from tripwire.runner import Runner
from tripwire.runner.response_store import response_cache_for
from tripwire.settings import Settings
from tripwire.sources import HashCache
from tripwire.store.db import Database
from tripwire.store.models import JobKind

TASK_NAMES = {
    JobKind.proxy_eval: "tripwire.proxy_eval",
    JobKind.deep_eval: "tripwire.deep_eval",
    JobKind.decide: "tripwire.decide",
    JobKind.report: "tripwire.report",
}


class Sender(Protocol):
    """Sends (task name, job id) to the broker; with ``eta``, to be run no earlier than then."""

    def __call__(self, task_name: str, job_id: int, /, *, eta: datetime | None = None) -> None: ...


QueueDepth = Callable[[str], int | None]
"""Messages waiting in a broker queue (None when the broker cannot say)."""


@dataclass
class Context:
    """Everything the pipeline functions use; built once per process."""

    db: Database
    policy: LoadedPolicy
    runner: Runner
    report_dir: Path
    send: Sender
    owner: str
    lease_s: float = 300.0
    """A claimed job is someone else's to take after this long without a heartbeat."""
    heartbeat_s: float = 30.0
    """How often a running job renews its lease."""
    resend_after_s: float = 60.0
    """The reconciler re-sends a pending job not started this long after it was sent."""
    max_attempts: int = 3
    """Claims of a new job before it is failed for good."""
    queue_depth: QueueDepth | None = None
    """Lets the reconciler tell a lost message from one still waiting in its queue."""
    hash_cache: HashCache = field(default_factory=HashCache.in_memory)
    """File hashes, for a job to check that its checkpoint's content is still the same."""
    retry_backoff_s: float = 30.0
    """Pause before the first retry after a transient error; doubled at each further one."""
    retry_backoff_max_s: float = 600.0
    """Longest pause between two attempts."""
    notify_failures: list[str] = field(default_factory=list)
    """Notification channels told when a job fails for good (``TRIPWIRE_NOTIFY_FAILURES``)."""


def default_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def hash_cache_path(settings: Settings) -> Path:
    """The file-hash cache that the watcher and the workers of one home share."""
    return settings.home / "cache" / "hashes.sqlite"


def context_from_settings(
    settings: Settings,
    send: Sender,
    queue_depth: QueueDepth | None = None,
    *,
    runner: Runner | None = None,
) -> Context:
    """A context from ``TRIPWIRE_*`` settings; ``runner`` replaces the one they describe."""
    settings.home.mkdir(parents=True, exist_ok=True)
    return Context(
        db=Database.for_settings(settings),
        policy=load_policy(settings.policy),
        runner=runner
        or Runner(
            device=settings.device,
            batch_size=settings.batch_size,
            allow_pickle=settings.allow_pickle,
            cache_dir=settings.home / "cache",
            data_dir=settings.home / "data",
            logs_dir=settings.home / "logs",
            progress=False,  # a worker's log is not a terminal
            responses=response_cache_for(settings),
        ),
        report_dir=settings.resolved_report_dir(),
        send=send,
        owner=default_owner(),
        lease_s=settings.lease_s,
        heartbeat_s=settings.heartbeat_s,
        resend_after_s=settings.resend_after_s,
        max_attempts=settings.max_attempts,
        queue_depth=queue_depth,
        hash_cache=HashCache(hash_cache_path(settings)),
        retry_backoff_s=settings.retry_backoff_s,
        retry_backoff_max_s=settings.retry_backoff_max_s,
        notify_failures=list(settings.notify_failures),
    )
