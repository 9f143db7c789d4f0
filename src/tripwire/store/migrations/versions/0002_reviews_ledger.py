"""reviews, tokens, notification outbox, ledger (backfilled with existing decisions and
evaluations, in id order)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30 01:27:08.293180
"""

from __future__ import annotations

from types import SimpleNamespace

import sqlalchemy as sa
from alembic import op

from tripwire.store import ledger as hashing

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column(
            "role",
            sa.Enum("viewer", "reviewer", "admin", name="role", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
        sa.UniqueConstraint("token_hash"),
    )
    op.create_table(
        "ledger",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("ref_id", sa.Integer(), nullable=False),
        sa.Column("body_hash", sa.String(length=64), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("entry_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("entry_hash"),
        sa.UniqueConstraint("kind", "ref_id"),
    )
    op.create_table(
        "notifications",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("event", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=255), nullable=False),
        sa.Column("checkpoint_id", sa.Integer(), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column(
            "state",
            sa.Enum(
                "pending", "sent", "failed", name="notificationstate", native_enum=False, length=32
            ),
            nullable=False,
        ),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["checkpoint_id"],
            ["checkpoints.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key"),
    )
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.create_index("ix_notifications_due", ["state", "next_attempt_at"], unique=False)

    op.create_table(
        "reviews",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("checkpoint_id", sa.Integer(), nullable=False),
        sa.Column("decision_id", sa.Integer(), nullable=True),
        sa.Column(
            "action",
            sa.Enum(
                "acknowledge",
                "approve",
                "escalate",
                "hold",
                "release",
                name="reviewaction",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("actor", sa.String(length=255), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["checkpoint_id"],
            ["checkpoints.id"],
        ),
        sa.ForeignKeyConstraint(
            ["decision_id"],
            ["decisions.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("reviews", schema=None) as batch_op:
        batch_op.create_index("ix_reviews_checkpoint", ["checkpoint_id"], unique=False)

    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.create_index("ix_jobs_checkpoint", ["checkpoint_id", "kind"], unique=False)
    _backfill_ledger()


def _backfill_ledger() -> None:
    """Existing decisions, then existing evaluations, enter the ledger in id order (their
    bodies hashed as ``tripwire.store.ledger`` hashes new ones)."""
    conn = op.get_bind()
    meta = sa.MetaData()
    decisions = sa.Table("decisions", meta, autoload_with=conn)
    evaluations = sa.Table("evaluations", meta, autoload_with=conn)
    scores = sa.Table("task_scores", meta, autoload_with=conn)
    ledger = sa.Table("ledger", meta, autoload_with=conn)
    prev = hashing.GENESIS_HASH
    rows: list[tuple[str, SimpleNamespace]] = []
    for row in conn.execute(sa.select(decisions).order_by(decisions.c.id)).mappings():
        rows.append(("decision", SimpleNamespace(**row)))
    for row in conn.execute(sa.select(evaluations).order_by(evaluations.c.id)).mappings():
        task_rows = conn.execute(
            sa.select(scores).where(scores.c.evaluation_id == row["id"])
        ).mappings()
        evaluation = SimpleNamespace(**row, scores=[SimpleNamespace(**s) for s in task_rows])
        rows.append(("evaluation", evaluation))
    for kind, item in rows:
        body = hashing.body_hash(kind, item)
        entry = hashing.entry_hash(prev, kind, item.id, body)
        conn.execute(
            ledger.insert().values(
                kind=kind,
                ref_id=item.id,
                body_hash=body,
                prev_hash=prev,
                entry_hash=entry,
                created_at=sa.func.now(),
            )
        )
        prev = entry


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_checkpoint")

    with op.batch_alter_table("reviews", schema=None) as batch_op:
        batch_op.drop_index("ix_reviews_checkpoint")

    op.drop_table("reviews")
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.drop_index("ix_notifications_due")

    op.drop_table("notifications")
    op.drop_table("ledger")
    op.drop_table("api_tokens")
