"""NUL characters, which PostgreSQL stores in neither text nor jsonb, answered as bad input.

Each of these once reached the database and answered 500; the fuzzer of
``test_openapi_fuzz.py`` found them, and here they stay found whatever it draws next.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from api.settings import ApiSettings
from contracts import TopicSpec
from genstream.settings import StackSettings
from tests.integration.api.accounts import bearer, login, register
from tests.integration.api.test_jobs_submit import event_producer, jobs_api, jobs_settings


def _cursor(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


NUL_REQUESTS: dict[str, tuple[str, str, dict[str, Any], int]] = {
    "an API key's name": ("POST", "/v1/api-keys", {"json": {"name": "ci\x00"}}, 422),
    "a job id": ("GET", "/v1/jobs/job_%00", {}, 422),
    "a job id to cancel": ("POST", "/v1/jobs/job_%00/cancel", {}, 422),
    "a job id of a stream": ("GET", "/v1/jobs/job_%00/events", {}, 422),
    "a job id of webhooks": ("GET", "/v1/jobs/job_%00/webhooks", {}, 422),
    "a job's input": (
        "POST",
        "/v1/jobs",
        {"json": {"type": "image.generate", "input": {"prompt": "a\x00cat"}}},
        422,
    ),
    "a job's webhook URL": (
        "POST",
        "/v1/jobs",
        {
            "json": {
                "type": "synthetic",
                "input": {"steps": 1},
                "webhook_url": "https://hooks.example.com/\x00",
            }
        },
        422,
    ),
    "a cursor": ("GET", "/v1/jobs", {"params": {"cursor": _cursor("1|job_\x00")}}, 400),
    "a sign-in email": (
        "POST",
        "/v1/auth/token",
        {"data": {"username": "a\x00@example.com", "password": "whatever it is"}},
        401,
    ),
}


@pytest.fixture
async def client(
    api_settings: ApiSettings,
    api_engine: AsyncEngine,
    stack: StackSettings,
    make_topic: Callable[[str], TopicSpec],
) -> AsyncIterator[httpx.AsyncClient]:
    settings = jobs_settings(api_settings, make_topic("jobs.requested"))
    async with (
        event_producer(stack.kafka) as producer,
        jobs_api(settings, api_engine, producer) as api,
    ):
        yield api


async def test_a_nul_character_is_bad_input(client: httpx.AsyncClient) -> None:
    user = await register(client)
    headers = bearer((await login(client, user["email"]))["access_token"])
    for where, (method, path, arguments, status) in NUL_REQUESTS.items():
        response = await client.request(method, path, headers=headers, **arguments)
        assert response.status_code == status, f"{where}: {response.text}"
        assert response.headers["content-type"] == "application/problem+json", where
