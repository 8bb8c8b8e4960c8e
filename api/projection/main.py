"""Entry point of the projection service (``genstream-projection``).

One consumer reads the credits ledger and the jobs lifecycle; each batch is applied to
PostgreSQL in one transaction and only then are its offsets committed.
"""

from __future__ import annotations

import argparse
import logging
import threading
from collections.abc import Sequence
from typing import Literal

from prometheus_client import REGISTRY, start_http_server
from pydantic import Field
from pydantic_settings import BaseSettings

from api.projection.projector import Projection
from api.projection.runner import ProjectionRunner
from contracts import CREDITS_LEDGER, DEADLETTER, JOBS_LIFECYCLE, TopicSpec
from contracts.catalog import load_catalog
from genstream.db import PostgresSettings, sync_engine
from genstream.kafka import DeadLetters, EventConsumer, KafkaSettings
from genstream.logs import configure_logging
from genstream.ops_metrics import SystemCollector
from genstream.settings import settings_config
from genstream.signals import stop_on_signals
from genstream.system_status import StatusScope
from genstream.tracing import configure_tracing

_log = logging.getLogger("api.projection.main")


class ProjectionSettings(BaseSettings):
    model_config = settings_config()

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    projection_group: str = "genstream-projection"
    projection_batch_size: int = Field(default=500, ge=1, le=10_000)
    projection_topic_prefix: str = ""
    """Prefix of the topics read and of the dead-letter topic (isolated namespaces, tests)."""
    projection_pg_schema: str | None = None
    """Keep the read model of another schema than the default one (isolated namespaces)."""
    projection_session_timeout_s: float = Field(default=45.0, ge=6, le=300)
    """A silent projection process keeps its partitions this long before others take them."""
    projection_metrics_port: int | None = Field(default=None, ge=1, le=65535)
    """Serve Prometheus metrics on 127.0.0.1 at this port (unset: none)."""
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    pg: PostgresSettings = Field(default_factory=PostgresSettings)

    def topic(self, spec: TopicSpec) -> TopicSpec:
        return spec.prefixed(self.projection_topic_prefix)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="genstream-projection", description=__doc__)
    parser.parse_args(argv)
    settings = ProjectionSettings()
    configure_logging("projection", settings.log_level)
    configure_tracing("genstream-projection")
    engine = sync_engine(settings.pg, schema=settings.projection_pg_schema)
    if settings.projection_metrics_port is not None:
        # The system's gauges (group lag, tier waits) are measured here, at each scrape.
        REGISTRY.register(
            SystemCollector(
                kafka=settings.kafka,
                engine=engine,
                catalog=load_catalog(),
                scope=StatusScope(topic_prefix=settings.projection_topic_prefix),
            )
        )
        start_http_server(settings.projection_metrics_port, addr="127.0.0.1")
    stop = threading.Event()
    stop_on_signals(stop, log=_log, message="stopping after the current batch")

    dead_letters = DeadLetters(
        settings=settings.kafka,
        consumer_name=settings.projection_group,
        topic=settings.topic(DEADLETTER),
    )
    consumer = EventConsumer(
        settings=settings.kafka,
        group_id=settings.projection_group,
        topics=[settings.topic(CREDITS_LEDGER).name, settings.topic(JOBS_LIFECYCLE).name],
        on_invalid=dead_letters,
        extra={"session.timeout.ms": int(settings.projection_session_timeout_s * 1000)},
    )
    runner = ProjectionRunner(
        engine=engine,
        consumer=consumer,
        apply=Projection(),
        batch_size=settings.projection_batch_size,
    )
    try:
        runner.run(stop)
    finally:
        consumer.close()
        dead_letters.close()
        engine.dispose()


if __name__ == "__main__":
    main()
