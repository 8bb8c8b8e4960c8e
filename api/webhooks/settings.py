"""Webhook settings (``GENSTREAM_WEBHOOKS__*``), read by the API and by the dispatcher."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings

from api.webhooks.secret_box import parse_key
from genstream.db import PostgresSettings
from genstream.kafka import KafkaSettings
from genstream.settings import settings_config
from genstream.storage import S3Settings

__all__ = ["DispatcherSettings", "WebhookSettings"]

_TOPIC_PATTERN = r"^[A-Za-z0-9._-]+$"


class WebhookSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    encryption_key: SecretStr = SecretStr("")
    """Seals the users' signing secrets at rest: the base64 of 32 random bytes, the same for
    the API and the dispatcher. Required by the dispatcher and by the secret endpoints."""
    rotation_grace_s: int = Field(default=24 * 3600, ge=0, le=30 * 24 * 3600)
    """How long a rotated-out secret keeps signing next to the new one."""

    lifecycle_topic: str = Field(
        default="jobs.lifecycle", min_length=1, max_length=249, pattern=_TOPIC_PATTERN
    )
    progress_topic: str | None = Field(
        default="jobs.progress", min_length=1, max_length=249, pattern=_TOPIC_PATTERN
    )
    """Where workers write progress, read for the jobs subscribed to ``progress``; unset:
    progress is never announced."""
    download_url_ttl_s: int = Field(default=24 * 3600, ge=60, le=7 * 24 * 3600)
    """Lifetime of the presigned download URLs in webhook bodies (outputs and previews),
    counted from when the delivery is recorded: long enough for retries and a slow fetch."""
    group_id: str = Field(default="genstream-webhooks", min_length=1, max_length=249)
    start_from: Literal["earliest", "latest"] = "latest"
    """Where a group with no committed offsets starts: a first deployment announces only
    jobs that end after it, not the whole history."""
    max_event_age_s: int | None = Field(default=3 * 24 * 3600, ge=60)
    """Events older than this when read are not announced (``None``: no limit)."""
    intake_batch_size: int = Field(default=500, ge=1, le=10_000)
    session_timeout_s: float = Field(default=45.0, ge=6.0, le=300.0)
    """How long a silent intake keeps its partitions before the group moves them."""
    pg_schema: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    """The schema holding jobs and deliveries; the connection's default without it."""

    workers: int = Field(default=8, ge=1, le=256)
    """Requests in flight at once."""
    per_host_limit: int = Field(default=2, ge=1, le=256)
    """Requests in flight to one host, so that a slow endpoint cannot take every worker."""
    connect_timeout_s: float = Field(default=5.0, gt=0, le=60)
    request_timeout_s: float = Field(default=15.0, gt=0, le=120)
    """The longest wait for the endpoint once connected (to take the request, to answer);
    reading the answer stops at connect + request timeout from the start of the attempt."""
    max_response_bytes: int = Field(default=16 * 1024, ge=0, le=1024 * 1024)
    """What is read of a response body before the connection is closed."""
    max_attempts: int = Field(default=10, ge=1, le=50)
    backoff_base_s: float = Field(default=15.0, gt=0)
    """Delay before the second attempt; it doubles with each attempt after, with jitter."""
    backoff_max_s: float = Field(default=2 * 3600.0, gt=0)
    retry_after_cap_s: float = Field(default=3600.0, ge=0)
    """The longest ``Retry-After`` that is honoured."""
    lease_s: float = Field(default=120.0, gt=0)
    """How long a claimed delivery is held before another dispatcher may take it over."""
    poll_interval_s: float = Field(default=1.0, gt=0, le=60)
    """How often an idle dispatcher looks for due deliveries."""
    allow_loopback: bool = False
    """Deliver to 127.0.0.0/8 and ::1 (local runs and tests). Other private, link-local and
    reserved destinations are always refused."""

    @field_validator("encryption_key")
    @classmethod
    def _key_shape(cls, value: SecretStr) -> SecretStr:
        if value.get_secret_value():
            parse_key(value.get_secret_value())
        return value

    @model_validator(mode="after")
    def _consistent(self) -> WebhookSettings:
        if self.backoff_max_s < self.backoff_base_s:
            raise ValueError("backoff_max_s must be at least backoff_base_s")
        # A lease shorter than a request would let a second dispatcher send it again.
        if self.lease_s < 2 * (self.connect_timeout_s + self.request_timeout_s):
            raise ValueError("lease_s must be at least twice connect + request timeouts")
        return self


class DispatcherSettings(BaseSettings):
    model_config = settings_config()

    environment: Literal["local", "test", "production"] = "local"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    webhooks: WebhookSettings = Field(default_factory=WebhookSettings)
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    pg: PostgresSettings = Field(default_factory=PostgresSettings)
    s3: S3Settings = Field(default_factory=S3Settings)
    """Signs the download URLs of webhook bodies (its ``public_endpoint_url`` is the host
    they name); without an access key, bodies carry the keys alone."""
    webhooks_metrics_port: int | None = Field(default=None, ge=1, le=65535)
    """Serve Prometheus metrics on 127.0.0.1 at this port (unset: none)."""

    @property
    def https_only(self) -> bool:
        return self.environment == "production"

    @model_validator(mode="after")
    def _ready(self) -> DispatcherSettings:
        if not self.webhooks.encryption_key.get_secret_value():
            raise ValueError(
                "GENSTREAM_WEBHOOKS__ENCRYPTION_KEY must be set to the base64 of 32 random "
                "bytes (make infra-up generates one for local runs)"
            )
        if self.environment == "production" and self.webhooks.allow_loopback:
            raise ValueError("GENSTREAM_WEBHOOKS__ALLOW_LOOPBACK is not for production")
        return self
