"""The payments webhook against the real database: signed, deduplicated, applied once."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from api.payments import sign
from api.settings import ApiSettings, PaymentSettings
from contracts import CREDITS_LEDGER, USERS_PLANS, CreditsPurchased, Plan, PlanChanged, decode
from genstream.db.models import OutboxMessage, PaymentEvent, User
from tests.integration.api.accounts import client_with

PATH = "/v1/webhooks/payments"


async def _user(engine: AsyncEngine, plan: Plan = Plan.FREE) -> uuid.UUID:
    async with AsyncSession(engine) as session, session.begin():
        user = User(email=f"payer-{uuid.uuid4().hex[:12]}@example.com", password_hash=None)
        user.plan = plan.value
        session.add(user)
        await session.flush()
        return user.id


def _body(type_: str, obj: dict[str, Any], event_id: str | None = None) -> bytes:
    event_id = event_id or f"evt_{uuid.uuid4().hex}"
    event = {"id": event_id, "object": "event", "type": type_, "data": {"object": obj}}
    return json.dumps(event).encode()


def _checkout(user_id: uuid.UUID, credits: str = "500") -> dict[str, Any]:
    return {
        "id": f"cs_test_{uuid.uuid4().hex[:16]}",
        "object": "checkout.session",
        "payment_status": "paid",
        "metadata": {"user_id": str(user_id), "credits": credits},
        "amount_total": 1999,
        "currency": "usd",
    }


def _subscription(user_id: uuid.UUID, status: str = "active", plan: str = "PRO") -> dict[str, Any]:
    return {
        "id": "sub_test_1",
        "object": "subscription",
        "status": status,
        "metadata": {"user_id": str(user_id), "plan": plan},
    }


async def _deliver(
    api: httpx.AsyncClient,
    settings: ApiSettings,
    body: bytes,
    *,
    timestamp: int | None = None,
    secret: str | None = None,
) -> httpx.Response:
    key = secret or settings.payments.webhook_secret.get_secret_value()
    header = sign(body, key, timestamp=int(time.time()) if timestamp is None else timestamp)
    return await api.post(
        PATH, content=body, headers={"Stripe-Signature": header, "Content-Type": "application/json"}
    )


async def _outbox(engine: AsyncEngine) -> list[OutboxMessage]:
    async with engine.connect() as connection:
        rows = (await connection.execute(select(OutboxMessage).order_by(OutboxMessage.id))).all()
    return [OutboxMessage(**row._asdict()) for row in rows]


async def _recorded_events(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        count: int = (await connection.execute(select(func.count(PaymentEvent.id)))).scalar_one()
    return count


async def _plan(engine: AsyncEngine, user_id: uuid.UUID) -> str:
    async with engine.connect() as connection:
        plan: str = (
            await connection.execute(select(User.plan).where(User.id == user_id))
        ).scalar_one()
    return plan


async def test_a_paid_checkout_stages_one_credit_purchase(
    api: httpx.AsyncClient, api_settings: ApiSettings, api_engine: AsyncEngine
) -> None:
    user_id = await _user(api_engine)
    session = _checkout(user_id)
    body = _body("checkout.session.completed", session, "evt_checkout_1")

    response = await _deliver(api, api_settings, body)

    assert response.status_code == 200, response.text
    assert response.json() == {"received": True, "duplicate": False}
    [message] = await _outbox(api_engine)
    assert (message.topic, message.key) == (CREDITS_LEDGER.name, str(user_id).encode())
    envelope = decode(message.value, [(n, v.encode()) for n, v in message.headers])
    assert envelope.user_id == str(user_id)
    assert envelope.data == CreditsPurchased(
        amount=500,
        payment_id=session["id"],
        idempotency_key=f"checkout:{session['id']}",
        amount_paid_minor=1999,
        currency="USD",
    )


async def test_a_checkout_session_is_fulfilled_once_whatever_its_events_ids(
    api: httpx.AsyncClient, api_settings: ApiSettings, api_engine: AsyncEngine
) -> None:
    user_id = await _user(api_engine)
    session = _checkout(user_id)
    answers = [
        await _deliver(api, api_settings, _body(kind, session))
        for kind in (
            "checkout.session.completed",
            "checkout.session.completed",  # the same session resent under a new event id
            "checkout.session.async_payment_succeeded",
        )
    ]

    assert [a.status_code for a in answers] == [200, 200, 200]
    assert answers[0].json() == {"received": True, "duplicate": False}
    for later in answers[1:]:
        assert later.json()["ignored"] == f"checkout session {session['id']} is already fulfilled"
    [message] = await _outbox(api_engine)
    purchase = decode(message.value, [(n, v.encode()) for n, v in message.headers]).data
    assert isinstance(purchase, CreditsPurchased)
    assert (purchase.amount, purchase.payment_id) == (500, session["id"])


async def test_an_unpaid_session_paid_later_is_fulfilled_then(
    api: httpx.AsyncClient, api_settings: ApiSettings, api_engine: AsyncEngine
) -> None:
    user_id = await _user(api_engine)
    session = _checkout(user_id)
    pending = session | {"payment_status": "unpaid"}
    unpaid = await _deliver(api, api_settings, _body("checkout.session.completed", pending))
    succeeded = _body("checkout.session.async_payment_succeeded", session)
    paid = await _deliver(api, api_settings, succeeded)

    assert "not 'paid'" in unpaid.json()["ignored"]
    assert paid.json() == {"received": True, "duplicate": False}
    assert len(await _outbox(api_engine)) == 1


async def test_a_redelivered_event_is_applied_once(
    api: httpx.AsyncClient, api_settings: ApiSettings, api_engine: AsyncEngine
) -> None:
    user_id = await _user(api_engine)
    body = _body("checkout.session.completed", _checkout(user_id))

    first = await _deliver(api, api_settings, body)
    # The provider signs each delivery anew.
    again = await _deliver(api, api_settings, body, timestamp=int(time.time()) + 1)

    assert first.json() == {"received": True, "duplicate": False}
    assert again.status_code == 200
    assert again.json() == {"received": True, "duplicate": True}
    assert len(await _outbox(api_engine)) == 1
    assert await _recorded_events(api_engine) == 2, "the event and its session's fulfilment"


async def test_concurrent_deliveries_of_one_event_apply_it_once(
    api: httpx.AsyncClient, api_settings: ApiSettings, api_engine: AsyncEngine
) -> None:
    user_id = await _user(api_engine)
    body = _body("checkout.session.completed", _checkout(user_id))

    responses = await asyncio.gather(*(_deliver(api, api_settings, body) for _ in range(5)))

    assert [r.status_code for r in responses] == [200] * 5
    assert sorted(r.json()["duplicate"] for r in responses) == [False, True, True, True, True]
    assert len(await _outbox(api_engine)) == 1


async def test_a_bad_signature_is_refused_and_changes_nothing(
    api: httpx.AsyncClient, api_settings: ApiSettings, api_engine: AsyncEngine
) -> None:
    user_id = await _user(api_engine)
    body = _body("checkout.session.completed", _checkout(user_id))

    response = await _deliver(api, api_settings, body, secret="whsec_not_the_secret")

    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"] == "no signature matches the payload"
    assert await _outbox(api_engine) == []
    assert await _recorded_events(api_engine) == 0


async def test_a_stale_signature_is_refused(
    api: httpx.AsyncClient, api_settings: ApiSettings, api_engine: AsyncEngine
) -> None:
    user_id = await _user(api_engine)
    body = _body("checkout.session.completed", _checkout(user_id))
    stale = int(time.time()) - api_settings.payments.tolerance_s - 60

    response = await _deliver(api, api_settings, body, timestamp=stale)

    assert response.status_code == 400
    assert "from now" in response.json()["detail"]
    assert await _outbox(api_engine) == []


async def test_a_missing_signature_is_refused(api: httpx.AsyncClient) -> None:
    response = await api.post(PATH, content=_body("invoice.paid", {"id": "in_1"}))
    assert response.status_code == 400
    assert response.json()["detail"] == "missing signature header"


async def test_a_signed_body_that_is_not_an_event_is_refused(
    api: httpx.AsyncClient, api_settings: ApiSettings, api_engine: AsyncEngine
) -> None:
    for garbage in (b"{not json", b"[]", b'{"id": "evt_1", "type": "checkout.session.completed"}'):
        response = await _deliver(api, api_settings, garbage)
        assert response.status_code == 400, garbage
        assert response.json()["detail"].startswith("the body is not a payment event")
    assert await _recorded_events(api_engine) == 0


async def test_a_subscription_update_changes_the_plan_once(
    api: httpx.AsyncClient, api_settings: ApiSettings, api_engine: AsyncEngine
) -> None:
    user_id = await _user(api_engine)

    response = await _deliver(
        api,
        api_settings,
        _body("customer.subscription.updated", _subscription(user_id), "evt_sub_1"),
    )

    assert response.json() == {"received": True, "duplicate": False}
    assert await _plan(api_engine, user_id) == "PRO"
    [message] = await _outbox(api_engine)
    assert (message.topic, message.key) == (USERS_PLANS.name, str(user_id).encode())
    change = decode(message.value).data
    assert isinstance(change, PlanChanged)
    assert (change.plan, change.previous_plan) == (Plan.PRO, Plan.FREE)
    assert (change.subscription_id, change.idempotency_key) == ("sub_test_1", "payment:evt_sub_1")

    # A later event about the same plan (a renewal, say) changes nothing.
    same = await _deliver(
        api, api_settings, _body("customer.subscription.updated", _subscription(user_id))
    )
    assert same.json() == {
        "received": True,
        "duplicate": False,
        "ignored": ("the user's plan is already PRO"),
    }
    assert len(await _outbox(api_engine)) == 1


async def test_a_deleted_subscription_returns_the_user_to_free(
    api: httpx.AsyncClient, api_settings: ApiSettings, api_engine: AsyncEngine
) -> None:
    user_id = await _user(api_engine, Plan.CREATOR)
    body = _body("customer.subscription.deleted", _subscription(user_id, status="canceled"))

    response = await _deliver(api, api_settings, body)

    assert response.status_code == 200
    assert await _plan(api_engine, user_id) == "FREE"
    [message] = await _outbox(api_engine)
    change = decode(message.value).data
    assert isinstance(change, PlanChanged)
    assert (change.plan, change.previous_plan, change.subscription_id) == (
        Plan.FREE,
        Plan.CREATOR,
        None,
    )


async def test_an_unknown_user_is_acknowledged_and_ignored(
    api: httpx.AsyncClient, api_settings: ApiSettings, api_engine: AsyncEngine
) -> None:
    stranger = uuid.uuid4()
    body = _body("checkout.session.completed", _checkout(stranger))

    response = await _deliver(api, api_settings, body)

    assert response.status_code == 200
    assert response.json()["ignored"] == f"unknown user {stranger}"
    assert await _outbox(api_engine) == []
    # Handled, so the provider's retries are answered as duplicates.
    assert (await _deliver(api, api_settings, body)).json()["duplicate"] is True


async def test_unhandled_event_types_are_acknowledged(
    api: httpx.AsyncClient, api_settings: ApiSettings, api_engine: AsyncEngine
) -> None:
    response = await _deliver(api, api_settings, _body("invoice.paid", {"id": "in_1"}))

    assert response.status_code == 200
    assert response.json()["ignored"] == "event type 'invoice.paid' is not handled"
    assert await _outbox(api_engine) == []


async def test_without_a_secret_no_event_is_accepted(
    api_settings: ApiSettings, api_engine: AsyncEngine
) -> None:
    unconfigured = api_settings.model_copy(update={"payments": PaymentSettings()})
    body = _body("invoice.paid", {"id": "in_1"})
    async with client_with(unconfigured, api_engine) as api:
        response = await api.post(
            PATH,
            content=body,
            headers={"Stripe-Signature": sign(body, "", timestamp=int(time.time()))},
        )
    assert response.status_code == 503
    assert await _recorded_events(api_engine) == 0
