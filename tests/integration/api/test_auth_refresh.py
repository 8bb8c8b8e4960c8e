"""Refresh token rotation: each token works once; a second use ends the whole session."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from genstream.db.models import AuthSession
from tests.integration.api.accounts import bearer, login, register


async def _refresh(api: httpx.AsyncClient, refresh_token: str) -> httpx.Response:
    return await api.post("/v1/auth/refresh", json={"refresh_token": refresh_token})


async def test_refresh_rotates_the_tokens(api: httpx.AsyncClient) -> None:
    user = await register(api)
    first = await login(api, user["email"])

    response = await _refresh(api, first["refresh_token"])
    assert response.status_code == 200
    second = response.json()
    assert second["token_type"] == "bearer"
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]

    me = await api.get("/v1/me", headers=bearer(second["access_token"]))
    assert me.status_code == 200
    assert me.json()["id"] == user["id"]
    assert (await _refresh(api, second["refresh_token"])).status_code == 200


async def test_reusing_a_refresh_token_revokes_the_session(api: httpx.AsyncClient) -> None:
    user = await register(api)
    first = await login(api, user["email"])
    second = (await _refresh(api, first["refresh_token"])).json()

    reused = await _refresh(api, first["refresh_token"])
    assert reused.status_code == 401
    assert reused.headers["content-type"].startswith("application/problem+json")

    assert (await _refresh(api, second["refresh_token"])).status_code == 401
    assert (await api.get("/v1/me", headers=bearer(second["access_token"]))).status_code == 401


async def test_concurrent_refreshes_of_one_token_cannot_both_succeed(
    api: httpx.AsyncClient,
) -> None:
    user = await register(api)
    tokens = await login(api, user["email"])

    responses = await asyncio.gather(
        _refresh(api, tokens["refresh_token"]), _refresh(api, tokens["refresh_token"])
    )

    assert sorted(response.status_code for response in responses) == [200, 401]
    winner = next(response.json() for response in responses if response.status_code == 200)
    # The loser's attempt counts as reuse: the session is over for both.
    assert (await _refresh(api, winner["refresh_token"])).status_code == 401


async def test_unknown_refresh_token_is_refused(api: httpx.AsyncClient) -> None:
    assert (await _refresh(api, "not-a-token")).status_code == 401


async def test_refresh_after_logout_is_refused(api: httpx.AsyncClient) -> None:
    user = await register(api)
    tokens = await login(api, user["email"])
    await api.post("/v1/auth/logout", headers=bearer(tokens["access_token"]))
    assert (await _refresh(api, tokens["refresh_token"])).status_code == 401


async def test_expired_session_is_refused(api: httpx.AsyncClient, api_engine: AsyncEngine) -> None:
    user = await register(api)
    tokens = await login(api, user["email"])
    async with api_engine.begin() as connection:
        await connection.execute(
            update(AuthSession).values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )

    assert (await _refresh(api, tokens["refresh_token"])).status_code == 401
    assert (await api.get("/v1/me", headers=bearer(tokens["access_token"]))).status_code == 401
