"""Registration, password sign-in, sign-out and the calling user, against the real database."""

from __future__ import annotations

import base64
import json
import secrets
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import jwt
import pytest
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from api.auth.tokens import issue_access_token
from api.settings import ApiSettings
from contracts import CREDITS_LEDGER, CreditsGranted, decode
from genstream.db.models import OutboxMessage, User
from tests.integration.api.accounts import (
    PASSWORD,
    bearer,
    client_with,
    login,
    register,
    sign_up,
)


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


async def _outbox(engine: AsyncEngine) -> list[OutboxMessage]:
    async with engine.connect() as connection:
        rows = (await connection.execute(select(OutboxMessage))).all()
    return [OutboxMessage(**row._asdict()) for row in rows]


async def test_register_login_me(api: httpx.AsyncClient) -> None:
    signed_up = await api.post(
        "/v1/auth/register", json={"email": "Alice.Example@Example.COM", "password": PASSWORD}
    )
    assert signed_up.status_code == 202
    body = signed_up.json()
    assert set(body) == {"email", "detail"}
    assert body["email"] == "alice.example@example.com"

    tokens = await login(api, "ALICE.example@example.com")
    assert set(tokens) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert tokens["token_type"] == "bearer"
    assert tokens["expires_in"] > 0

    me = await api.get("/v1/me", headers=bearer(tokens["access_token"]))
    assert me.status_code == 200
    user = me.json()
    assert set(user) == {"id", "email", "plan"}
    assert (user["email"], user["plan"]) == ("alice.example@example.com", "FREE")


async def test_password_is_stored_only_as_an_argon2id_hash(
    api: httpx.AsyncClient, api_engine: AsyncEngine
) -> None:
    user = await register(api)
    async with api_engine.connect() as connection:
        stored = (
            await connection.execute(select(User.password_hash).where(User.email == user["email"]))
        ).scalar_one()
    assert stored is not None
    assert stored.startswith("$argon2id$")
    assert PASSWORD not in stored


async def test_registration_stages_one_signup_grant(
    api: httpx.AsyncClient, api_engine: AsyncEngine, api_settings: ApiSettings
) -> None:
    user = await register(api)

    messages = await _outbox(api_engine)
    assert len(messages) == 1
    assert messages[0].topic == CREDITS_LEDGER.name
    envelope = decode(messages[0].value)
    assert envelope.user_id == user["id"]
    assert envelope.source == "genstream/api"
    assert isinstance(envelope.data, CreditsGranted)
    assert envelope.data.amount == api_settings.auth.signup_credits
    assert envelope.data.reason == "signup"
    assert envelope.data.idempotency_key == f"signup:{user['id']}"


async def test_no_grant_when_signup_credits_are_zero(
    api_settings: ApiSettings, api_engine: AsyncEngine
) -> None:
    auth = api_settings.auth.model_copy(update={"signup_credits": 0})
    async with client_with(api_settings.model_copy(update={"auth": auth}), api_engine) as api:
        await register(api)
    assert await _outbox(api_engine) == []


async def test_a_taken_email_gets_the_answer_a_new_one_gets_and_changes_nothing(
    api: httpx.AsyncClient, api_engine: AsyncEngine
) -> None:
    fresh = await api.post(
        "/v1/auth/register", json={"email": "bob@example.com", "password": PASSWORD}
    )
    again = await api.post(
        "/v1/auth/register", json={"email": "BOB@example.com", "password": "another password"}
    )
    assert again.status_code == fresh.status_code == 202
    assert again.json() == fresh.json()
    assert fresh.json()["email"] == "bob@example.com"
    assert again.headers["content-type"] == fresh.headers["content-type"]
    assert len(await _outbox(api_engine)) == 1
    # The account is untouched: its own password still signs in, the new one does not.
    await login(api, "bob@example.com")
    refused = await api.post(
        "/v1/auth/token", data={"username": "bob@example.com", "password": "another password"}
    )
    assert refused.status_code == 401


async def test_a_taken_email_costs_the_time_of_a_new_one(api: httpx.AsyncClient) -> None:
    """Both hash the password: the answer's delay does not tell a taken address either."""
    taken = await sign_up(api)

    async def timed(email: str) -> float:
        began = time.perf_counter()
        answer = await api.post("/v1/auth/register", json={"email": email, "password": PASSWORD})
        assert answer.status_code == 202
        return time.perf_counter() - began

    new_s, taken_s = [], []
    for _ in range(5):  # interleaved, so that both see the same load on the machine
        new_s.append(await timed(f"new-{uuid.uuid4().hex[:12]}@example.com"))
        taken_s.append(await timed(taken))
    assert statistics.median(taken_s) > 0.5 * statistics.median(new_s), (new_s, taken_s)


