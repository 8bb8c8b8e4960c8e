"""Entry point of the API service (``genstream-api``)."""

from __future__ import annotations

import uvicorn

from api.app import create_app
from api.settings import ApiSettings
from genstream.logs import configure_logging


def main() -> None:
    settings = ApiSettings()
    configure_logging("api", settings.log_level)
    uvicorn.run(
        create_app(settings),
        host=settings.api.host,
        port=settings.api.port,
        log_config=None,
        access_log=False,
    )
