"""Typed Kafka connection settings, converted to a librdkafka dict in one place."""

from __future__ import annotations

import ssl
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

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

    @model_validator(mode="after")
    def _sasl_complete(self) -> KafkaSettings:
        if self.security_protocol.startswith("SASL_") and (
            self.sasl_mechanism is None or self.sasl_username is None or self.sasl_password is None
        ):
            raise ValueError(
                f"security_protocol {self.security_protocol} needs sasl_mechanism, "
                "sasl_username and sasl_password"
            )
        return self

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

    def faust_options(self) -> dict[str, Any]:
        """Faust's ``broker`` and ``broker_credentials``, for ``faust.App(id, **...)``: the
        servers, protocol and SASL user that ``librdkafka`` gives every other client."""
        import faust  # only the processors run Faust, and importing it takes a while

        broker = [f"kafka://{server.strip()}" for server in self.bootstrap_servers.split(",")]
        tls = ssl.create_default_context() if self.security_protocol.endswith("SSL") else None
        credentials: faust.types.auth.CredentialsT | None = None
        if self.security_protocol.startswith("SASL_"):
            credentials = faust.SASLCredentials(
                username=self.sasl_username,
                password=self.sasl_password.get_secret_value() if self.sasl_password else None,
                mechanism=self.sasl_mechanism,
                ssl_context=tls,
            )
        elif tls is not None:
            credentials = faust.SSLCredentials(tls)
        return {"broker": broker, "broker_credentials": credentials}
