"""Probes, metrics and the shape of errors, against the real stack."""

from __future__ import annotations

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from api.settings import ApiSettings
from tests.integration.api.accounts import client_with


async def test_liveness_and_readiness(api: httpx.AsyncClient) -> None:
    assert (await api.get("/healthz")).json() == {"status": "ok"}
    ready = await api.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json() == {
        "status": "ready",
        "checks": {"kafka": "ok", "postgres": "ok", "s3": "ok"},
    }


async def test_readiness_names_the_dependency_that_is_down(
    api_settings: ApiSettings, api_engine: AsyncEngine
) -> None:
    # Nothing listens on port 9 of loopback: the S3 check fails, the others pass.
    broken = api_settings.model_copy(
        update={"s3": api_settings.s3.model_copy(update={"endpoint_url": "http://127.0.0.1:9"})}
    )
    async with client_with(broken, api_engine) as api:
        ready = await api.get("/readyz")
    assert ready.status_code == 503
    checks = ready.json()["checks"]
    assert (checks["kafka"], checks["postgres"]) == ("ok", "ok")
    assert checks["s3"] != "ok"


async def test_metrics_count_requests_by_route(api: httpx.AsyncClient) -> None:
    await api.get("/healthz")
    text = (await api.get("/metrics")).text
    assert 'genstream_http_requests_total{method="GET",route="/healthz",status="200"}' in text
    assert "genstream_http_request_seconds_bucket" in text


async def test_errors_are_problem_documents(api: httpx.AsyncClient) -> None:
    missing = await api.get("/v1/nothing-here")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert missing.json()["status"] == 404
    malformed = await api.post(
        "/v1/auth/register", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert malformed.status_code == 422
    assert malformed.headers["content-type"] == "application/problem+json"
    assert malformed.json()["errors"]


async def test_oversized_bodies_are_refused_with_413(
    api_settings: ApiSettings, api_engine: AsyncEngine
) -> None:
    small = api_settings.model_copy(
        update={"api": api_settings.api.model_copy(update={"max_body_bytes": 2048})}
    )
    async with client_with(small, api_engine) as api:
        declared = await api.post("/v1/auth/register", content=b"x" * 4096)
        assert declared.status_code == 413
        assert declared.headers["content-type"] == "application/problem+json"

        async def chunks() -> object:
            for _ in range(8):
                yield b"y" * 1024

        streamed = await api.post("/v1/auth/register", content=chunks())  # type: ignore[arg-type]
        assert streamed.status_code == 413


async def test_a_database_out_of_connections_answers_503_with_retry_after(
    api_settings: ApiSettings,
) -> None:
    from sqlalchemy.ext.asyncio import create_async_engine

    # One connection, already taken, and no patience: the next request cannot get one.
    engine = create_async_engine(
        api_settings.pg.url(), pool_size=1, max_overflow=0, pool_timeout=0.2
    )
    try:
        async with engine.connect() as held:
            await held.exec_driver_sql("SELECT 1")
            async with client_with(api_settings, engine) as api:
                response = await api.post(
                    "/v1/auth/register",
                    json={"email": "busy@example.com", "password": "a-long-password-1"},
                )
        assert response.status_code == 503, response.text
        assert response.headers["retry-after"] == "1"
        assert response.json()["type"] == "unavailable"
    finally:
        await engine.dispose()
