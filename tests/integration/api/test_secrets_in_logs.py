"""No secret reaches the logs: a realistic session through the API with every log record
captured as the services write them (``genstream.logs.JsonFormatter``), down to DEBUG, and a
service that refuses its settings at start.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from io import StringIO
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from api.app import create_app
from api.payments import sign
from api.settings import ApiSettings
from contracts import TopicSpec
from genstream.db import sync_engine
from genstream.logs import JsonFormatter
from genstream.settings import StackSettings
from tests.integration.api.accounts import PASSWORD, app_client, bearer
from tests.integration.api.lifecycle import Story, project
from tests.integration.api.live import isolated_settings
from tests.integration.api.test_jobs_submit import event_producer

ROOT = Path(__file__).resolve().parents[3]
CLIENT_LOGGERS = ("httpx", "httpcore")
"""The test's own HTTP client: it logs the URLs it asks for, tokens in query strings included."""


@contextmanager
def captured_logs() -> Iterator[list[str]]:
    """Every record logged inside the block, formatted as the services format them."""
    stream = StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("api"))
    handler.addFilter(lambda record: not record.name.startswith(CLIENT_LOGGERS))
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    lines: list[str] = []
    try:
        yield lines
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        lines += stream.getvalue().splitlines()


@pytest.fixture
def settings(api_settings: ApiSettings, make_topic: Callable[[str], TopicSpec]) -> ApiSettings:
    return isolated_settings(api_settings, requested=make_topic("jobs.requested"))


@pytest.fixture
async def client(
    settings: ApiSettings, api_engine: AsyncEngine, stack: StackSettings
) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        event_producer(stack.kafka) as producer,
        app_client(create_app(settings, engine=api_engine, producer=producer)) as client,
    ):
        yield client


@pytest.fixture
def schema_engine(stack: StackSettings, pg_schema: tuple[Engine, str]) -> Iterator[Engine]:
    engine = sync_engine(stack.pg, schema=pg_schema[1])
    yield engine
    engine.dispose()


async def _ok(response: Any, status: int = 200) -> dict[str, Any]:
    response = await response
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json() if response.content else {}
    return body


def _payment(settings: ApiSettings, user_id: str) -> tuple[bytes, dict[str, str]]:
    event = {
        "id": f"evt_{uuid.uuid4().hex}",
        "object": "event",
        "type": "checkout.session.completed",
        "data": {
            "object": {
                "id": f"cs_{uuid.uuid4().hex[:16]}",
                "object": "checkout.session",
                "payment_status": "paid",
                "metadata": {"user_id": user_id, "credits": "500"},
            }
        },
    }
    body = json.dumps(event).encode()
    secret = settings.payments.webhook_secret.get_secret_value()
    header = sign(body, secret, timestamp=int(time.time()))
    return body, {"Stripe-Signature": header, "Content-Type": "application/json"}


