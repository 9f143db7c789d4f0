"""Celery settings for long evaluation work. Every Tripwire process imports this one module.

Why each setting is what it is: ``docs/operations.md``. In short, the database is the source of
truth (job rows with leases), and the broker only carries requests to try.
"""

from __future__ import annotations

from typing import Any

from kombu import Connection, Queue  # type: ignore[attr-defined]

from tripwire.errors import BrokerError
from tripwire.settings import compose_hint, shown_url

QUEUES = ("proxy", "deep", "control")
"""``proxy``: proxy evaluations (GPU). ``deep``: deep evaluations (GPU). ``control``: decisions
and reports (CPU, quick)."""

TASK_ROUTES = {
    "tripwire.proxy_eval": {"queue": "proxy"},
    "tripwire.deep_eval": {"queue": "deep"},
    "tripwire.decide": {"queue": "control"},
    "tripwire.report": {"queue": "control"},
}


def celery_settings(
    broker_url: str,
    *,
    visibility_timeout_s: float = 6 * 3600.0,
    task_time_limit_s: float = 5 * 3600.0,
) -> dict[str, Any]:
    """The Celery configuration for ``broker_url`` (``memory://`` for the embedded mode).

    ``visibility_timeout_s``: Redis redelivers an unacknowledged task after this long; keep it
    above the longest evaluation (the job lease stops a redelivered copy from running twice
    anyway). ``task_time_limit_s``: the pool child is killed past it; the soft limit a little
    earlier lets the task release its job cleanly.
    """
    transport_options: dict[str, Any] = {
        "visibility_timeout": visibility_timeout_s,
        # How often a worker sweeps for unacknowledged messages past the visibility timeout
        # (kombu's default is about every 100 s); a copy redelivered this way finds its job
        # leased and returns at once.
        "unacked_restore_interval": max(1, min(10, int(visibility_timeout_s))),
        "unacked_restore_throttle": 1,
    }
    soft_limit = max(task_time_limit_s - min(300.0, task_time_limit_s / 10), 1.0)
    return {
        "broker_url": broker_url,
        "result_backend": None,
        "task_ignore_result": True,
        "task_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_time_limit": task_time_limit_s,
        "task_soft_time_limit": soft_limit,
        "task_send_sent_event": True,
        "worker_send_task_events": True,
        "task_queues": [Queue(name) for name in QUEUES],
        "task_default_queue": "control",
        "task_routes": TASK_ROUTES,
        "broker_transport_options": transport_options,
        "result_backend_transport_options": transport_options,
        "visibility_timeout": visibility_timeout_s,
        "broker_connection_retry_on_startup": True,
        "worker_hijack_root_logger": False,
        # ``--pool prefork`` means this subclass: exited children are replaced within 0.5 s.
        "worker_pool": "tripwire.jobs.pool:PromptRespawnTaskPool",
        "worker_cancel_long_running_tasks_on_connection_loss": True,
    }


def worker_argv(
    queues: list[str] | tuple[str, ...],
    concurrency: int,
    pool: str,
    loglevel: str,
    max_tasks_per_child: int = 1,
    hostname: str | None = None,
) -> list[str]:
    """Arguments for ``celery worker``. ``prefork`` is Tripwire's prefork pool (``worker_pool``)."""
    prefork = pool == "prefork"
    return [
        "worker",
        *([f"--hostname={hostname}"] if hostname else []),
        f"--queues={','.join(queues)}",
        f"--concurrency={concurrency}",
        f"--pool={pool}",
        # A fresh pool child per task: no state (or CUDA memory) carried between evaluations.
        *(
            [f"--max-tasks-per-child={max_tasks_per_child}"]
            if prefork and max_tasks_per_child
            else []
        ),
        f"--loglevel={loglevel}",
        "--without-gossip",
        "--without-mingle",
    ]


BROKER_CHECK_TIMEOUT_S = 5.0
"""How long ``check_broker`` waits for the broker to answer."""


def check_broker(broker_url: str) -> None:
    """Raise ``BrokerError`` (one line: the setting, the host, never a password) if the broker
    does not answer. Nothing to check for the embedded ``memory://`` transport."""
    if broker_url.startswith("memory://"):
        return
    try:
        with Connection(broker_url) as connection:
            connection.ensure_connection(
                max_retries=1, interval_start=0, interval_step=0, timeout=BROKER_CHECK_TIMEOUT_S
            )
    except Exception as exc:
        detail = str(exc).strip().splitlines()[0].rstrip(".") if str(exc).strip() else repr(exc)
        hint = (
            compose_hint(broker_url) or "; start it, or point TRIPWIRE_BROKER_URL at a running one"
        )
        raise BrokerError(
            f"cannot reach the broker at {shown_url(broker_url)} (TRIPWIRE_BROKER_URL): "
            f"{detail}{hint}"
        ) from None
