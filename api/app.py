"""The FastAPI application factory."""

from __future__ import annotations

from fastapi import FastAPI

from api.health import router as health_router
from api.settings import ApiSettings


def create_app(settings: ApiSettings) -> FastAPI:
    app = FastAPI(
        title="genstream",
        version="0.1.0",
        description="Paid AI media generation on Kafka: submit jobs, watch them, fetch outputs.",
    )
    app.state.settings = settings
    app.include_router(health_router)
    return app
