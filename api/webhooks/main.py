"""Entry point of the webhook dispatcher (``genstream-webhooks``).

``--role intake`` only records deliveries from the lifecycle, ``--role delivery`` only sends
them; the default does both. Several delivery processes can share the work. SIGTERM and
SIGINT stop reading, let the attempts under way finish and record them, then exit.
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Literal

from prometheus_client import start_http_server
from pydantic import ValidationError

from api.webhooks.dispatcher import Dispatcher
from api.webhooks.intake import Intake, skip_invalid
from api.webhooks.links import Signer, s3_signer
from api.webhooks.secret_box import SecretBox
from api.webhooks.sender import Sender
from api.webhooks.settings import DispatcherSettings
from api.webhooks.store import DeliveryStore
from genstream.db import sync_engine
from genstream.kafka import EventConsumer
from genstream.logs import configure_logging
from genstream.signals import stop_on_signals
from genstream.tracing import configure_tracing

_log = logging.getLogger("api.webhooks.main")

Role = Literal["all", "intake", "delivery"]


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="genstream-webhooks", description="Deliver signed job webhooks."
    )
    parser.add_argument(
        "--role",
        choices=["all", "intake", "delivery"],
        default="all",
        help="record deliveries from the lifecycle, send them, or both (default)",
    )
    return parser.parse_args(argv)


def _guarded(
    name: str, run: Callable[[threading.Event], None], stop: threading.Event, failed: list[str]
) -> None:
    """Runs one half; if it fails, the other is stopped too and the process exits non-zero."""
    try:
        run(stop)
    except Exception:
        _log.exception("%s stopped on an error", name)
        failed.append(name)
        stop.set()


def signer_of(settings: DispatcherSettings) -> Signer | None:
    if not settings.s3.access_key.get_secret_value():
        return None
    return s3_signer(settings.s3, ttl_s=settings.webhooks.download_url_ttl_s)


def main(argv: Sequence[str] | None = None) -> int:
    role: Role = _arguments(argv).role
    try:
        settings = DispatcherSettings()
    except ValidationError as error:
        # Where and why only: the rejected input holds the encryption key.
        for problem in error.errors(include_input=False, include_url=False):
            where = ".".join(str(part) for part in problem["loc"]) or "settings"
            print(f"genstream-webhooks: {where}: {problem['msg']}", file=sys.stderr)
        return 2
    configure_logging("webhooks", settings.log_level)
    configure_tracing("genstream-webhooks")
    if settings.webhooks_metrics_port is not None:
        start_http_server(settings.webhooks_metrics_port, addr="127.0.0.1")
    # httpx logs every request's full URL at INFO, query string included; the dispatcher's
    # own line for each attempt names it without the query.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    webhooks = settings.webhooks
    stop = threading.Event()

    stop_on_signals(stop, log=_log, message="stopping")

    engine = sync_engine(settings.pg, schema=webhooks.pg_schema)
    store = DeliveryStore(
        engine=engine, box=SecretBox.from_text(webhooks.encryption_key.get_secret_value())
    )
    wake = threading.Event()
    failed: list[str] = []
    threads: list[threading.Thread] = []
    consumer: EventConsumer | None = None
    dispatcher: Dispatcher | None = None
    if role in ("all", "intake"):
        topics = [webhooks.lifecycle_topic]
        if webhooks.progress_topic is not None:
            topics.append(webhooks.progress_topic)
        consumer = EventConsumer(
            settings=settings.kafka,
            group_id=webhooks.group_id,
            topics=topics,
            on_invalid=skip_invalid,
            auto_offset_reset=webhooks.start_from,
            extra={"session.timeout.ms": int(webhooks.session_timeout_s * 1000)},
        )
        intake = Intake(
            consumer=consumer,
            store=store,
            batch_size=webhooks.intake_batch_size,
            max_event_age_s=webhooks.max_event_age_s,
            on_recorded=wake.set,
            signer=signer_of(settings),
        )
        threads.append(threading.Thread(target=_guarded, args=("intake", intake.run, stop, failed)))
    if role in ("all", "delivery"):
        sender = Sender(settings=webhooks, https_only=settings.https_only)
        dispatcher = Dispatcher(store=store, sender=sender, settings=webhooks, wake=wake)
        threads.append(
            threading.Thread(target=_guarded, args=("delivery", dispatcher.run, stop, failed))
        )
    _log.info("webhook dispatcher started", extra={"role": role, "topic": webhooks.lifecycle_topic})
    try:
        for thread in threads:
            thread.start()
        # Waiting on the event rather than joining keeps the main thread free for signals.
        while not stop.wait(1.0):
            pass
        wake.set()
        for thread in threads:
            thread.join()
    finally:
        if dispatcher is not None:
            dispatcher.close()
        if consumer is not None:
            consumer.close()
        engine.dispose()
    _log.info("webhook dispatcher stopped")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
