"""SQLAlchemy models: runs, checkpoints, evaluations, per-item outcomes, decisions and jobs.

Per-item outcomes are stored compactly: one packed float32 vector per task score, aligned to an
``ItemSet`` (an ordered list of item hashes stored once and shared by every evaluation that
scored the same items). 1,000 items cost 4 KB per evaluation, not 1,000 rows.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Dialect,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

STORE_SCHEMA_VERSION = 1


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every database.

    PostgreSQL keeps the zone; SQLite stores the text without it and hands back naive values.
    Every time Tripwire stores is UTC, so naive values read back are marked UTC here, once,
    instead of at every place that compares them with ``utcnow()``.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, list[Any]: JSON}


class CheckpointState(enum.StrEnum):
    """Where a checkpoint is in the loop."""

    discovered = "discovered"
    evaluated = "evaluated"
    """Proxy evaluation stored."""
    decided = "decided"
    """Policy evaluated; decisions stored."""
    failed = "failed"
    """Could not be evaluated; ``error`` says why."""


class JobState(enum.StrEnum):
    pending = "pending"
    running = "running"
    done = "done"
    failed = "failed"


class JobKind(enum.StrEnum):
    proxy_eval = "proxy_eval"
    decide = "decide"
    deep_eval = "deep_eval"
    report = "report"


class Run(Base):
    __tablename__ = "runs"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    checkpoints: Mapped[list[Checkpoint]] = relationship(back_populates="run")


class Checkpoint(Base):
    __tablename__ = "checkpoints"
    id: Mapped[int] = mapped_column(primary_key=True)
    content_hash: Mapped[str] = mapped_column(String(80), unique=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"))
    step: Mapped[int | None] = mapped_column(Integer)
    stage: Mapped[str] = mapped_column(String(64), default="pretrain")
    parents: Mapped[list[Any]] = mapped_column(default=list)
    tokens_seen: Mapped[int | None] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    """Tokens of training so far: trillions for a frontier run (a 64-bit column)."""
    training_flop: Mapped[float | None] = mapped_column(Float)
    """Declared training compute of the checkpoint's own run so far (FLOP)."""
    params_total: Mapped[int | None] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    params_active: Mapped[int | None] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    """Parameters per token (a mixture of experts: fewer than ``params_total``)."""
    estimated_flop: Mapped[float | None] = mapped_column(Float)
    """6·params_active·tokens_seen (FLOP): the run's own compute when none is declared."""
    meta: Mapped[dict[str, Any]] = mapped_column(default=dict)
    path: Mapped[str] = mapped_column(Text)
    """Where it was first seen; every location is in ``locations``."""
    state: Mapped[CheckpointState] = mapped_column(
        Enum(CheckpointState, native_enum=False, length=32), default=CheckpointState.discovered
    )
    error: Mapped[str | None] = mapped_column(Text)
    discovered_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    run: Mapped[Run] = relationship(back_populates="checkpoints")
    locations: Mapped[list[CheckpointLocation]] = relationship(back_populates="checkpoint")
    __table_args__ = (Index("ix_checkpoints_run_step", "run_id", "step"),)


class CheckpointLocation(Base):
    """A path at which a checkpoint's content was seen."""

    __tablename__ = "checkpoint_locations"
    id: Mapped[int] = mapped_column(primary_key=True)
    checkpoint_id: Mapped[int] = mapped_column(ForeignKey("checkpoints.id"))
    path: Mapped[str] = mapped_column(Text)
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    checkpoint: Mapped[Checkpoint] = relationship(back_populates="locations")
    __table_args__ = (
        UniqueConstraint("checkpoint_id", "path"),
        Index("ix_checkpoint_locations_path", "path"),
    )


class SourceFailure(Base):
    """A directory a source could not take (corrupt, refused); shown until it is fixed."""

    __tablename__ = "source_failures"
    id: Mapped[int] = mapped_column(primary_key=True)
    path: Mapped[str] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)
    first_seen: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    resolved: Mapped[bool] = mapped_column(default=False)

    __table_args__ = (Index("ix_source_failures_open", "resolved", "path"),)


