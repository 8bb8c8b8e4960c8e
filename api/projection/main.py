"""Entry point of the projection service (``genstream-projection``)."""

from __future__ import annotations

import argparse
import signal
import threading
from collections.abc import Sequence
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings

from api.projection.ledger import apply_ledger_events
from api.projection.runner import ProjectionRunner
from contracts import CREDITS_LEDGER
from genstream.db import PostgresSettings, sync_engine
from genstream.kafka import DeadLetters, EventConsumer, KafkaSettings
from genstream.logs import configure_logging
from genstream.settings import settings_config


class ProjectionSettings(BaseSettings):
    model_config = settings_config()

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    projection_group: str = "genstream-projection"
    projection_batch_size: int = Field(default=500, ge=1, le=10_000)
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    pg: PostgresSettings = Field(default_factory=PostgresSettings)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="genstream-projection", description=__doc__)
    parser.parse_args(argv)
    settings = ProjectionSettings()
    configure_logging("projection", settings.log_level)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    engine = sync_engine(settings.pg)
    dead_letters = DeadLetters(settings=settings.kafka, consumer_name=settings.projection_group)
    consumer = EventConsumer(
        settings=settings.kafka,
        group_id=settings.projection_group,
        topics=[CREDITS_LEDGER.name],
        on_invalid=dead_letters,
    )
    runner = ProjectionRunner(
        engine=engine,
        consumer=consumer,
        apply=apply_ledger_events,
        batch_size=settings.projection_batch_size,
    )
    try:
        runner.run(stop)
    finally:
        consumer.close()
        dead_letters.close()
        engine.dispose()
