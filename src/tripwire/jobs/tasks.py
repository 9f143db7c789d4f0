"""Celery tasks: thin wrappers that run a job by id. The database holds the job's state."""

from __future__ import annotations

import logging
import threading
from datetime import datetime
from typing import Any

from celery import Celery
from kombu.exceptions import ChannelError

from tripwire.failures import FailureKind, classify_failure
from tripwire.jobs import celery_config
from tripwire.jobs.celery_config import celery_settings, worker_argv
from tripwire.jobs.context import Context, context_from_settings
from tripwire.jobs.pipeline import run_job
from tripwire.settings import Settings

log = logging.getLogger(__name__)

app = Celery("tripwire")


def _settings_for(broker_url: str, settings: Settings | None = None) -> dict[str, Any]:
    settings = settings or Settings()
    return celery_settings(
        broker_url,
        visibility_timeout_s=settings.visibility_timeout_s,
        task_time_limit_s=settings.task_time_limit_s,
    )


app.conf.update(_settings_for(Settings().broker_url or "memory://localhost/"))

_context: Context | None = None
_context_lock = threading.Lock()


def configure(broker_url: str, settings: Settings | None = None) -> None:
    """Point the app at a broker.

    Celery caches its connection and producer pools on first use, so a change of broker in a
    running process (tests, or the demo after a ``watch``) must drop them too; otherwise sends
    would still go to the old broker while the worker listens on the new one.
    """
    changed = app.conf.broker_url != broker_url
    app.conf.update(_settings_for(broker_url, settings))
    if not changed:
        return
    # Drop, do not close: kombu keeps one pool per broker URL process-wide and hands the same
    # one back if this process points at that broker again.
    app._pool = None
    amqp = app.__dict__.get("amqp")
    if amqp is not None:
        amqp._producer_pool = None


def send(task_name: str, job_id: int, /, *, eta: datetime | None = None) -> None:
    """The context's sender: one message per job, routed to its queue by task name.

    With ``eta`` the worker that receives it holds it (unacknowledged) until then: the pause
    before a retry. The job row says when it is due, so the reconciler never sends it earlier.
    """
    app.send_task(task_name, args=[job_id], eta=eta)


def check_broker() -> None:
    """Raise ``BrokerError`` in one line if the configured broker does not answer."""
    celery_config.check_broker(str(app.conf.broker_url))


def queue_depth(queue: str) -> int | None:
    """Messages waiting in ``queue`` at the broker; None if the broker cannot be asked."""
    try:
        with app.connection_for_write() as connection:
            channel = connection.default_channel
            try:
                declared = channel.queue_declare(queue=queue, passive=True)
            except ChannelError:  # no such queue: nothing waits there (e.g. a wiped Redis)
                return 0
            return int(declared.message_count)
    except Exception:
        log.debug("cannot read the depth of queue %s", queue, exc_info=True)
        return None


def set_context(ctx: Context | None) -> None:
    """Use ``ctx`` for every task in this process (the embedded worker and tests)."""
    global _context
    _context = ctx


def get_context() -> Context:
    global _context
    with _context_lock:
        if _context is None:
            _context = context_from_settings(Settings(), send, queue_depth)
        return _context


def _run(job_id: int) -> str:
    try:
        outcome = run_job(get_context(), job_id)
    except Exception as exc:
        failure = classify_failure(exc)
        if failure.kind != FailureKind.transient:
            raise
        # The database (or broker) is unreachable, so nothing could be recorded: a claimed job's
        # lease expires and the reconciler re-sends it; an unclaimed one is still pending.
        log.warning("job %s: %s; the reconciler will send it again", job_id, failure.reason)
        return "interrupted"
    log.info("job %s: %s", job_id, outcome)
    return outcome


@app.task(name="tripwire.proxy_eval")
def proxy_eval(job_id: int) -> str:
    return _run(job_id)


@app.task(name="tripwire.deep_eval")
def deep_eval(job_id: int) -> str:
    return _run(job_id)


@app.task(name="tripwire.decide")
def decide(job_id: int) -> str:
    return _run(job_id)


@app.task(name="tripwire.report")
def report(job_id: int) -> str:
    return _run(job_id)


def start_worker(**kwargs: Any) -> None:
    """Run a Celery worker in this process until it is stopped."""
    app.worker_main(worker_argv(**kwargs))
