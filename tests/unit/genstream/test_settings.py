from __future__ import annotations

import pytest
from pydantic import SecretStr

from genstream.db import PostgresSettings
from genstream.kafka import KafkaSettings
from genstream.settings import StackSettings


def test_kafka_settings_convert_to_librdkafka() -> None:
    settings = KafkaSettings(
        bootstrap_servers="127.0.0.1:9092,127.0.0.1:9094",
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="svc",
        sasl_password=SecretStr("s3cret"),
    )
    config = settings.librdkafka(**{"group.id": "g"})
    assert config == {
        "bootstrap.servers": "127.0.0.1:9092,127.0.0.1:9094",
        "client.id": "genstream",
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "svc",
        "sasl.password": "s3cret",
        "group.id": "g",
    }
    assert "s3cret" not in repr(settings)


def test_plain_kafka_settings_carry_no_sasl_keys() -> None:
    assert not any(key.startswith("sasl") for key in KafkaSettings().librdkafka())


def test_postgres_url_hides_the_password_when_printed() -> None:
    settings = PostgresSettings(password=SecretStr("pw!@#"), port=5555)
    url = settings.url()
    assert url.drivername == "postgresql+psycopg"
    assert url.password == "pw!@#"
    assert "pw!@#" not in str(url)
    assert url.port == 5555


def test_stack_settings_read_nested_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GENSTREAM_KAFKA__BOOTSTRAP_SERVERS", "10.0.0.1:9092")
    monkeypatch.setenv("GENSTREAM_PG__PORT", "6543")
    monkeypatch.setenv("GENSTREAM_S3__ACCESS_KEY", "AK")
    settings = StackSettings(_env_file=None)
    assert settings.kafka.bootstrap_servers == "10.0.0.1:9092"
    assert settings.pg.port == 6543
    assert settings.s3.access_key.get_secret_value() == "AK"
    assert settings.s3.buckets == ("genstream-uploads", "genstream-outputs")
