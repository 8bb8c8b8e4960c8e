"""The API service's settings."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings

from api.read_settings import ReadSettings
from api.webhooks.settings import WebhookSettings
from genstream.db import PostgresSettings
from genstream.kafka import KafkaSettings
from genstream.settings import settings_config
from genstream.storage import S3Settings

_MIN_SECRET_BYTES = 32
_ORIGIN = re.compile(r"https?://[a-z0-9.-]+(:[0-9]{1,5})?|https?://\[[0-9a-f:]+\](:[0-9]{1,5})?")


class HttpSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    trusted_proxies: tuple[str, ...] = ()
    """Addresses or networks (``10.0.0.0/8``) of the proxies in front of the API: the server
    takes the client's address from ``X-Forwarded-For`` (and the scheme from
    ``X-Forwarded-Proto``) of their requests alone. Empty: the headers are ignored."""

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies_are_addresses(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for entry in value:
            # uvicorn would take a typo for a name that never matches, silently.
            ipaddress.ip_network(entry, strict=False)
        return value

    cors_origins: tuple[str, ...] = ()
    """Origins (``https://app.example.com``) whose browser pages may call the API and open its
    event streams; preflight requests from them are answered. Empty: no CORS headers, so
    browsers allow only pages of the API's own origin (the web app it serves)."""

    @field_validator("cors_origins")
    @classmethod
    def _origins_are_origins(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for entry in value:
            # An origin is compared with the browser's Origin header as a string: anything
            # but scheme://host[:port] (a path, a trailing slash, "*") would never match, or
            # would match everyone.
            if not _ORIGIN.fullmatch(entry):
                raise ValueError(f"{entry!r} is not an origin such as https://app.example.com")
        return value

    docs_enabled: bool | None = None
    """Serve the OpenAPI document (``/openapi.json``) and its pages (``/docs``, ``/redoc``);
    unset: everywhere but in production."""
    metrics_token: SecretStr = SecretStr("")
    """The bearer token ``/metrics`` asks of scrapers (``Authorization: Bearer …``); others get
    401. Unset: ``/metrics`` is open in local and test runs and off (404) in production."""


class AuthSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    jwt_secret: SecretStr = SecretStr("")
    """HMAC key of access tokens; at least 32 bytes, the same for every API process."""
    jwt_issuer: str = "genstream"
    access_ttl_s: int = Field(default=900, ge=30, le=24 * 3600)
    refresh_ttl_s: int = Field(default=30 * 24 * 3600, ge=60)
    password_min_length: int = Field(default=10, ge=8)
    signup_credits: int = Field(default=100, ge=0)
    """Credits granted at registration."""
    api_key_cache_s: float = Field(default=30.0, ge=0, le=60)
    """How long a process believes an API key it verified before asking the database again
    (job submission and event streams). Revocations and plan changes reach every process at
    once by NOTIFY, and a process whose listener reconnects drops its cache; this bounds what
    nobody announced (a row changed by hand, a listener cut off unnoticed). 0 asks every
    time."""
    api_key_cache_size: int = Field(default=10_000, ge=1)
    """Most API keys one process remembers."""


class OidcSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    issuer: str | None = None
    """Issuer whose ID tokens are accepted (``iss``); OIDC sign-in is off without it."""
    audience: str | None = None
    """This application's client id at the issuer (``aud``)."""
    jwks_url: str | None = None
    """Where the issuer publishes its signing keys; default ``<issuer>/.well-known/jwks.json``."""
    algorithms: tuple[str, ...] = ("RS256", "ES256")
    jwks_cache_s: int = Field(default=600, ge=0)


class PaymentSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    webhook_secret: SecretStr = SecretStr("")
    """Signing secret of payment webhooks (Stripe's ``whsec_…``)."""
    tolerance_s: int = Field(default=300, ge=1)


class RateLimitSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    auth_per_ip: int = Field(default=30, ge=1)
    """Auth requests per client address per window."""
    auth_per_account: int = Field(default=10, ge=1)
    """Auth attempts per account (email) per window."""
    window_s: int = Field(default=60, ge=1)


class JobsSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    requested_topic: str = Field(
        default="jobs.requested", min_length=1, max_length=249, pattern=r"^[A-Za-z0-9._-]+$"
    )
    """Where submissions and cancellations go; keys and partitions stay those of jobs.requested."""
    synthetic_enabled: bool = False
    """Accept model-free ``synthetic`` jobs (benchmarks, tests); never for paying users."""
    send_timeout_s: float = Field(default=15.0, gt=0, le=300)
    """How long a request waits for the broker to acknowledge its event before answering 503."""
    send_linger_ms: int = Field(default=1, ge=0, le=100)
    """How long the producer holds a submission's event for others to share its request to
    the brokers; every answer waits at least this long for its acknowledgement."""
    write_batch_max: int = Field(default=256, ge=1, le=10_000)
    """Most submissions whose rows one statement writes; concurrent requests share it."""
    write_concurrency: int = Field(default=2, ge=1, le=32)
    """Statements of each kind (new rows, acknowledgements) one process runs at a time;
    submissions that arrive meanwhile wait and go together in the next one."""
    wait_max_s: int = Field(default=60, ge=0, le=60)
    """The longest ``Prefer: wait`` a submission is held for its job's end (``wait`` alone
    asks for this, ``wait=N`` is capped at it); 0 ignores the preference."""
    wait_capacity: int = Field(default=1000, ge=1, le=100_000)
    """Submissions one process holds waiting at once; past it, they answer 202 at once."""
    wait_poll_s: float = Field(default=2.0, gt=0, le=60)
    """How often a process reads the status of every waited job, for ends whose
    notification it missed."""


class UploadsSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    max_image_bytes: int = Field(default=20 * 1024 * 1024, ge=1)
    """Largest image/png, image/jpeg or image/webp upload."""
    max_video_bytes: int = Field(default=500 * 1024 * 1024, ge=1)
    """Largest video/mp4, video/quicktime or video/webm upload."""
    url_ttl_s: int = Field(default=900, ge=30, le=7 * 24 * 3600)
    """Lifetime of the presigned PUT URL."""
    max_dimension: int = Field(default=8192, ge=64)
    """Widest and tallest image or video frame accepted, in pixels."""
    max_image_pixels: int = Field(default=50_000_000, ge=4096)
    """Largest pixel count of an image; decoding a larger one could exhaust a worker."""
    per_user: int = Field(default=60, ge=1)
    """Uploads one user may start per window (``POST /v1/uploads``); past it, 429."""
    per_user_window_s: int = Field(default=60, ge=1)


class ApiSettings(BaseSettings):
    model_config = settings_config()

    environment: Literal["local", "test", "production"] = "local"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    catalog: Path | None = None
    """``GENSTREAM_CATALOG``: the plans and prices file replacing the shipped catalog, the
    same setting the processors read (``contracts.load_catalog`` reads it where no settings
    object is at hand)."""
    api: HttpSettings = Field(default_factory=HttpSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    oidc: OidcSettings = Field(default_factory=OidcSettings)
    payments: PaymentSettings = Field(default_factory=PaymentSettings)
    rate_limits: RateLimitSettings = Field(default_factory=RateLimitSettings)
    jobs: JobsSettings = Field(default_factory=JobsSettings)
    uploads: UploadsSettings = Field(default_factory=UploadsSettings)
    reads: ReadSettings = Field(default_factory=ReadSettings)
    webhooks: WebhookSettings = Field(default_factory=WebhookSettings)
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    pg: PostgresSettings = Field(default_factory=PostgresSettings)
    s3: S3Settings = Field(default_factory=S3Settings)

    @property
    def docs_served(self) -> bool:
        if self.api.docs_enabled is not None:
            return self.api.docs_enabled
        return self.environment != "production"

    @model_validator(mode="after")
    def _secrets_are_real(self) -> ApiSettings:
        secret = self.auth.jwt_secret.get_secret_value()
        if len(secret.encode()) < _MIN_SECRET_BYTES or secret.lower().startswith("changeme"):
            raise ValueError(
                "GENSTREAM_AUTH__JWT_SECRET must be set to a random value of at least "
                f"{_MIN_SECRET_BYTES} bytes (make infra-up generates one for local runs)"
            )
        if self.environment == "production" and not self.payments.webhook_secret.get_secret_value():
            raise ValueError("GENSTREAM_PAYMENTS__WEBHOOK_SECRET must be set in production")
        if self.environment == "production" and not self.webhooks.encryption_key.get_secret_value():
            raise ValueError("GENSTREAM_WEBHOOKS__ENCRYPTION_KEY must be set in production")
        return self
