"""The PostgreSQL schema genstream owns, as SQLAlchemy 2 models (migrations follow it).

Users and their credentials are written by the API. Credit balances and the ledger are a
read model: only the projection writes them, from the ``credits.ledger`` topic.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


def _created_at() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())


class OutboxMessage(Base):
    """An event committed with the database change that caused it, awaiting its relay to Kafka."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    event_id: Mapped[Any] = mapped_column(Uuid, unique=True, nullable=False)
    topic: Mapped[str] = mapped_column(String(249), nullable=False)
    key: Mapped[bytes | None] = mapped_column(LargeBinary)
    value: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    headers: Mapped[list[list[str]]] = mapped_column(JSONB, nullable=False, default=list)
    created_at: Mapped[datetime] = _created_at()
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    partition: Mapped[int | None] = mapped_column(Integer)
    """Set with ``in_doubt_from`` before a send: where to look for the record after a crash."""
    in_doubt_from: Mapped[int | None] = mapped_column(BigInteger)
    """The partition's end offset just before the send; the record, if written, is after it."""

    __table_args__ = (
        Index("ix_outbox_unpublished", "id", postgresql_where=text("published_at IS NULL")),
    )


class User(Base):
    __tablename__ = "users"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    email: Mapped[str] = mapped_column(String(320), nullable=False, unique=True)
    """Stored lower-cased, so uniqueness ignores case."""
    password_hash: Mapped[str | None] = mapped_column(String(255))
    """Argon2id; ``None`` for users who only sign in through OIDC."""
    plan: Mapped[str] = mapped_column(String(16), nullable=False, default="FREE")
    role: Mapped[str] = mapped_column(String(16), nullable=False, server_default="user")
    """``user``, or ``admin`` for operators (``genstream admin grant``)."""
    oidc_issuer: Mapped[str | None] = mapped_column(String(512))
    oidc_subject: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = _created_at()

    __table_args__ = (UniqueConstraint("oidc_issuer", "oidc_subject", name="uq_users_oidc"),)


class AuthSession(Base):
    """One sign-in: the family of refresh tokens that rotate from it."""

    __tablename__ = "auth_sessions"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
    )
    created_at: Mapped[datetime] = _created_at()
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class RefreshToken(Base):
    __tablename__ = "refresh_tokens"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    session_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("auth_sessions.id", ondelete="CASCADE"), nullable=False, index=True
    )
    token_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    """SHA-256 of the token; the token itself is never stored."""
    issued_at: Mapped[datetime] = _created_at()
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    """Set when the token was exchanged; a second use revokes the whole session."""


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
    )
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    prefix: Mapped[str] = mapped_column(String(16), nullable=False)
    """The key's first characters, shown in listings so users can tell keys apart."""
    key_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    created_at: Mapped[datetime] = _created_at()
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    daily_credit_cap: Mapped[int | None] = mapped_column(BigInteger)
    """Credits the key's jobs may cost per UTC day; ``None``: no cap but the balance."""


class PaymentEvent(Base):
    """A payment provider event already handled; its id makes redelivery harmless."""

    __tablename__ = "payment_events"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    type: Mapped[str] = mapped_column(String(100), nullable=False)
    received_at: Mapped[datetime] = _created_at()


class RateLimitWindow(Base):
    """Requests counted per key in fixed windows, shared by every API process."""

    __tablename__ = "rate_limit_windows"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    count: Mapped[int] = mapped_column(Integer, nullable=False)


class CreditBalance(Base):
    """A user's credits as the ledger says: available and held for running jobs."""

    __tablename__ = "credit_balances"

    user_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    balance: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    reserved: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )


