"""Settings for the S3-compatible object store."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class S3Settings(BaseModel):
    model_config = ConfigDict(frozen=True)

    endpoint_url: str = "http://127.0.0.1:9000"
    region: str = "us-east-1"
    access_key: SecretStr = SecretStr("")
    secret_key: SecretStr = SecretStr("")
    uploads_bucket: str = "genstream-uploads"
    outputs_bucket: str = "genstream-outputs"
    presign_ttl_s: int = Field(default=900, ge=1, le=7 * 24 * 3600)

    @property
    def buckets(self) -> tuple[str, str]:
        return (self.uploads_bucket, self.outputs_bucket)
