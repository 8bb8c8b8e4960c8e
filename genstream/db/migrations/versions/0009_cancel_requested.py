"""When the owner's cancellation of a job was acknowledged: reads show it ``cancelling``.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("cancel_requested_at", sa.DateTime(timezone=True)))


def downgrade() -> None:
    op.drop_column("jobs", "cancel_requested_at")