@pytest.mark.parametrize(
    "body",
    [
        {"email": "not-an-email", "password": PASSWORD},
        {"email": "short@example.com", "password": "short"},
        {"email": "long@example.com", "password": "x" * 257},
        {"email": "extra@example.com", "password": PASSWORD, "plan": "PRO"},
    ],
)
async def test_invalid_registrations_are_refused(
    api: httpx.AsyncClient, body: dict[str, str]
) -> None:
    response = await api.post("/v1/auth/register", json=body)
    assert response.status_code == 422
    assert PASSWORD not in response.text


async def test_wrong_password_and_unknown_email_get_the_same_401(api: httpx.AsyncClient) -> None:
    user = await register(api)
    wrong = await api.post(
        "/v1/auth/token", data={"username": user["email"], "password": "not the password"}
    )
    unknown = await api.post(
        "/v1/auth/token", data={"username": "nobody@example.com", "password": PASSWORD}
    )
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json()["detail"] == unknown.json()["detail"]


async def test_missing_or_malformed_authorization_is_challenged(api: httpx.AsyncClient) -> None:
    for headers in ({}, {"Authorization": "Basic dXNlcjpwYXNz"}, bearer("not-a-jwt")):
        response = await api.get("/v1/me", headers=headers)
        assert response.status_code == 401, headers
        assert response.headers["www-authenticate"].startswith("Bearer")


async def test_forged_and_expired_access_tokens_are_refused(
    api: httpx.AsyncClient, api_settings: ApiSettings
) -> None:
    user = await register(api)
    tokens = await login(api, user["email"])
    claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})

    alg_none = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}."
    other_key = jwt.encode(claims, secrets.token_urlsafe(48), algorithm="HS256")
    expired = issue_access_token(
        api_settings.auth,
        user_id=uuid.UUID(user["id"]),
        session_id=uuid.UUID(claims["sid"]),
        now=datetime.now(UTC) - timedelta(hours=2),
    )
    unknown_session = issue_access_token(
        api_settings.auth, user_id=uuid.UUID(user["id"]), session_id=uuid.uuid4()
    )
    other_issuer = issue_access_token(
        api_settings.auth.model_copy(update={"jwt_issuer": "someone-else"}),
        user_id=uuid.UUID(user["id"]),
        session_id=uuid.UUID(claims["sid"]),
    )
    other_secret = api_settings.auth.model_copy(
        update={"jwt_secret": SecretStr(secrets.token_urlsafe(48))}
    )
    resigned = issue_access_token(
        other_secret, user_id=uuid.UUID(user["id"]), session_id=uuid.UUID(claims["sid"])
    )

    for token in (alg_none, other_key, expired, unknown_session, other_issuer, resigned):
        response = await api.get("/v1/me", headers=bearer(token))
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer")
    assert (await api.get("/v1/me", headers=bearer(tokens["access_token"]))).status_code == 200


async def test_logout_ends_the_session_and_only_that_one(api: httpx.AsyncClient) -> None:
    user = await register(api)
    first = await login(api, user["email"])
    second = await login(api, user["email"])

    response = await api.post("/v1/auth/logout", headers=bearer(first["access_token"]))
    assert response.status_code == 204

    assert (await api.get("/v1/me", headers=bearer(first["access_token"]))).status_code == 401
    refreshed = await api.post("/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert refreshed.status_code == 401
    assert (await api.get("/v1/me", headers=bearer(second["access_token"]))).status_code == 200


async def test_logout_needs_a_caller(api: httpx.AsyncClient) -> None:
    response = await api.post("/v1/auth/logout")
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_openapi_names_the_operations(api: httpx.AsyncClient) -> None:
    paths = (await api.get("/openapi.json")).json()["paths"]
    operations = {
        operation["operationId"] for methods in paths.values() for operation in methods.values()
    }
    assert {
        "auth_register",
        "auth_token",
        "auth_refresh",
        "auth_logout",
        "auth_oidc",
        "api_keys_create",
        "api_keys_list",
        "api_keys_delete",
        "me_get",
    } <= operations
