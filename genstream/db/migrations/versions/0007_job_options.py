"""What callers choose per job and per key: webhook events, metadata, end users, spend caps.

Jobs gain the webhook events their owner subscribed to, the caller's ``metadata`` and
``end_user``, the API key that submitted them and the credits quoted at submission (which a
key's daily spend cap counts), and ``deleted_at`` (hidden, files removed). A job may now have
several webhook deliveries (its start, outputs, progress): the one-per-job rule holds for
its end alone.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_ENDS = "('job.completed', 'job.failed', 'job.cancelled', 'job.expired', 'job.rejected')"


def upgrade() -> None:
    op.add_column("jobs", sa.Column("webhook_events", JSONB()))
    op.add_column("jobs", sa.Column("metadata", JSONB()))
    op.add_column("jobs", sa.Column("end_user", sa.String(128)))
    op.add_column("jobs", sa.Column("api_key_id", sa.Uuid()))
    op.add_column("jobs", sa.Column("credits_quoted", sa.BigInteger()))
    op.add_column("jobs", sa.Column("deleted_at", sa.DateTime(timezone=True)))
    op.create_index(
        "ix_jobs_user_end_user",
        "jobs",
        ["user_id", "end_user", "created_at"],
        postgresql_where=sa.text("end_user IS NOT NULL"),
    )
    op.create_index(
        "ix_jobs_api_key_created",
        "jobs",
        ["api_key_id", "created_at"],
        postgresql_where=sa.text("api_key_id IS NOT NULL"),
    )
    op.add_column("api_keys", sa.Column("daily_credit_cap", sa.BigInteger()))
    op.drop_constraint("uq_webhook_deliveries_job_url", "webhook_deliveries", type_="unique")
    op.create_index(
        "uq_webhook_deliveries_job_url_end",
        "webhook_deliveries",
        ["job_id", "url"],
        unique=True,
        postgresql_where=sa.text(f"event_type IN {_ENDS}"),
    )


def downgrade() -> None:
    op.drop_index("uq_webhook_deliveries_job_url_end", table_name="webhook_deliveries")
    op.execute(
        f"DELETE FROM webhook_deliveries WHERE event_type NOT IN {_ENDS}"  # noqa: S608 - constant
    )
    op.create_unique_constraint(
        "uq_webhook_deliveries_job_url", "webhook_deliveries", ["job_id", "url"]
    )
    op.drop_column("api_keys", "daily_credit_cap")
    op.drop_index("ix_jobs_api_key_created", table_name="jobs")
    op.drop_index("ix_jobs_user_end_user", table_name="jobs")
    for column in (
        "deleted_at",
        "credits_quoted",
        "api_key_id",
        "end_user",
        "metadata",
        "webhook_events",
    ):
        op.drop_column("jobs", column)
