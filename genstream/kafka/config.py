"""Typed Kafka connection settings, converted to a librdkafka dict in one place."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

LibrdkafkaConfig = dict[str, str | int | float | bool]


class KafkaSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    bootstrap_servers: str = "127.0.0.1:9092"
    client_id: str = "genstream"
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    replication_factor: int = Field(default=1, ge=1)
    min_insync_replicas: int = Field(default=1, ge=1)

    def librdkafka(
        self, role: str | None = None, /, **overrides: str | int | float | bool
    ) -> LibrdkafkaConfig:
        """``role`` names the client to the brokers (``<client_id>-<role>``), so that their
        request logs, metrics and quotas tell a process's readers apart."""
        config: LibrdkafkaConfig = {
            "bootstrap.servers": self.bootstrap_servers,
            "client.id": self.client_id if role is None else f"{self.client_id}-{role}",
            "security.protocol": self.security_protocol,
        }
        if self.sasl_mechanism is not None:
            config["sasl.mechanism"] = self.sasl_mechanism
        if self.sasl_username is not None:
            config["sasl.username"] = self.sasl_username
        if self.sasl_password is not None:
            config["sasl.password"] = self.sasl_password.get_secret_value()
        config.update(overrides)
        return config

    def producer_config(
        self, role: str | None = None, /, **overrides: str | int | float | bool
    ) -> LibrdkafkaConfig:
        """Every genstream producer's settings: idempotent, acks=all, and keys placed with
        murmur2 as Java clients and Faust place them, so every writer agrees on a key's
        partition."""
        return self.librdkafka(
            role,
            **{
                "enable.idempotence": True,
                "acks": "all",
                "partitioner": "murmur2_random",
                **overrides,
            },
        )
