"""Entry point of the outbox relay (``genstream-outbox-relay``).

``--drain`` publishes what is pending and exits, non-zero if rows remain at the deadline.
SIGTERM and SIGINT let the batch under way finish and commit before the process exits.
"""

from __future__ import annotations

import argparse
import logging
import threading
from collections.abc import Sequence
from typing import Literal

from prometheus_client import start_http_server
from pydantic import Field
from pydantic_settings import BaseSettings

from genstream.db import PostgresSettings, sync_engine
from genstream.kafka import KafkaSettings
from genstream.logs import configure_logging
from genstream.settings import settings_config
from genstream.signals import stop_on_signals
from genstream.tracing import configure_tracing
from producers.outbox_relay import OutboxRelay

_log = logging.getLogger("producers.outbox_main")


class OutboxRelaySettings(BaseSettings):
    model_config = settings_config()

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    pg: PostgresSettings = Field(default_factory=PostgresSettings)
    outbox_pg_schema: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    """The schema whose ``outbox`` table is published; the connection's default without it."""
    outbox_batch_size: int = Field(default=500, ge=1, le=10_000)
    outbox_idle_wait_s: float = Field(default=0.2, gt=0, le=10)
    """How long an idle relay waits before looking for new rows."""
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    outbox_metrics_port: int | None = Field(default=None, ge=1, le=65535)
    """Serve Prometheus metrics on 127.0.0.1 at this port (unset: none)."""


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="genstream-outbox-relay", description="Publish the transactional outbox to Kafka."
    )
    parser.add_argument("--drain", action="store_true", help="publish what is pending, then exit")
    parser.add_argument(
        "--drain-timeout",
        type=float,
        default=300.0,
        help="seconds --drain may take before giving up (default 300)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    arguments = _arguments(argv)
    settings = OutboxRelaySettings()
    configure_logging("outbox-relay", settings.log_level)
    configure_tracing("genstream-outbox-relay")
    if settings.outbox_metrics_port is not None and not arguments.drain:
        start_http_server(settings.outbox_metrics_port, addr="127.0.0.1")
    stop = threading.Event()

    stop_on_signals(stop, log=_log, message="stopping after the current batch")

    engine = sync_engine(settings.pg, schema=settings.outbox_pg_schema)
    relay = OutboxRelay(engine=engine, kafka=settings.kafka, batch_size=settings.outbox_batch_size)
    status = 0
    try:
        _log.info(
            "outbox relay started",
            extra={"drain": arguments.drain, "schema": settings.outbox_pg_schema},
        )
        if arguments.drain:
            published = relay.drain(arguments.drain_timeout, stop=stop)
            _log.info("outbox drained", extra={"published": published})
        else:
            relay.run(stop, idle_wait_s=settings.outbox_idle_wait_s)
    except TimeoutError:
        _log.exception("outbox not drained")
        status = 1
    finally:
        relay.close()
        engine.dispose()
    _log.info("outbox relay stopped")
    return status


if __name__ == "__main__":
    raise SystemExit(main())
