"""The read model's lifecycle: every job event, in the order the projection stored it.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def _job_columns() -> list[sa.Column[Any]]:
    """Lifecycle state the projection keeps on each job row, besides the columns of 0003."""
    return [
        sa.Column("queued_at", sa.DateTime(timezone=True)),
        sa.Column("started_at", sa.DateTime(timezone=True)),
        sa.Column("run_ms", sa.BigInteger()),
        sa.Column("error_code", sa.String(64)),
        sa.Column("preview", JSONB()),
        sa.Column("credits_charged", sa.BigInteger()),
    ]


def upgrade() -> None:
    op.create_table(
        "job_events",
        # bigserial: the order events became visible, which event streams resume from.
        sa.Column("seq", sa.BigInteger(), primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(128), nullable=False, unique=True),
        sa.Column("job_id", sa.String(128), nullable=False),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("type", sa.String(255), nullable=False),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("data", JSONB(), nullable=False),
    )
    op.create_index("ix_job_events_job_seq", "job_events", ["job_id", "seq"])
    op.create_index("ix_job_events_user_seq", "job_events", ["user_id", "seq"])
    for column in _job_columns():
        op.add_column("jobs", column)
    op.create_index("ix_jobs_user_created", "jobs", ["user_id", "created_at", "id"])
    op.create_index(
        "ix_jobs_queued",
        "jobs",
        ["tier", "type", "queued_at", "id"],
        postgresql_where=sa.text("status = 'queued'"),
    )
    op.create_index(
        "ix_jobs_completed_runs",
        "jobs",
        ["type", "finished_at"],
        postgresql_where=sa.text("status = 'completed'"),
    )
    op.create_index("ix_jobs_type_started", "jobs", ["type", "started_at"])


def downgrade() -> None:
    for index in ("ix_jobs_type_started", "ix_jobs_completed_runs", "ix_jobs_queued"):
        op.drop_index(index, table_name="jobs")
    op.drop_index("ix_jobs_user_created", table_name="jobs")
    for column in reversed(_job_columns()):
        op.drop_column("jobs", column.name)
    op.drop_table("job_events")
