"""Tokens that must open nothing, refused alike on a plain route and on the event streams.

``test_auth_flow.py`` refuses forged and expired tokens on ``/v1/me``; here each of them,
and a refresh token passed off as an access token, goes every way a token can: the
``Authorization`` header of a protected route, and both the header and ``?access_token=``
of the event streams, whose tokens are checked by a dependency of their own.
"""

from __future__ import annotations

import base64
import json
import secrets
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Final

import httpx
import jwt
import pytest
from sqlalchemy import Engine

from api.auth.tokens import ALGORITHM, issue_access_token
from api.settings import ApiSettings
from genstream.db import sync_engine
from genstream.settings import StackSettings
from tests.integration.api.accounts import bearer, login, register
from tests.integration.api.lifecycle import add_job

BadToken = Callable[[ApiSettings, dict[str, str]], str]


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _claims(tokens: dict[str, str]) -> dict[str, object]:
    claims: dict[str, object] = jwt.decode(
        tokens["access_token"], options={"verify_signature": False}
    )
    return claims


def _alg_none(_: ApiSettings, tokens: dict[str, str]) -> str:
    return f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(_claims(tokens))}."


def _wrong_key(_: ApiSettings, tokens: dict[str, str]) -> str:
    return jwt.encode(_claims(tokens), secrets.token_urlsafe(48), algorithm=ALGORITHM)


def _expired(settings: ApiSettings, tokens: dict[str, str]) -> str:
    claims = _claims(tokens)
    return issue_access_token(
        settings.auth,
        user_id=uuid.UUID(str(claims["sub"])),
        session_id=uuid.UUID(str(claims["sid"])),
        now=datetime.now(UTC) - timedelta(seconds=settings.auth.access_ttl_s + 60),
    )


def _refresh_token(_: ApiSettings, tokens: dict[str, str]) -> str:
    return tokens["refresh_token"]


def _not_an_access_token(settings: ApiSettings, tokens: dict[str, str]) -> str:
    """Signed with the right key, for the right user and session, but of another type."""
    claims = {**_claims(tokens), "typ": "refresh"}
    return jwt.encode(claims, settings.auth.jwt_secret.get_secret_value(), algorithm=ALGORITHM)


BAD_TOKENS: Final[dict[str, BadToken]] = {
    "alg none": _alg_none,
    "signed with another key": _wrong_key,
    "expired": _expired,
    "a refresh token": _refresh_token,
    "a JWT of another type": _not_an_access_token,
}


@pytest.fixture
def schema_engine(stack: StackSettings, pg_schema: tuple[Engine, str]) -> Iterator[Engine]:
    engine = sync_engine(stack.pg, schema=pg_schema[1])
    yield engine
    engine.dispose()


def _ways_in(job_id: str, token: str) -> dict[str, tuple[str, dict[str, str], dict[str, str]]]:
    """Each way to present ``token``: path, headers, query. The streams are asked to resume
    from an event id they never issued: past the caller check, that is a finite 400."""
    resume = {"Last-Event-ID": "not-an-id"}
    job_events = f"/v1/jobs/{job_id}/events"
    return {
        "GET /v1/me": ("/v1/me", bearer(token), {}),
        "job events, header": (job_events, bearer(token) | resume, {}),
        "job events, query": (job_events, resume, {"access_token": token}),
        "all events, header": ("/v1/events", bearer(token) | resume, {}),
        "all events, query": ("/v1/events", resume, {"access_token": token}),
    }


@pytest.mark.parametrize("kind", BAD_TOKENS)
async def test_a_token_that_is_no_access_token_opens_nothing(
    api: httpx.AsyncClient, api_settings: ApiSettings, schema_engine: Engine, kind: str
) -> None:
    user = await register(api)
    tokens = await login(api, user["email"])
    job_id = add_job(schema_engine, user["id"])
    bad = BAD_TOKENS[kind](api_settings, tokens)

    for way, (path, headers, query) in _ways_in(job_id, bad).items():
        refused = await api.get(path, headers=headers, params=query)
        assert refused.status_code == 401, f"{way}: {refused.text}"
        assert refused.headers["content-type"] == "application/problem+json", way
        assert refused.headers["www-authenticate"].startswith("Bearer"), way
    # The same ways with the user's real access token get past the check.
    for way, (path, headers, query) in _ways_in(job_id, tokens["access_token"]).items():
        accepted = await api.get(path, headers=headers, params=query)
        assert accepted.status_code == (200 if path == "/v1/me" else 400), f"{way}: {accepted.text}"
