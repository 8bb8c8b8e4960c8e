"""``GET /v1/credits`` and ``GET /v1/plans`` over the read model the projection keeps."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from api.projection.ledger import apply_ledger_events
from contracts import CreditsGranted, CreditsReserved, CreditsSettled, Envelope
from tests.integration.api.accounts import bearer, login, register


async def _project(engine: AsyncEngine, user_id: str, events: list[Any]) -> None:
    envelopes = [Envelope.wrap(e, user_id=user_id, source="genstream/tests") for e in events]
    async with engine.begin() as connection:
        await connection.run_sync(apply_ledger_events, envelopes)


async def test_credits_show_balance_holds_and_a_paged_ledger(
    api: httpx.AsyncClient, api_engine: AsyncEngine
) -> None:
    user = await register(api)
    tokens = await login(api, user["email"])
    headers = bearer(tokens["access_token"])
    empty = await api.get("/v1/credits", headers=headers)
    assert empty.status_code == 200
    assert empty.json() == {"balance": 0, "reserved": 0, "ledger": [], "next_cursor": None}

    events: list[Any] = [CreditsGranted(amount=100, reason="signup", idempotency_key="s")]
    for n in range(5):
        events.append(CreditsReserved(job_id=f"j{n}", amount=4, idempotency_key=f"r{n}"))
    events.append(CreditsSettled(job_id="j0", amount=3, released=1, idempotency_key="s0"))
    await _project(api_engine, user["id"], events)

    first = (await api.get("/v1/credits", params={"limit": 4}, headers=headers)).json()
    assert (first["balance"], first["reserved"]) == (100 - 20 + 1, 16)
    assert [e["kind"] for e in first["ledger"]] == ["settled", "reserved", "reserved", "reserved"]
    assert first["next_cursor"] is not None
    rest = await api.get(
        "/v1/credits", params={"limit": 4, "cursor": first["next_cursor"]}, headers=headers
    )
    second = rest.json()
    assert [e["kind"] for e in second["ledger"]] == ["reserved", "reserved", "granted"]
    assert second["next_cursor"] is None
    assert first["ledger"][0]["job_id"] == "j0"


async def test_credits_are_the_callers_own(api: httpx.AsyncClient, api_engine: AsyncEngine) -> None:
    alice, bob = await register(api), await register(api)
    grant = CreditsGranted(amount=50, reason="promo", idempotency_key="p")
    await _project(api_engine, alice["id"], [grant])
    bob_tokens = await login(api, bob["email"])
    seen_by_bob = (await api.get("/v1/credits", headers=bearer(bob_tokens["access_token"]))).json()
    assert seen_by_bob["balance"] == 0
    assert seen_by_bob["ledger"] == []


async def test_credits_need_a_caller_and_a_valid_cursor(api: httpx.AsyncClient) -> None:
    anonymous = await api.get("/v1/credits")
    assert anonymous.status_code == 401
    assert anonymous.headers["content-type"].startswith("application/problem+json")
    user = await register(api)
    tokens = await login(api, user["email"])
    bad = await api.get(
        "/v1/credits", params={"cursor": "!!"}, headers=bearer(tokens["access_token"])
    )
    assert bad.status_code == 400
    assert bad.json()["status"] == 400


async def test_plans_and_prices_are_public(api: httpx.AsyncClient) -> None:
    body = (await api.get("/v1/plans")).json()
    assert body["plans"]["FREE"]["max_video_duration_s"] == 30
    assert body["plans"]["PRO"]["tier"] == "pro"
    assert body["prices"]["video.enhance"] == {"credits": 10, "per": "minute", "unit": 1}