class ItemSet(Base):
    """An ordered list of item hashes, stored once (zlib-compressed, newline-separated)."""

    __tablename__ = "item_sets"
    id: Mapped[int] = mapped_column(primary_key=True)
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    n_items: Mapped[int] = mapped_column(Integer)
    hashes: Mapped[bytes] = mapped_column(LargeBinary)


class ItemTexts(Base):
    """The prompts and targets of an item set under one task configuration, stored once
    (zlib-compressed JSON, aligned to the item set) and shared by every evaluation that asked
    them."""

    __tablename__ = "item_texts"
    id: Mapped[int] = mapped_column(primary_key=True)
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    n_items: Mapped[int] = mapped_column(Integer)
    blob: Mapped[bytes] = mapped_column(LargeBinary)


class Evaluation(Base):
    """One suite scored on one checkpoint."""

    __tablename__ = "evaluations"
    id: Mapped[int] = mapped_column(primary_key=True)
    checkpoint_id: Mapped[int] = mapped_column(ForeignKey("checkpoints.id"))
    kind: Mapped[str] = mapped_column(String(16))
    """``proxy`` or ``deep``."""
    suite_name: Mapped[str] = mapped_column(String(255))
    suite_hash: Mapped[str] = mapped_column(String(64))
    versions: Mapped[dict[str, Any]] = mapped_column(default=dict)
    seed: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    duration_s: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    scores: Mapped[list[TaskScore]] = relationship(
        back_populates="evaluation", cascade="all, delete-orphan"
    )
    __table_args__ = (UniqueConstraint("checkpoint_id", "suite_hash"),)


class TaskScore(Base):
    """One task's score within an evaluation, with its packed per-item outcomes."""

    __tablename__ = "task_scores"
    id: Mapped[int] = mapped_column(primary_key=True)
    evaluation_id: Mapped[int] = mapped_column(ForeignKey("evaluations.id"))
    task: Mapped[str] = mapped_column(String(255))
    metric: Mapped[str] = mapped_column(String(64))
    filter: Mapped[str] = mapped_column(String(64))
    score: Mapped[float] = mapped_column(Float)
    stderr: Mapped[float | None] = mapped_column(Float)
    n_items: Mapped[int] = mapped_column(Integer)
    num_fewshot: Mapped[int] = mapped_column(Integer)
    higher_is_better: Mapped[bool] = mapped_column(default=True)
    task_version: Mapped[str | None] = mapped_column(String(32))
    item_set_id: Mapped[int] = mapped_column(ForeignKey("item_sets.id"))
    outcomes: Mapped[bytes] = mapped_column(LargeBinary)
    """float32 little-endian, aligned to the item set."""
    texts_id: Mapped[int | None] = mapped_column(ForeignKey("item_texts.id"))
    """The items' prompts and targets, when the runner kept them."""
    answers: Mapped[bytes | None] = mapped_column(LargeBinary)
    """The checkpoint's answer to each item (zlib-compressed JSON list), when kept."""
    alert_level: Mapped[float | None] = mapped_column(Float)
    """Deep suites: the task's alert level (points) as the suite declared it."""
    critical_level: Mapped[float | None] = mapped_column(Float)
    level_verdict: Mapped[str | None] = mapped_column(String(16))
    """``critical``, ``alert``, ``below`` or ``unresolved`` (``tripwire.decisions.levels``)."""
    profile: Mapped[str | None] = mapped_column(String(64))
    """The elicitation profile the scores came from (on a task's own row: the best one)."""
    elicitation: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    """On a task's own row when it has profiles: ``results.Elicitation`` (scores, gap)."""
    inference_tokens: Mapped[int | None] = mapped_column(BigInteger)
    inference_flop: Mapped[float | None] = mapped_column(Float)
    """2 x parameters x ``inference_tokens``: the inference compute of this row's profile."""
    estimator: Mapped[str | None] = mapped_column(String(32))
    """``irt-anchor``: score and stderr estimate the full benchmark from anchor items."""
    shared_se: Mapped[float | None] = mapped_column(Float)
    """With an estimator: the standard error's part shared by estimates of one anchor file."""
    evaluation: Mapped[Evaluation] = relationship(back_populates="scores")
    item_set: Mapped[ItemSet] = relationship()
    texts: Mapped[ItemTexts | None] = relationship()
    __table_args__ = (UniqueConstraint("evaluation_id", "task"),)


