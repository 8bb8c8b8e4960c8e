"""Entry point of the stream processors (``genstream-processors``)."""

from __future__ import annotations

import faust
from prometheus_client import start_http_server

from genstream.tracing import configure_tracing
from stream_processors.app import build_app
from stream_processors.settings import ProcessorSettings


def main() -> None:
    settings = ProcessorSettings()
    configure_tracing("genstream-processors")
    if settings.processors_metrics_port is not None:
        start_http_server(settings.processors_metrics_port, addr="127.0.0.1")
    app = build_app(settings)
    worker = faust.Worker(app, loglevel=settings.log_level.lower(), quiet=True)
    worker.execute_from_commandline()


if __name__ == "__main__":
    main()