async def test_a_session_through_the_api_logs_no_secret(
    client: httpx.AsyncClient, settings: ApiSettings, schema_engine: Engine
) -> None:
    api = client
    email = f"logs-{uuid.uuid4().hex[:12]}@example.com"
    secrets: dict[str, str] = {"password": PASSWORD}
    with captured_logs() as lines:
        await _ok(api.post("/v1/auth/register", json={"email": email, "password": PASSWORD}), 202)
        form = {"username": email, "password": PASSWORD}
        first = await _ok(api.post("/v1/auth/token", data=form))
        tokens = await _ok(
            api.post("/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
        )
        secrets |= {
            "first access token": first["access_token"],
            "first refresh token": first["refresh_token"],
            "access token": tokens["access_token"],
            "refresh token": tokens["refresh_token"],
        }
        signed_in = bearer(tokens["access_token"])
        key = await _ok(api.post("/v1/api-keys", json={"name": "ci"}, headers=signed_in), 201)
        secrets["API key"] = key["key"]
        user = await _ok(api.get("/v1/me", headers=bearer(key["key"])))

        upload = {"content_type": "image/png", "size": 100}
        await _ok(api.post("/v1/uploads", json=upload, headers=signed_in), 201)
        job_request = {
            "type": "synthetic",
            "input": {"steps": 2, "step_ms": 0},
            "webhook_url": "https://hooks.example.com/genstream",
        }
        job = await _ok(
            api.post(
                "/v1/jobs",
                json=job_request,
                headers=signed_in | {"Idempotency-Key": f"k-{uuid.uuid4().hex}"},
            ),
            202,
        )
        story = Story(user["id"], job["id"])
        project(schema_engine, [story.accepted(), story.queued(), story.started()])
        await _ok(api.get(f"/v1/jobs/{job['id']}", headers=signed_in))

        for paying in (user["id"], str(uuid.uuid4())):  # the second names nobody: a warning
            body, headers = _payment(settings, paying)
            await _ok(api.post("/v1/webhooks/payments", content=body, headers=headers))
        forged = {**headers, "Stripe-Signature": f"t={int(time.time())},v1={'0' * 64}"}
        await _ok(api.post("/v1/webhooks/payments", content=body, headers=forged), 400)

        signing = await _ok(api.get("/v1/webhooks/secret", headers=signed_in))
        rotated = await _ok(api.post("/v1/webhooks/secret/rotate", headers=signed_in))
        secrets |= {"webhook signing secret": signing["secret"], "rotated": rotated["secret"]}

        # Refusals, and a token in a query string (EventSource), where logs often leak them.
        wrong = {"username": email, "password": "not the password"}
        await _ok(api.post("/v1/auth/token", data=wrong), 401)
        await _ok(api.get("/v1/me", headers=bearer(first["access_token"] + "x")), 401)
        stream = f"/v1/jobs/{job['id']}/events"
        query = {"access_token": tokens["access_token"], "last_event_id": "not-an-id"}
        await _ok(api.get(stream, params=query), 400)
        await _ok(api.post("/v1/auth/logout", headers=signed_in), 204)

    secrets |= {
        "JWT secret": settings.auth.jwt_secret.get_secret_value(),
        "payment webhook secret": settings.payments.webhook_secret.get_secret_value(),
        "webhook encryption key": settings.webhooks.encryption_key.get_secret_value(),
        "S3 secret key": settings.s3.secret_key.get_secret_value(),
        "PostgreSQL password": settings.pg.password.get_secret_value(),
    }
    assert all(secrets.values()), [name for name, value in secrets.items() if not value]
    assert any("payment event ignored" in line for line in lines), "the app's logs went elsewhere"
    leaks = {
        f"{name} in: {line[:300]}"
        for line in lines
        for name, value in secrets.items()
        if value in line
    }
    assert not leaks, "\n".join(sorted(leaks))


def _stack_secrets() -> dict[str, str]:
    """The secrets ``make infra-up`` wrote to var/stack.env, by variable."""
    secrets = {}
    for line in (ROOT / "var" / "stack.env").read_text().splitlines():
        name, _, value = line.partition("=")
        if value and any(word in name for word in ("PASSWORD", "SECRET", "KEY")):
            secrets[name] = value
    return secrets


def _fragments(secret: str, length: int = 12) -> set[str]:
    """Every run of ``length`` characters of ``secret``: a truncated echo still leaks."""
    return {secret[start : start + length] for start in range(max(1, len(secret) - length + 1))}


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        # A field that refuses its value: the value is the secret.
        ("GENSTREAM_WEBHOOKS__ENCRYPTION_KEY", "not-the-key-but-still-secret-7f3c9e1b"),
        # A check across fields: pydantic would print what every field was given.
        ("GENSTREAM_AUTH__JWT_SECRET", "too-short-but-secret-7f3c"),
    ],
)
@pytest.mark.usefixtures("stack")
def test_refused_settings_are_named_without_their_values(variable: str, value: str) -> None:
    # Started as genstream-api is, from the root, so var/stack.env supplies the real secrets.
    started = subprocess.run(
        [sys.executable, "-c", "from api.main import main; main()"],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", variable: value},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    output = started.stdout + started.stderr
    assert started.returncode != 0
    assert "validation error for ApiSettings" in output, output
    secrets = {**_stack_secrets(), variable: value}
    assert len(secrets) >= 5, "var/stack.env lacks the secrets it should hold"
    leaked = [name for name, secret in secrets.items() if _fragments(secret) & _fragments(output)]
    assert not leaked, output
