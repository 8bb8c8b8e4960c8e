"""API keys: shown once, listed without the secret, accepted as bearer, revoked at once."""

from __future__ import annotations

import uuid

import httpx

from api.auth.api_keys import MAX_ACTIVE_KEYS
from tests.integration.api.accounts import bearer, login, register


async def _signed_in(api: httpx.AsyncClient) -> tuple[dict[str, str], dict[str, str]]:
    user = await register(api)
    tokens = await login(api, user["email"])
    return user, bearer(tokens["access_token"])


async def _create(api: httpx.AsyncClient, auth: dict[str, str], name: str) -> dict[str, str]:
    response = await api.post("/v1/api-keys", json={"name": name}, headers=auth)
    assert response.status_code == 201, response.text
    body: dict[str, str] = response.json()
    return body


async def test_create_list_use_and_revoke(api: httpx.AsyncClient) -> None:
    user, auth = await _signed_in(api)

    created = await _create(api, auth, "ci")
    assert set(created) == {"id", "name", "key"}
    assert created["name"] == "ci"
    assert created["key"].startswith("gsk_")

    listed = (await api.get("/v1/api-keys", headers=auth)).json()
    assert listed["items"] == [
        {
            "id": created["id"],
            "name": "ci",
            "prefix": created["key"][:12],
            "created_at": listed["items"][0]["created_at"],
            "last_used_at": None,
            "daily_credit_cap": None,
        }
    ]
    assert created["key"] not in (await api.get("/v1/api-keys", headers=auth)).text

    me = await api.get("/v1/me", headers=bearer(created["key"]))
    assert me.status_code == 200
    assert me.json()["id"] == user["id"]
    used = (await api.get("/v1/api-keys", headers=auth)).json()["items"][0]
    assert used["last_used_at"] is not None

    deleted = await api.delete(f"/v1/api-keys/{created['id']}", headers=auth)
    assert deleted.status_code == 204

    refused = await api.get("/v1/me", headers=bearer(created["key"]))
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"].startswith("Bearer")
    assert (await api.get("/v1/api-keys", headers=auth)).json() == {"items": []}
    again = await api.delete(f"/v1/api-keys/{created['id']}", headers=auth)
    assert again.status_code == 404


async def test_a_key_manages_keys_and_logout_with_it_changes_nothing(
    api: httpx.AsyncClient,
) -> None:
    _, auth = await _signed_in(api)
    key = bearer((await _create(api, auth, "script"))["key"])

    assert (await api.post("/v1/auth/logout", headers=key)).status_code == 204
    assert (await api.get("/v1/me", headers=key)).status_code == 200
    assert (await api.get("/v1/me", headers=auth)).status_code == 200


async def test_other_users_keys_are_invisible(api: httpx.AsyncClient) -> None:
    _, alice = await _signed_in(api)
    _, bob = await _signed_in(api)
    key = await _create(api, alice, "alice's")

    assert (await api.get("/v1/api-keys", headers=bob)).json() == {"items": []}
    stolen = await api.delete(f"/v1/api-keys/{key['id']}", headers=bob)
    unknown = await api.delete(f"/v1/api-keys/{uuid.uuid4()}", headers=bob)
    assert stolen.status_code == unknown.status_code == 404
    assert stolen.json()["detail"] == unknown.json()["detail"]

    assert (await api.get("/v1/me", headers=bearer(key["key"]))).status_code == 200
    assert len((await api.get("/v1/api-keys", headers=alice)).json()["items"]) == 1


async def test_unknown_keys_are_refused(api: httpx.AsyncClient) -> None:
    response = await api.get("/v1/me", headers=bearer("gsk_" + "x" * 43))
    assert response.status_code == 401


async def test_active_keys_are_limited(api: httpx.AsyncClient) -> None:
    _, auth = await _signed_in(api)
    keys = [await _create(api, auth, f"key {n}") for n in range(MAX_ACTIVE_KEYS)]

    over = await api.post("/v1/api-keys", json={"name": "one too many"}, headers=auth)
    assert over.status_code == 409

    await api.delete(f"/v1/api-keys/{keys[0]['id']}", headers=auth)
    await _create(api, auth, "replacement")


async def test_keys_need_a_signed_in_caller_and_a_name(api: httpx.AsyncClient) -> None:
    assert (await api.post("/v1/api-keys", json={"name": "x"})).status_code == 401
    _, auth = await _signed_in(api)
    for name in ("", "   ", "x" * 101):
        response = await api.post("/v1/api-keys", json={"name": name}, headers=auth)
        assert response.status_code == 422
