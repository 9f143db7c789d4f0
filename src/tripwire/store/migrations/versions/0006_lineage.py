"""lineage and compute columns; webhook intake events; object-store cursors

Revision ID: 0006_lineage
Revises: 0005
Create Date: 2026-11-30 04:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_lineage"
down_revision = "0005"
branch_labels = None
depends_on = None

_BIG = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("checkpoints", schema=None) as batch_op:
        batch_op.add_column(sa.Column("params_total", _BIG, nullable=True))
        batch_op.add_column(sa.Column("params_active", _BIG, nullable=True))
        batch_op.add_column(sa.Column("estimated_flop", sa.Float(), nullable=True))
    op.create_table(
        "intake_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("signature", sa.String(length=128), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.Integer(), nullable=False),
        sa.Column("uri", sa.Text(), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("checkpoint_id", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["checkpoint_id"], ["checkpoints.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("signature"),
    )
    op.create_index("ix_intake_events_state", "intake_events", ["state"])
    op.create_table(
        "source_cursors",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=1024), nullable=False),
        sa.Column("state", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("source"),
    )
    op.create_index("ix_checkpoint_locations_path", "checkpoint_locations", ["path"])


def downgrade() -> None:
    op.drop_index("ix_checkpoint_locations_path", table_name="checkpoint_locations")
    op.drop_table("source_cursors")
    op.drop_index("ix_intake_events_state", table_name="intake_events")
    op.drop_table("intake_events")
    with op.batch_alter_table("checkpoints", schema=None) as batch_op:
        batch_op.drop_column("estimated_flop")
        batch_op.drop_column("params_active")
        batch_op.drop_column("params_total")
