"""Auth endpoints are limited per client address and, for sign-in, per account."""

from __future__ import annotations

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from api.settings import ApiSettings, RateLimitSettings
from tests.integration.api.accounts import PASSWORD, client_with, sign_up


def _limited(api_settings: ApiSettings, *, per_ip: int, per_account: int) -> ApiSettings:
    limits = RateLimitSettings(auth_per_ip=per_ip, auth_per_account=per_account, window_s=3600)
    return api_settings.model_copy(update={"rate_limits": limits})


def _assert_limited(response: httpx.Response) -> None:
    assert response.status_code == 429
    assert int(response.headers["retry-after"]) >= 1
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_registration_is_limited_per_address(
    api_settings: ApiSettings, api_engine: AsyncEngine
) -> None:
    settings = _limited(api_settings, per_ip=2, per_account=100)
    async with client_with(settings, api_engine) as api:
        await sign_up(api)
        await sign_up(api)
        third = await api.post(
            "/v1/auth/register", json={"email": "third@example.com", "password": PASSWORD}
        )
        _assert_limited(third)
        refresh = await api.post("/v1/auth/refresh", json={"refresh_token": "anything"})
        _assert_limited(refresh)


async def test_sign_in_is_limited_per_account(
    api_settings: ApiSettings, api_engine: AsyncEngine
) -> None:
    settings = _limited(api_settings, per_ip=100, per_account=2)
    async with client_with(settings, api_engine) as api:
        email = await sign_up(api)
        attempt = {"username": email, "password": "wrong password"}
        for _ in range(2):
            assert (await api.post("/v1/auth/token", data=attempt)).status_code == 401
        _assert_limited(await api.post("/v1/auth/token", data=attempt))
        # The right password does not get past the limit either.
        right = {"username": email.upper(), "password": PASSWORD}
        _assert_limited(await api.post("/v1/auth/token", data=right))

        other = {"username": "someone.else@example.com", "password": "wrong password"}
        assert (await api.post("/v1/auth/token", data=other)).status_code == 401
