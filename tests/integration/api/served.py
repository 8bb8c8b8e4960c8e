"""The real API application, for tests that run it in uvicorn processes on their own schema.

``uvicorn --factory tests.integration.api.served:app`` builds it from the environment like
``genstream-api`` does, with the database schema named by ``GENSTREAM_TEST_PG_SCHEMA``.
"""

from __future__ import annotations

import os

from fastapi import FastAPI

from api.app import create_app
from api.events import stream_engine
from api.settings import ApiSettings
from genstream.db import async_engine


def app() -> FastAPI:
    settings = ApiSettings()
    schema = os.environ["GENSTREAM_TEST_PG_SCHEMA"]
    engine = async_engine(settings.pg, schema=schema)
    streams = stream_engine(settings, schema=schema)
    return create_app(settings, engine=engine, stream_engine=streams, dispose_engine=True)
