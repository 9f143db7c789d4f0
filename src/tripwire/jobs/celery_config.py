"""Celery settings for long evaluation work. Every Tripwire process imports this one module.

Why each setting is what it is: ``docs/operations.md``. In short, the database is the source of
truth (job rows with leases), and the broker only carries requests to try.
"""

from __future__ import annotations

from typing import Any

from kombu import Queue  # type: ignore[attr-defined]

QUEUES = ("proxy", "deep", "control")
"""``proxy``: proxy evaluations (GPU). ``deep``: deep evaluations (GPU). ``control``: decisions
and reports (CPU, quick)."""

TASK_ROUTES = {
    "tripwire.proxy_eval": {"queue": "proxy"},
    "tripwire.deep_eval": {"queue": "deep"},
    "tripwire.decide": {"queue": "control"},
    "tripwire.report": {"queue": "control"},
}

VISIBILITY_TIMEOUT_S = 6 * 3600
"""Redis redelivers an unacknowledged task after this long; above the longest evaluation."""
TASK_TIME_LIMIT_S = 5 * 3600
"""Hard limit on one task; the pool child is killed past it."""
TASK_SOFT_TIME_LIMIT_S = TASK_TIME_LIMIT_S - 300
"""Soft limit: the task gets an exception and can release its job cleanly."""


def celery_settings(broker_url: str) -> dict[str, Any]:
    """The Celery configuration for ``broker_url`` (``memory://`` for the embedded mode)."""
    transport_options = {"visibility_timeout": VISIBILITY_TIMEOUT_S}
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
        "task_time_limit": TASK_TIME_LIMIT_S,
        "task_soft_time_limit": TASK_SOFT_TIME_LIMIT_S,
        "task_send_sent_event": True,
        "worker_send_task_events": True,
        "task_queues": [Queue(name) for name in QUEUES],
        "task_default_queue": "control",
        "task_routes": TASK_ROUTES,
        "broker_transport_options": transport_options,
        "result_backend_transport_options": transport_options,
        "visibility_timeout": VISIBILITY_TIMEOUT_S,
        "broker_connection_retry_on_startup": True,
        "worker_hijack_root_logger": False,
        "worker_cancel_long_running_tasks_on_connection_loss": True,
    }
