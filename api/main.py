"""Entry point of the API service (``genstream-api``)."""

from __future__ import annotations

import uvicorn

from api.app import create_app
from api.settings import ApiSettings
from genstream.db import async_engine
from genstream.logs import configure_logging


def main() -> None:
    settings = ApiSettings()
    configure_logging("api", settings.log_level)
    app = create_app(settings, engine=async_engine(settings.pg), dispose_engine=True)
    uvicorn.run(
        app, host=settings.api.host, port=settings.api.port, log_config=None, access_log=False
    )
