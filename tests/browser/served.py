"""The API as the browser tests serve it: ``genstream-api``'s app (with its event producer)
on the schema named by ``GENSTREAM_TEST_PG_SCHEMA``, its status snapshot over the scope
``GENSTREAM_TEST_STATUS`` gives, for ``uvicorn --factory``."""

from __future__ import annotations

import os

from fastapi import FastAPI

from api.app import create_app
from api.events import stream_engine
from api.settings import ApiSettings
from genstream.db import async_engine
from genstream.system_status import StatusScope
from producers import EventProducer


def app() -> FastAPI:
    settings = ApiSettings()
    schema = os.environ["GENSTREAM_TEST_PG_SCHEMA"]
    # Lives as long as the process: every submission has had its acknowledgement when the
    # server answered it, so nothing is left to flush when the process ends.
    producer = EventProducer(settings=settings.kafka, linger_ms=settings.jobs.send_linger_ms)
    app = create_app(
        settings,
        engine=async_engine(settings.pg, schema=schema),
        stream_engine=stream_engine(settings, schema=schema),
        dispose_engine=True,
        producer=producer,
    )
    # The operator page's snapshot looks at the run's own topics, groups and services.
    app.state.status_scope = StatusScope.model_validate_json(os.environ["GENSTREAM_TEST_STATUS"])
    return app
