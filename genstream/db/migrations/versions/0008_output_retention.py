"""When a job's outputs were removed by its plan's retention (``output_retention_days``).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("outputs_expired_at", sa.DateTime(timezone=True)))
    # The sweep's question: finished jobs whose outputs are still stored, oldest first.
    op.create_index(
        "ix_jobs_outputs_kept",
        "jobs",
        ["finished_at"],
        postgresql_where=sa.text(
            "outputs_expired_at IS NULL AND deleted_at IS NULL AND finished_at IS NOT NULL"
        ),
    )


def downgrade() -> None:
    op.drop_index("ix_jobs_outputs_kept", table_name="jobs")
    op.drop_column("jobs", "outputs_expired_at")
