"""indexes for the hot paths: jobs by kind and state, fired decisions, open source failures, reviews
by decision

Revision ID: 0009_hot_path_indexes
Revises: 0008_anchor_estimates
Create Date: 2026-11-30 04:45:00

Self-contained: only ``create_index``/``drop_index`` on tables that exist since 0002, so the
file can be re-chained after another 0006 without change. The query plans these indexes serve
are checked in ``tests/store/test_query_plans.py``.
"""

from __future__ import annotations

from alembic import op

revision = "0009_hot_path_indexes"
down_revision = "0008_anchor_estimates"
branch_labels = None
depends_on = None

INDEXES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    # status job counts (a covering index), pending decide jobs of a run
    ("ix_jobs_kind_state", "jobs", ("kind", "state")),
    # reviews, metrics, overdue notifications: fired decisions
    ("ix_decisions_verdict_checkpoint", "decisions", ("verdict", "checkpoint_id")),
    # every scan: the open folder notes, and one folder's
    ("ix_source_failures_open", "source_failures", ("resolved", "path")),
    # overdue notifications: the reviews of a decision
    ("ix_reviews_decision", "reviews", ("decision_id",)),
)


def upgrade() -> None:
    for name, table, columns in INDEXES:
        op.create_index(name, table, list(columns), unique=False)


def downgrade() -> None:
    for name, table, _ in reversed(INDEXES):
        op.drop_index(name, table_name=table)
