"""Settings shared by the tools that talk to the whole stack (CLI, bootstrap, tests).

Services compose the same parts into their own settings class. Values come from the
environment (prefix ``GENSTREAM_``, nested with ``__``), then ``.env``, then
``var/stack.env`` written by ``infra/stack.sh up``.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from genstream.db.config import PostgresSettings
from genstream.kafka.config import KafkaSettings
from genstream.storage.config import S3Settings

ENV_FILES = (".env", "var/stack.env")


def settings_config() -> SettingsConfigDict:
    return SettingsConfigDict(
        env_prefix="GENSTREAM_",
        env_nested_delimiter="__",
        env_file=ENV_FILES,
        extra="ignore",
        # A service that refuses its settings prints why, and the values it was given would
        # go with it: secrets, or the whole environment when a check spans several fields.
        hide_input_in_errors=True,
    )


class StackSettings(BaseSettings):
    model_config = settings_config()

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    pg: PostgresSettings = Field(default_factory=PostgresSettings)
    s3: S3Settings = Field(default_factory=S3Settings)
