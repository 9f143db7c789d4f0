"""tokens seen as a 64-bit integer

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 01:45:43.649774
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        return  # SQLite's INTEGER is already 64-bit; rebuilding the table would break its keys

    with op.batch_alter_table("checkpoints", schema=None) as batch_op:
        batch_op.alter_column(
            "tokens_seen", existing_type=sa.INTEGER(), type_=sa.BigInteger(), existing_nullable=True
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        return

    with op.batch_alter_table("checkpoints", schema=None) as batch_op:
        batch_op.alter_column(
            "tokens_seen", existing_type=sa.BigInteger(), type_=sa.INTEGER(), existing_nullable=True
        )