class Decision(Base):
    """One rule evaluated for one checkpoint under one policy version; append-only, hash-chained."""

    __tablename__ = "decisions"
    id: Mapped[int] = mapped_column(primary_key=True)
    checkpoint_id: Mapped[int] = mapped_column(ForeignKey("checkpoints.id"))
    baseline_checkpoint_id: Mapped[int | None] = mapped_column(ForeignKey("checkpoints.id"))
    policy_name: Mapped[str] = mapped_column(String(255))
    policy_hash: Mapped[str] = mapped_column(String(64))
    rule_id: Mapped[str] = mapped_column(String(255))
    rule_type: Mapped[str] = mapped_column(String(64))
    severity: Mapped[str] = mapped_column(String(32))
    verdict: Mapped[str] = mapped_column(String(32))
    """``fired``, ``not_fired`` or ``undecidable``."""
    statistic: Mapped[float | None] = mapped_column(Float)
    interval_low: Mapped[float | None] = mapped_column(Float)
    interval_high: Mapped[float | None] = mapped_column(Float)
    p_value: Mapped[float | None] = mapped_column(Float)
    explanation: Mapped[str] = mapped_column(Text)
    inputs: Mapped[dict[str, Any]] = mapped_column(default=dict)
    actions: Mapped[dict[str, Any]] = mapped_column(default=dict)
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    prev_hash: Mapped[str] = mapped_column(String(64))
    record_hash: Mapped[str] = mapped_column(String(64), unique=True)
    __table_args__ = (
        UniqueConstraint("checkpoint_id", "policy_hash", "rule_id"),
        Index("ix_decisions_verdict_checkpoint", "verdict", "checkpoint_id"),
    )


