"""Prometheus metrics, read from the database and the broker at scrape time.

The database is the source of truth, so the metrics are computed from it when Prometheus
scrapes, not counted in some process's memory: every API replica reports the same numbers, and
a restart loses nothing. Each scrape runs a few aggregate (``GROUP BY``) queries and one Redis
pipeline of ``LLEN`` calls. What each metric measures: ``docs/operations.md`` ("Metrics").
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Any, TypeVar

import redis
from kombu.transport.redis import PRIORITY_STEPS
from kombu.transport.redis import Channel as RedisChannel
from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from sqlalchemy import ColumnElement, Float, Select, case, cast, func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from tripwire.jobs import retry
from tripwire.jobs.celery_config import QUEUES
from tripwire.notify.sender import counts_by_state
from tripwire.store import source_state
from tripwire.store.db import Database
from tripwire.store.models import (
    Checkpoint,
    CheckpointState,
    Decision,
    Job,
    JobKind,
    JobState,
    utcnow,
)
from tripwire.store.source_state import NoteKind

log = logging.getLogger(__name__)

DURATION_BUCKETS_S = (1.0, 10.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0)
"""Upper bounds (seconds) of the job-duration histogram: from a report (seconds) to a deep
evaluation (hours)."""
REDIS_TIMEOUT_S = 2.0
"""Connect and read timeout for the queue-depth probe, so a dead broker cannot hang a scrape."""
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")

Clock = Callable[[], datetime]
T = TypeVar("T")


def broker_client(broker_url: str | None) -> redis.Redis | None:
    """A Redis client for a Redis broker URL; None for the embedded (in-memory) broker and for
    other transports, whose queues are not read."""
    if not broker_url or not broker_url.startswith(REDIS_SCHEMES):
        return None
    client: redis.Redis = redis.Redis.from_url(
        broker_url, socket_timeout=REDIS_TIMEOUT_S, socket_connect_timeout=REDIS_TIMEOUT_S
    )
    return client


def queue_keys(queue: str) -> list[str]:
    """The Redis lists kombu keeps for one queue: one per priority step (0 is the bare name)."""
    return [queue if pri == 0 else f"{queue}{RedisChannel.sep}{pri}" for pri in PRIORITY_STEPS]


def _seconds_between(session: Session, start: Any, end: Any) -> ColumnElement[float]:
    """``end - start`` in seconds, in SQL (SQLite has no interval type)."""
    if session.get_bind().dialect.name == "sqlite":
        return (func.julianday(end) - func.julianday(start)) * 86400.0
    return cast(func.extract("epoch", end - start), Float)


class TripwireCollector(Collector):
    """Reads job, decision and queue state at each scrape.

    ``clock`` gives "now" for lease expiry and pending age (injected by tests).
    """

    def __init__(
        self,
        db: Database,
        broker: redis.Redis | None = None,
        *,
        clock: Clock = utcnow,
        buckets_s: Iterable[float] = DURATION_BUCKETS_S,
    ) -> None:
        self.db = db
        self.broker = broker
        self.clock = clock
        self.buckets_s = tuple(sorted(buckets_s))

    def collect(self) -> Iterator[Metric]:
        yield from self._database_metrics()
        yield from self._broker_metrics()

    # ------------------------------------------------------------ database

    def _database_metrics(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "tripwire_database_up", "1 if the last scrape could read the database, else 0."
        )
        try:
            with self.db.session() as session:
                families = list(self._read_database(session, self.clock()))
        except SQLAlchemyError as exc:
            log.warning("metrics: cannot read the database: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    def _read_database(self, session: Session, now: datetime) -> Iterator[Metric]:
        kinds = [kind.value for kind in JobKind]

        jobs = GaugeMetricFamily(
            "tripwire_jobs", "Jobs by kind and state (database rows).", labels=["kind", "state"]
        )
        counts = {
            (JobKind(kind).value, JobState(state).value): n
            for kind, state, n in session.execute(
                select(Job.kind, Job.state, func.count()).group_by(Job.kind, Job.state)
            ).tuples()
        }
        for kind in kinds:
            for job_state in JobState:
                jobs.add_metric([kind, job_state.value], counts.get((kind, job_state.value), 0))
        yield jobs

        yield self._durations(session)

        redeliveries = CounterMetricFamily(
            "tripwire_job_redeliveries",
            "Attempts beyond the first, summed over jobs (attempts - 1 where attempts > 1).",
            labels=["kind"],
        )
        extra = _per_kind(
            session,
            select(Job.kind, func.sum(Job.attempts - 1)).where(Job.attempts > 1).group_by(Job.kind),
        )
        for kind in kinds:
            redeliveries.add_metric([kind], int(extra.get(kind) or 0))
        yield redeliveries

        expired = GaugeMetricFamily(
            "tripwire_job_leases_expired",
            "Running jobs whose lease has passed (worker lost; the reconciler will resend them).",
            labels=["kind"],
        )
        expired_counts = _per_kind(
            session,
            select(Job.kind, func.count())
            .where(Job.state == JobState.running, Job.lease_until < now)
            .group_by(Job.kind),
        )
        for kind in kinds:
            expired.add_metric([kind], expired_counts.get(kind, 0))
        yield expired

        oldest = GaugeMetricFamily(
            "tripwire_oldest_pending_job_age_seconds",
            "Age (since creation) of the oldest pending job; 0 when none is pending.",
            labels=["kind"],
        )
        created = _per_kind(
            session,
            select(Job.kind, func.min(Job.created_at))
            .where(Job.state == JobState.pending)
            .group_by(Job.kind),
        )
        for kind in kinds:
            first = created.get(kind)
            age = max((now - first).total_seconds(), 0.0) if first is not None else 0.0
            oldest.add_metric([kind], age)
        yield oldest

        fired = CounterMetricFamily(
            "tripwire_triggers_fired",
            "Decisions whose verdict is 'fired', by policy, rule and severity.",
            labels=["policy", "rule", "severity"],
        )
        for policy, rule, severity, n in session.execute(
            select(Decision.policy_name, Decision.rule_id, Decision.severity, func.count())
            .where(Decision.verdict == "fired")
            .group_by(Decision.policy_name, Decision.rule_id, Decision.severity)
            .order_by(Decision.policy_name, Decision.rule_id, Decision.severity)
        ).tuples():
            fired.add_metric([policy, rule, severity], n)
        yield fired

        checkpoints = GaugeMetricFamily(
            "tripwire_checkpoints", "Checkpoints by state.", labels=["state"]
        )
        by_state = {
            CheckpointState(state).value: n
            for state, n in session.execute(
                select(Checkpoint.state, func.count()).group_by(Checkpoint.state)
            ).tuples()
        }
        for cp_state in CheckpointState:
            checkpoints.add_metric([cp_state.value], by_state.get(cp_state.value, 0))
        yield checkpoints

        notifications = GaugeMetricFamily(
            "tripwire_notifications",
            "Notification outbox rows by state (pending, sent, failed).",
            labels=["state"],
        )
        for note_state, n in counts_by_state(session).items():
            notifications.add_metric([note_state.value], n)
        yield notifications

        yield from self._watcher_metrics(session, now)

    def _watcher_metrics(self, session: Session, now: datetime) -> Iterator[Metric]:
        """Folders waiting or refused, scans failing, and how long ago a watcher reconciled."""
        folders = GaugeMetricFamily(
            "tripwire_source_folders",
            "Checkpoint folders a watcher reported: failed (refused or corrupt) or waiting "
            "(not complete yet).",
            labels=["state"],
        )
        notes = source_state.folder_notes(session, [NoteKind.failed, NoteKind.waiting])
        for kind in (NoteKind.failed, NoteKind.waiting):
            folders.add_metric([kind.value], sum(note.kind == kind for note in notes))
        yield folders
        health = source_state.reconcile_health(session, now)
        scans = GaugeMetricFamily(
            "tripwire_scan_failures", "Watched folders whose last scan failed."
        )
        scans.add_metric([], health.scan_failures)
        yield scans
        overdue = GaugeMetricFamily(
            "tripwire_reconcile_overdue",
            "1 when the watchers that are running have not reconciled for 5 of their intervals "
            "(at least 60 s): lost work is not being re-sent.",
        )
        overdue.add_metric([], 1 if health.state == "overdue" else 0)
        yield overdue
        if health.age_s is not None:
            age = GaugeMetricFamily(
                "tripwire_reconcile_age_seconds",
                "Seconds since a running watcher last reconciled (absent when none runs).",
            )
            age.add_metric([], health.age_s)
            yield age

    def _durations(self, session: Session) -> HistogramMetricFamily:
        """Claim-to-finish time of finished jobs (their last attempt), bucketed in SQL."""
        duration = _seconds_between(session, Job.started_at, Job.finished_at)
        bucket_columns = [
            func.sum(case((duration <= bound, 1), else_=0)) for bound in self.buckets_s
        ]
        rows = session.execute(
            select(Job.kind, Job.state, func.count(), func.sum(duration), *bucket_columns)
            .where(
                Job.state.in_([JobState.done, JobState.failed]),
                Job.started_at.is_not(None),
                Job.finished_at.is_not(None),
            )
            .group_by(Job.kind, Job.state)
            .order_by(Job.kind, Job.state)
        ).all()
        family = HistogramMetricFamily(
            "tripwire_job_duration_seconds",
            "Time from a job's last claim to its end, for done and failed jobs.",
            labels=["kind", "state"],
        )
        for kind, state, count, total, *cumulative in rows:
            buckets = [
                (_bound(bound), float(n or 0))
                for bound, n in zip(self.buckets_s, cumulative, strict=True)
            ]
            buckets.append(("+Inf", float(count)))
            family.add_metric(
                [JobKind(kind).value, JobState(state).value], buckets, float(total or 0.0)
            )
        return family

    # ------------------------------------------------------------ broker

    def _broker_metrics(self) -> Iterator[Metric]:
        """Queue depth from Redis; nothing for the embedded broker, which lives in another
        process's memory."""
        if self.broker is None:
            return
        up = GaugeMetricFamily(
            "tripwire_broker_up", "1 if the last scrape could read the Redis broker, else 0."
        )
        try:
            with self.broker.pipeline(transaction=False) as pipe:
                for queue in QUEUES:
                    for key in queue_keys(queue):
                        pipe.llen(key)
                pipe.hvals(RedisChannel.unacked_key)
                sizes = pipe.execute()
        except redis.RedisError as exc:
            log.warning("metrics: cannot read the broker: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        depth = GaugeMetricFamily(
            "tripwire_queue_messages",
            "Messages waiting in each Celery queue (all priority lists).",
            labels=["queue"],
        )
        steps = len(PRIORITY_STEPS)
        for i, queue in enumerate(QUEUES):
            depth.add_metric([queue], sum(int(n) for n in sizes[i * steps : (i + 1) * steps]))
        yield depth
        held, orphaned = self._unacked(sizes[-1])
        unacked = GaugeMetricFamily(
            "tripwire_queue_unacked_messages",
            "Messages a live worker holds unacknowledged: its job runs under a live lease, or "
            "waits out a retry pause.",
        )
        unacked.add_metric([], held)
        yield unacked
        lost = GaugeMetricFamily(
            "tripwire_queue_unacked_orphaned_messages",
            "Unacknowledged messages no live worker holds (their worker was lost, or their job "
            "is over); Redis gives them back after the visibility timeout.",
        )
        lost.add_metric([], orphaned)
        yield lost

    def _unacked(self, payloads: list[bytes]) -> tuple[int, int]:
        """(held, orphaned) among Redis's unacknowledged messages, judged by their jobs' rows.

        Redis keeps a message in ``unacked`` from delivery to acknowledgement, and a worker that
        dies leaves it there until the visibility timeout: counting the hash alone says 1 after
        a crash with nothing running. A message is held when its job is running under a live
        lease, or pending with a retry due later (the worker holds it until its ETA); one that
        cannot be read counts as held, one whose job does not exist as orphaned.
        """
        job_ids = [_job_id(raw) for raw in payloads]
        known = [job_id for job_id in job_ids if job_id is not None]
        rows: dict[int, Job] = {}
        if known:
            try:
                with self.db.session() as session:
                    rows = {
                        job.id: job for job in session.scalars(select(Job).where(Job.id.in_(known)))
                    }
            except SQLAlchemyError:
                return len(payloads), 0
        now = self.clock()
        held = 0
        for job_id in job_ids:
            job = rows.get(job_id) if job_id is not None else None
            if job_id is None or (job is not None and _holds(job, now)):
                held += 1
        return held, len(payloads) - held


def _job_id(raw: bytes) -> int | None:
    """The job id a Celery message carries (its first argument), or None if unreadable."""
    try:
        message = json.loads(raw)[0]
        body = message["body"]
        if message.get("properties", {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        args = json.loads(body)[0]
        return int(args[0])
    except (ValueError, KeyError, IndexError, TypeError):
        return None


def _holds(job: Job, now: datetime) -> bool:
    if job.state == JobState.running:
        return job.lease_until is not None and job.lease_until >= now
    if job.state == JobState.pending:
        return retry.not_due(job, now) is not None
    return False


def _per_kind(session: Session, statement: Select[JobKind, T]) -> dict[str, T]:
    """Rows of (job kind, value) as {kind name: value}."""
    return {JobKind(kind).value: value for kind, value in session.execute(statement).tuples()}


def _bound(value: float) -> str:
    """A bucket bound as Prometheus writes it (``60.0``)."""
    return repr(float(value))


def metrics_registry(collector: TripwireCollector) -> CollectorRegistry:
    """A registry of its own (not the process-global one), holding only Tripwire's collector."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry
