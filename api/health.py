"""Liveness and readiness probes."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Literal

from confluent_kafka.admin import AdminClient
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from api.deps import SettingsDep
from api.settings import ApiSettings
from genstream.storage import s3_client

router = APIRouter(tags=["health"])

_CHECK_TIMEOUT_S = 3.0


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ready", "unavailable"]
    checks: dict[str, str]
    """``ok`` or what went wrong, per dependency."""


@router.get("/healthz", operation_id="health_live")
async def healthz() -> Health:
    return Health(status="ok")


def _kafka_metadata(settings: ApiSettings) -> None:
    AdminClient(settings.kafka.librdkafka()).list_topics(timeout=_CHECK_TIMEOUT_S)


async def _check_kafka(settings: ApiSettings) -> None:
    await asyncio.to_thread(_kafka_metadata, settings)


async def _check_s3(settings: ApiSettings) -> None:
    async with s3_client(settings.s3) as client:
        for bucket in settings.s3.buckets:
            await client.head_bucket(Bucket=bucket)


async def _check_postgres(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))


async def _outcome(check: Awaitable[None]) -> str:
    try:
        await asyncio.wait_for(check, timeout=_CHECK_TIMEOUT_S + 1)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"[:300]
    return "ok"


@router.get(
    "/readyz",
    operation_id="health_ready",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "a dependency is unavailable"}},
)
async def readyz(request: Request, settings: SettingsDep) -> JSONResponse:
    engine: AsyncEngine = request.app.state.engine
    names = ("kafka", "postgres", "s3")
    outcomes = await asyncio.gather(
        _outcome(_check_kafka(settings)),
        _outcome(_check_postgres(engine)),
        _outcome(_check_s3(settings)),
    )
    checks = dict(zip(names, outcomes, strict=True))
    ready = all(outcome == "ok" for outcome in outcomes)
    body = Readiness(status="ready" if ready else "unavailable", checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)