class Job(Base):
    """A unit of work. The database, not the broker, says what has been done."""

    __tablename__ = "jobs"
    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(255), unique=True)
    """(kind, subject, suite/policy) identity: inserting an existing key is a no-op."""
    kind: Mapped[JobKind] = mapped_column(Enum(JobKind, native_enum=False, length=32))
    checkpoint_id: Mapped[int] = mapped_column(ForeignKey("checkpoints.id"))
    suite_path: Mapped[str | None] = mapped_column(Text)
    suite_hash: Mapped[str | None] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    state: Mapped[JobState] = mapped_column(
        Enum(JobState, native_enum=False, length=32), default=JobState.pending
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    owner: Mapped[str | None] = mapped_column(String(255))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    enqueued_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    checkpoint: Mapped[Checkpoint] = relationship()
    __table_args__ = (
        Index("ix_jobs_state", "state"),
        Index("ix_jobs_checkpoint", "checkpoint_id", "kind"),
        Index("ix_jobs_kind_state", "kind", "state"),
    )


class LogLock(Base):
    """One row, updated at the start of every decision-log append to serialise writers.

    An UPDATE takes a row lock on PostgreSQL and the write lock on SQLite, so two workers can
    never chain two decisions to the same predecessor.
    """

    __tablename__ = "log_lock"
    id: Mapped[int] = mapped_column(primary_key=True)
    counter: Mapped[int] = mapped_column(Integer, default=0)


class Role(enum.StrEnum):
    """What a token may do: read (``viewer``), act on reviews (``reviewer``), manage tokens
    (``admin``, who may also review)."""

    viewer = "viewer"
    reviewer = "reviewer"
    admin = "admin"


class ApiToken(Base):
    """A bearer token for the web app and API; only its sha256 is stored."""

    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    """Who holds it (a person or a pipeline); review actions are attributed to it."""
    role: Mapped[Role] = mapped_column(Enum(Role, native_enum=False, length=32))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    """sha256 (hex) of the token; the token itself is shown once, when created."""
    prefix: Mapped[str] = mapped_column(String(16))
    """The token's first characters, to tell tokens apart in listings."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ReviewAction(enum.StrEnum):
    """What a reviewer did about a checkpoint (and the decision that called for it)."""

    acknowledge = "acknowledge"
    approve = "approve"
    escalate = "escalate"
    hold = "hold"
    release = "release"


class Review(Base):
    """A person's action on a checkpoint, attributed to a token; append-only, in the ledger."""

    __tablename__ = "reviews"
    id: Mapped[int] = mapped_column(primary_key=True)
    checkpoint_id: Mapped[int] = mapped_column(ForeignKey("checkpoints.id"))
    decision_id: Mapped[int | None] = mapped_column(ForeignKey("decisions.id"))
    """The decision the action answers, when it answers one."""
    action: Mapped[ReviewAction] = mapped_column(Enum(ReviewAction, native_enum=False, length=32))
    comment: Mapped[str] = mapped_column(Text, default="")
    actor: Mapped[str] = mapped_column(String(255))
    """The token's name."""
    role: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    __table_args__ = (
        Index("ix_reviews_checkpoint", "checkpoint_id"),
        Index("ix_reviews_decision", "decision_id"),
    )


class NotificationState(enum.StrEnum):
    pending = "pending"
    sent = "sent"
    failed = "failed"
    """Given up after the last attempt; ``last_error`` says why."""


class Notification(Base):
    """An outbox row: one message to one channel, sent (with retries) by the outbox sender.

    ``key`` identifies the message: inserting a second row with the same key is a no-op, and
    receivers get it as an idempotency key, so a message sent twice (a crash between sending and
    marking it sent) is recognised as one.
    """

    __tablename__ = "notifications"
    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(255), unique=True)
    event: Mapped[str] = mapped_column(String(64))
    """``rule_fired``, ``job_failed``, ``review_hold``, ``review_overdue``."""
    channel: Mapped[str] = mapped_column(String(255))
    """A channel name from the notification settings (``notify: [safety-team]``)."""
    checkpoint_id: Mapped[int | None] = mapped_column(ForeignKey("checkpoints.id"))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    state: Mapped[NotificationState] = mapped_column(
        Enum(NotificationState, native_enum=False, length=32), default=NotificationState.pending
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    __table_args__ = (Index("ix_notifications_due", "state", "next_attempt_at"),)


class LedgerEntry(Base):
    """One link of the append-only, hash-chained log: a decision, a review or an evaluation.

    ``body_hash`` is the sha256 of the referenced row's canonical fields
    (``tripwire.store.ledger``), ``entry_hash`` chains it to the previous entry. ``audit
    verify`` recomputes both, so an edited, deleted or unlogged row is found.
    """

    __tablename__ = "ledger"
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    """``decision``, ``review`` or ``evaluation``."""
    ref_id: Mapped[int] = mapped_column(Integer)
    """The row's id in its table."""
    body_hash: Mapped[str] = mapped_column(String(64))
    prev_hash: Mapped[str] = mapped_column(String(64))
    entry_hash: Mapped[str] = mapped_column(String(64), unique=True)
    signature: Mapped[str | None] = mapped_column(String(128), nullable=True)
    """Ed25519 signature of the entry's id and hash (hex); None before the ledger was sealed."""
    key_id: Mapped[str | None] = mapped_column(String(16), nullable=True)
    """Which key signed it (``tripwire.store.seal.key_id``)."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    __table_args__ = (UniqueConstraint("kind", "ref_id"),)


def review_held(meta: dict[str, Any] | None) -> bool:
    """Whether a checkpoint's ``meta`` holds it for review (by a fired rule or a reviewer) and
    does not release it. A held checkpoint never becomes a baseline."""
    return bool((meta or {}).get("review_hold")) and not (meta or {}).get("review_released")


from tripwire.store.intake_models import IntakeEvent, SourceCursor  # noqa: E402

__all__ = ["IntakeEvent", "SourceCursor"]
