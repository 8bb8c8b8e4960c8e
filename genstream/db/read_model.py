"""The lifecycle half of the read model: every job event the projection stored.

``jobs`` rows (``genstream.db.models.Job``) hold each job's current state; this table holds
the history that state was folded from, and its ``seq`` is the position event streams
resume from. Only the projection writes it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, Index, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from genstream.db.models import Base

__all__ = ["JOB_EVENTS_CHANNEL", "JobEventRow"]

JOB_EVENTS_CHANNEL = "genstream_job_events"
"""PostgreSQL ``NOTIFY`` channel: the payload is the id of a user with new job events."""


class JobEventRow(Base):
    __tablename__ = "job_events"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    """Commit order: the projection assigns and commits these one transaction at a time."""
    event_id: Mapped[str] = mapped_column(String(128), nullable=False, unique=True)
    job_id: Mapped[str] = mapped_column(String(128), nullable=False)
    user_id: Mapped[str] = mapped_column(String(128), nullable=False)
    type: Mapped[str] = mapped_column(String(255), nullable=False)
    """The wire type, such as ``genstream.job.completed.v1``."""
    time: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    data: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)

    __table_args__ = (
        Index("ix_job_events_job_seq", "job_id", "seq"),
        Index("ix_job_events_user_seq", "user_id", "seq"),
    )
