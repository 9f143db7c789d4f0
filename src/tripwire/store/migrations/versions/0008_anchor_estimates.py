"""task scores estimated from anchor items: estimator and shared standard error

Revision ID: 0008_anchor_estimates
Revises: 0007_elicitation
Create Date: 2026-11-30 05:50:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tripwire.store.append_only import create_guards, drop_guards

revision = "0008_anchor_estimates"
down_revision = "0007_elicitation"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # plain ADD COLUMN (no table rebuild), so the append-only guards of 0005 stay in place
    op.add_column("task_scores", sa.Column("estimator", sa.String(length=32), nullable=True))
    op.add_column("task_scores", sa.Column("shared_se", sa.Float(), nullable=True))


def downgrade() -> None:
    bind = op.get_bind()
    drop_guards(bind)
    with op.batch_alter_table("task_scores", schema=None) as batch_op:
        batch_op.drop_column("shared_se")
        batch_op.drop_column("estimator")
    create_guards(bind)
