"""Settings for the S3-compatible object store."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class S3Settings(BaseModel):
    model_config = ConfigDict(frozen=True)

    endpoint_url: str = "http://127.0.0.1:9000"
    """Where the services reach the store."""
    public_endpoint_url: str | None = None
    """Where clients reach it (a proxy, a CDN, a public name), used in the presigned URLs
    handed to them; unset, the services' own ``endpoint_url``. A presigned URL signs its
    host, so one made for the services' address does not work through another."""
    region: str = "us-east-1"
    access_key: SecretStr = SecretStr("")
    secret_key: SecretStr = SecretStr("")
    uploads_bucket: str = "genstream-uploads"
    outputs_bucket: str = "genstream-outputs"
    presign_ttl_s: int = Field(default=900, ge=1, le=7 * 24 * 3600)

    @property
    def signing_endpoint_url(self) -> str:
        """The endpoint presigned URLs name."""
        return self.public_endpoint_url or self.endpoint_url

    @property
    def buckets(self) -> tuple[str, str]:
        return (self.uploads_bucket, self.outputs_bucket)
