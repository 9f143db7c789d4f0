"""signed ledger entries; decisions, reviews, task scores and the ledger append-only

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 02:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tripwire.store.append_only import create_guards, drop_guards

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("ledger", sa.Column("signature", sa.String(length=128), nullable=True))
    op.add_column("ledger", sa.Column("key_id", sa.String(length=16), nullable=True))
    create_guards(op.get_bind())


def downgrade() -> None:
    drop_guards(op.get_bind())
    with op.batch_alter_table("ledger", schema=None) as batch_op:
        batch_op.drop_column("key_id")
        batch_op.drop_column("signature")
