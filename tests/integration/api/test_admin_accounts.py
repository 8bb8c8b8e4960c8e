"""Operators set plans and grant credits through the API, audited in the events they stage."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts import CREDITS_LEDGER, USERS_PLANS, CreditsGranted, Envelope, Plan, PlanChanged
from contracts import decode as decode_event
from genstream.db.models import OutboxMessage, User
from tests.integration.api.accounts import bearer, login, register


async def _signed_in(api: httpx.AsyncClient) -> tuple[dict[str, Any], dict[str, str]]:
    me = await register(api)
    return me, bearer((await login(api, me["email"]))["access_token"])


async def _admin(api: httpx.AsyncClient, engine: AsyncEngine) -> tuple[str, dict[str, str]]:
    me, headers = await _signed_in(api)
    async with engine.begin() as connection:
        await connection.execute(update(User).where(User.id == me["id"]).values(role="admin"))
    return me["id"], headers


async def _staged(engine: AsyncEngine, topic: str) -> list[Envelope[Any]]:
    async with engine.connect() as connection:
        rows = (
            await connection.execute(
                select(OutboxMessage).where(OutboxMessage.topic == topic).order_by(OutboxMessage.id)
            )
        ).all()
    return [
        decode_event(row.value, [(name, value.encode()) for name, value in row.headers])
        for row in rows
    ]


async def test_an_admin_sets_a_plan_once_and_the_change_names_them(
    api: httpx.AsyncClient, api_engine: AsyncEngine
) -> None:
    admin_id, admin = await _admin(api, api_engine)
    user, headers = await _signed_in(api)

    found = await api.get("/v1/admin/users", params={"email": user["email"]}, headers=admin)
    assert found.status_code == 200, found.text
    assert (found.json()["id"], found.json()["plan"]) == (user["id"], "FREE")

    path = f"/v1/admin/users/{user['id']}/plan"
    changed = await api.put(path, json={"plan": "PRO", "reason": "trial"}, headers=admin)
    assert changed.status_code == 200, changed.text
    assert changed.json() == {
        "user_id": user["id"],
        "plan": "PRO",
        "previous_plan": "FREE",
        "changed": True,
    }
    again = await api.put(path, json={"plan": "PRO", "reason": "trial"}, headers=admin)
    assert again.json()["changed"] is False

    [staged] = await _staged(api_engine, USERS_PLANS.name)
    assert staged.user_id == user["id"]
    assert isinstance(staged.data, PlanChanged)
    assert (staged.data.plan, staged.data.previous_plan) == (Plan.PRO, Plan.FREE)
    assert (staged.data.operator, staged.data.reason) == (admin_id, "trial")
    assert (await api.get("/v1/me", headers=headers)).json()["plan"] == "PRO"


async def test_an_admin_grant_is_one_ledger_event_per_key_naming_them(
    api: httpx.AsyncClient, api_engine: AsyncEngine
) -> None:
    admin_id, admin = await _admin(api, api_engine)
    user, _ = await _signed_in(api)
    path = f"/v1/admin/users/{user['id']}/credits"
    keyed = admin | {"Idempotency-Key": "refund-42"}

    first = await api.post(path, json={"amount": 40, "reason": "outage refund"}, headers=keyed)
    second = await api.post(path, json={"amount": 40, "reason": "outage refund"}, headers=keyed)
    assert [first.status_code, second.status_code] == [202, 202], first.text
    assert first.json() == second.json()
    assert first.json()["idempotency_key"] == "operator:refund-42"

    grants = [
        e for e in await _staged(api_engine, CREDITS_LEDGER.name) if e.data.reason != "signup"
    ]
    # Sent twice, it is staged once.
    assert len(grants) == 1
    assert isinstance(grants[0].data, CreditsGranted)
    assert grants[0].data == CreditsGranted(
        amount=40,
        reason="operator: outage refund",
        idempotency_key="operator:refund-42",
        operator=admin_id,
    )


async def test_bad_operator_requests_are_refused_with_their_reason(
    api: httpx.AsyncClient, api_engine: AsyncEngine
) -> None:
    _, admin = await _admin(api, api_engine)
    user, _ = await _signed_in(api)
    credits = f"/v1/admin/users/{user['id']}/credits"
    for body in (
        {"amount": 0, "reason": "x"},
        {"amount": "5", "reason": "x"},
        {"amount": 2_000_000, "reason": "x"},
        {"amount": 5},
        {"amount": 5, "reason": "x", "extra": True},
    ):
        refused = await api.post(credits, json=body, headers=admin)
        assert refused.status_code == 422, body
    plan = f"/v1/admin/users/{user['id']}/plan"
    assert (
        await api.put(plan, json={"plan": "GOLD", "reason": "x"}, headers=admin)
    ).status_code == 422
    unknown = "/v1/admin/users/00000000-0000-4000-8000-000000000000/plan"
    missing = await api.put(unknown, json={"plan": "PRO", "reason": "x"}, headers=admin)
    assert missing.status_code == 404
    nobody = await api.get("/v1/admin/users", params={"email": "no-one@example.com"}, headers=admin)
    assert nobody.status_code == 404
    assert await _staged(api_engine, USERS_PLANS.name) == []
