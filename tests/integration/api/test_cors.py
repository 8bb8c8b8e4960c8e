"""Cross-origin access: the origins the settings list get CORS headers, preflight answers
and event streams they can read; every other origin gets none, and so nothing a browser
would hand its page. The API runs in a real server, as browsers meet it."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest
from sqlalchemy import Engine

from api.app import create_app
from api.settings import ApiSettings
from contracts import TopicSpec
from genstream.db import async_engine
from tests.integration.api.accounts import PASSWORD
from tests.integration.api.live import isolated_settings, serve

ALLOWED = "https://app.example.com"
REFUSED = "https://evil.example.net"


@pytest.fixture
def served(
    api_settings: ApiSettings,
    pg_schema: tuple[Engine, str],
    make_topic: Callable[[str], TopicSpec],
) -> Iterator[str]:
    settings = isolated_settings(
        api_settings, requested=make_topic("jobs.requested"), progress=make_topic("jobs.progress")
    )
    settings = settings.model_copy(
        update={"api": settings.api.model_copy(update={"cors_origins": (ALLOWED,)})}
    )
    engine = async_engine(settings.pg, schema=pg_schema[1])
    with serve(create_app(settings, engine=engine, dispose_engine=True)) as url:
        yield url


def _token(client: httpx.Client) -> str:
    email = "cors-user@example.com"
    answer = client.post("/v1/auth/register", json={"email": email, "password": PASSWORD})
    assert answer.status_code == 202, answer.text
    tokens = client.post("/v1/auth/token", data={"username": email, "password": PASSWORD})
    assert tokens.status_code == 200, tokens.text
    token: str = tokens.json()["access_token"]
    return token


def _preflight(client: httpx.Client, origin: str) -> httpx.Response:
    return client.options(
        "/v1/jobs",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type, idempotency-key",
        },
    )


def test_an_allowed_origin_is_answered_preflight_and_reads_answers_and_streams(
    served: str,
) -> None:
    with httpx.Client(base_url=served, timeout=10) as client:
        preflight = _preflight(client, ALLOWED)
        assert preflight.status_code == 200, preflight.text
        assert preflight.headers["access-control-allow-origin"] == ALLOWED
        listed = preflight.headers["access-control-allow-headers"].split(",")
        allowed = {header.strip().lower() for header in listed}
        assert {"authorization", "content-type", "idempotency-key"} <= allowed
        assert "POST" in preflight.headers["access-control-allow-methods"]
        assert "access-control-allow-credentials" not in preflight.headers

        token = _token(client)
        me = client.get("/v1/me", headers={"Origin": ALLOWED, "Authorization": f"Bearer {token}"})
        assert me.status_code == 200
        assert me.headers["access-control-allow-origin"] == ALLOWED
        # A refusal carries the headers too, so the page can read why.
        refused = client.get("/v1/me", headers={"Origin": ALLOWED})
        assert refused.status_code == 401
        assert refused.headers["access-control-allow-origin"] == ALLOWED

        # EventSource sends the token in the query and no custom header: a simple request.
        with client.stream(
            "GET", "/v1/events", params={"access_token": token}, headers={"Origin": ALLOWED}
        ) as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            assert stream.headers["access-control-allow-origin"] == ALLOWED
            first = next(stream.iter_lines())
            assert first.startswith("retry: ")


def test_another_origin_gets_no_cors_headers_and_its_preflight_is_refused(served: str) -> None:
    with httpx.Client(base_url=served, timeout=10) as client:
        preflight = _preflight(client, REFUSED)
        assert preflight.status_code == 400
        assert "access-control-allow-origin" not in preflight.headers

        token = _token(client)
        me = client.get("/v1/me", headers={"Origin": REFUSED, "Authorization": f"Bearer {token}"})
        # The API answers; the browser withholds the answer from the page, for want of headers.
        assert me.status_code == 200
        assert "access-control-allow-origin" not in me.headers
        with client.stream(
            "GET", "/v1/events", params={"access_token": token}, headers={"Origin": REFUSED}
        ) as stream:
            assert stream.status_code == 200
            assert "access-control-allow-origin" not in stream.headers


async def test_by_default_no_origin_gets_cors_headers(
    api_settings: ApiSettings, api: httpx.AsyncClient
) -> None:
    assert api_settings.api.cors_origins == ()
    preflight = await api.options(
        "/v1/jobs", headers={"Origin": ALLOWED, "Access-Control-Request-Method": "POST"}
    )
    assert preflight.status_code == 405
    assert "access-control-allow-origin" not in preflight.headers
    plans = await api.get("/v1/plans", headers={"Origin": ALLOWED})
    assert plans.status_code == 200
    assert "access-control-allow-origin" not in plans.headers


@pytest.mark.parametrize("entry", ["https://app.example.com/", "*", "app.example.com", "null"])
def test_a_listed_origin_must_be_an_origin(api_settings: ApiSettings, entry: str) -> None:
    with pytest.raises(ValueError, match="not an origin"):
        api_settings.api.model_validate({"cors_origins": [entry]})
