"""elicitation profiles: a task score's profile, every profile's score, inference compute

Revision ID: 0007_elicitation
Revises: 0006_lineage
Create Date: 2026-11-30 05:10:00

Plain ADD COLUMN (never a table rebuild), so the append-only triggers on task_scores stay.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tripwire.store.append_only import create_guards, drop_guards

revision = "0007_elicitation"
down_revision = "0006_lineage"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("task_scores", sa.Column("profile", sa.String(length=64), nullable=True))
    op.add_column("task_scores", sa.Column("elicitation", sa.JSON(), nullable=True))
    op.add_column("task_scores", sa.Column("inference_tokens", sa.BigInteger(), nullable=True))
    op.add_column("task_scores", sa.Column("inference_flop", sa.Float(), nullable=True))


def downgrade() -> None:
    bind = op.get_bind()
    drop_guards(bind)
    with op.batch_alter_table("task_scores", schema=None) as batch_op:
        for column in ("inference_flop", "inference_tokens", "elicitation", "profile"):
            batch_op.drop_column(column)
    create_guards(bind)
