"""item texts, answers, and deep-suite levels

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 01:32:32.265627
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "item_texts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("n_items", sa.Integer(), nullable=False),
        sa.Column("blob", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("digest"),
    )
    with op.batch_alter_table("task_scores", schema=None) as batch_op:
        batch_op.add_column(sa.Column("texts_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("answers", sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column("alert_level", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("critical_level", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("level_verdict", sa.String(length=16), nullable=True))
        batch_op.create_foreign_key("fk_task_scores_texts", "item_texts", ["texts_id"], ["id"])


def downgrade() -> None:

    with op.batch_alter_table("task_scores", schema=None) as batch_op:
        batch_op.drop_constraint("fk_task_scores_texts", type_="foreignkey")
        batch_op.drop_column("level_verdict")
        batch_op.drop_column("critical_level")
        batch_op.drop_column("alert_level")
        batch_op.drop_column("answers")
        batch_op.drop_column("texts_id")

    op.drop_table("item_texts")