class CreditLedgerEntry(Base):
    __tablename__ = "credit_ledger"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(128), nullable=False, unique=True)
    user_id: Mapped[str] = mapped_column(String(64), nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    """granted, purchased, reserved, settled or released."""
    amount: Mapped[int] = mapped_column(BigInteger, nullable=False)
    """The change of the available balance (negative for a reservation)."""
    reserved_change: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    job_id: Mapped[str | None] = mapped_column(String(128))
    idempotency_key: Mapped[str] = mapped_column(String(255), nullable=False)
    detail: Mapped[str | None] = mapped_column(String(255))
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)

    __table_args__ = (Index("ix_credit_ledger_user_seq", "user_id", "seq"),)


class Job(Base):
    """A submitted job. The API writes the submission; the projection owns every later state."""

    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
    )
    type: Mapped[str] = mapped_column(String(32), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="pending")
    input: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    media: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    """What the API measured of the job's upload (``MediaInfo``), as sent with the request."""
    webhook_url: Mapped[str | None] = mapped_column(String(2048))
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    request_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    """SHA-256 of the canonical request: a reused idempotency key must carry the same one."""
    event_id: Mapped[str] = mapped_column(String(128), nullable=False)
    """The ``job.requested`` envelope's id, so that a re-send is the same event."""
    event_trace: Mapped[str] = mapped_column(String(55), nullable=False)
    emitted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    """When the broker acknowledged ``job.requested``; ``None`` while that is not known."""
    created_at: Mapped[datetime] = _created_at()
    """Also the request's ``requested_at`` and its envelope's time."""
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
    tier: Mapped[str | None] = mapped_column(String(16))
    credits_reserved: Mapped[int | None] = mapped_column(BigInteger)
    error: Mapped[str | None] = mapped_column(String(4000))
    worker_id: Mapped[str | None] = mapped_column(String(128))
    attempt: Mapped[int | None] = mapped_column(Integer)
    outputs: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONB)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    queued_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    """When the current attempt joined its tier's queue."""
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    """When the current attempt's worker took it."""
    run_ms: Mapped[int | None] = mapped_column(BigInteger)
    error_code: Mapped[str | None] = mapped_column(String(64))
    preview: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    """The latest stored preview: key, content_type, blurhash, attempt, step."""
    credits_charged: Mapped[int | None] = mapped_column(BigInteger)
    """What settlement charged (0 once a reservation is released); ``None`` until then."""
    webhook_events: Mapped[list[str] | None] = mapped_column(JSONB)
    """The webhook events the owner subscribed to; ``None``: the end alone."""
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSONB)
    """The caller's own small JSON object, stored and returned as given."""
    end_user: Mapped[str | None] = mapped_column(String(128))
    """The caller's id of its own user the job is for."""
    api_key_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    """The API key that submitted the job; ``None`` for an access token."""
    credits_quoted: Mapped[int | None] = mapped_column(BigInteger)
    """The job's price by the catalog when submitted, which the key's spend cap counts."""
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    """When its owner deleted it: hidden from reads, its files removed."""
    outputs_expired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    """When its plan's retention removed its outputs from storage."""
    cancel_requested_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    """When the broker acknowledged its owner's cancellation: until it ends, it is shown
    ``cancelling``."""

    __table_args__ = (
        UniqueConstraint("user_id", "idempotency_key", name="uq_jobs_user_idempotency_key"),
    )


class Upload(Base):
    """A file a user puts straight into the object store through a presigned URL."""

    __tablename__ = "uploads"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
    )
    key: Mapped[str] = mapped_column(String(1024), nullable=False, unique=True)
    content_type: Mapped[str] = mapped_column(String(255), nullable=False)
    size: Mapped[int] = mapped_column(BigInteger, nullable=False)
    """Declared at creation; the stored object must have exactly this size."""
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="pending")
    """pending until checked, then ready or invalid."""
    media: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    """``MediaInfo`` measured by the check."""
    etag: Mapped[str | None] = mapped_column(String(255))
    """The checked object's ETag: a different one means the object was replaced since."""
    error: Mapped[str | None] = mapped_column(String(500))
    """Why the check refused the object."""
    created_at: Mapped[datetime] = _created_at()
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    """When the upload URL stops working."""
