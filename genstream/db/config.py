"""PostgreSQL connection settings."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from sqlalchemy import URL


class PostgresSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(default=55432, ge=1, le=65535)
    user: str = "genstream"
    password: SecretStr = SecretStr("")
    database: str = "genstream"
    pool_size: int = Field(default=10, ge=1)

    def url(self, *, database: str | None = None) -> URL:
        return URL.create(
            "postgresql+psycopg",
            username=self.user,
            password=self.password.get_secret_value(),
            host=self.host,
            port=self.port,
            database=database or self.database,
        )
