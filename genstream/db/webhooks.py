"""Outgoing webhooks: each user's signing secret, the deliveries owed, and their attempts.

The dispatcher is the only writer of deliveries and attempts; the API reads them for the
delivery log and writes signing secrets (created on first use, rotated on request).
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from genstream.db.models import Base

__all__ = ["WebhookAttempt", "WebhookDelivery", "WebhookSecret"]


class WebhookSecret(Base):
    """A user's signing secret, sealed with the deployment's key; never stored in the clear."""

    __tablename__ = "webhook_secrets"

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    secret: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    previous_secret: Mapped[bytes | None] = mapped_column(LargeBinary)
    """The secret before the last rotation, still signing until ``previous_until``."""
    previous_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
    rotated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class WebhookDelivery(Base):
    """One event owed to one URL, with where its delivery stands."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(128), nullable=False)
    """The lifecycle event's envelope id; also the ``webhook-id`` of every attempt."""
    event_type: Mapped[str] = mapped_column(String(64), nullable=False)
    """The webhook's ``type``, such as ``job.completed``."""
    job_id: Mapped[str] = mapped_column(String(64), nullable=False)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
    )
    url: Mapped[str] = mapped_column(String(2048), nullable=False)
    payload: Mapped[str] = mapped_column(Text, nullable=False)
    """The exact JSON body, fixed once so that every attempt signs and sends the same bytes."""
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="pending")
    """pending, delivered or failed."""
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    """When the delivery is due; pushed ahead while a dispatcher holds it; ``None`` once done."""
    claim: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    """The token of the dispatcher holding it; only that holder may record the outcome."""
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(500))
    last_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )

    __table_args__ = (
        UniqueConstraint("event_id", "url", name="uq_webhook_deliveries_event_url"),
        # A job ends once: should two different terminal events ever reach the lifecycle,
        # only the first is announced. Its start, outputs and progress may be several.
        Index(
            "uq_webhook_deliveries_job_url_end",
            "job_id",
            "url",
            unique=True,
            postgresql_where=text(
                "event_type IN ('job.completed', 'job.failed', 'job.cancelled', "
                "'job.expired', 'job.rejected')"
            ),
        ),
        Index(
            "ix_webhook_deliveries_due",
            "next_attempt_at",
            postgresql_where=text("status = 'pending'"),
        ),
    )


class WebhookAttempt(Base):
    """One HTTP request of a delivery and what came of it."""

    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    delivery_id: Mapped[int] = mapped_column(
        ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), nullable=False
    )
    attempt: Mapped[int] = mapped_column(Integer, nullable=False)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    duration_ms: Mapped[int] = mapped_column(Integer, nullable=False)
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(String(500))

    __table_args__ = (
        UniqueConstraint("delivery_id", "attempt", name="uq_webhook_attempts_delivery_attempt"),
    )
