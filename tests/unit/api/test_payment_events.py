"""What each payment provider event means for genstream, without a database."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from api.payments.events import (
    CreditPurchase,
    Ignored,
    PayloadError,
    PlanUpdate,
    ProviderEvent,
    effect_of,
    parse_event,
    plan_changed,
)
from contracts import CreditsPurchased, Plan

USER = uuid.UUID("0b6f6f3e-7a0e-4c47-9d2a-3f7f1a1c2b3d")


def _event(type_: str, obj: dict[str, Any], event_id: str = "evt_1") -> ProviderEvent:
    body = {"id": event_id, "object": "event", "type": type_, "data": {"object": obj}}
    return parse_event(json.dumps(body).encode())


def _checkout(**changes: Any) -> dict[str, Any]:
    session: dict[str, Any] = {
        "id": "cs_test_1",
        "object": "checkout.session",
        "payment_status": "paid",
        "client_reference_id": None,
        "metadata": {"user_id": str(USER), "credits": "500"},
        "amount_total": 1999,
        "currency": "eur",
    }
    return {**session, **changes}


def _subscription(**changes: Any) -> dict[str, Any]:
    subscription: dict[str, Any] = {
        "id": "sub_1",
        "object": "subscription",
        "status": "active",
        "metadata": {"user_id": str(USER), "plan": "PRO"},
    }
    return {**subscription, **changes}


def test_a_paid_checkout_buys_its_credits() -> None:
    effect = effect_of(_event("checkout.session.completed", _checkout(), "evt_abc"))
    assert effect == CreditPurchase(
        user_id=USER,
        data=CreditsPurchased(
            amount=500,
            payment_id="cs_test_1",
            idempotency_key="checkout:cs_test_1",
            amount_paid_minor=1999,
            currency="EUR",
        ),
    )


def test_an_asynchronous_payment_that_succeeds_buys_credits_too() -> None:
    effect = effect_of(_event("checkout.session.async_payment_succeeded", _checkout()))
    assert isinstance(effect, CreditPurchase)


def test_the_user_may_come_from_the_client_reference() -> None:
    session = _checkout(client_reference_id=str(USER), metadata={"credits": "10"})
    effect = effect_of(_event("checkout.session.completed", session))
    assert isinstance(effect, CreditPurchase)
    assert (effect.user_id, effect.data.amount) == (USER, 10)


def test_a_checkout_without_a_complete_price_keeps_no_price() -> None:
    effect = effect_of(_event("checkout.session.completed", _checkout(currency=None)))
    assert isinstance(effect, CreditPurchase)
    assert (effect.data.amount_paid_minor, effect.data.currency) == (None, None)


def test_an_unpaid_checkout_is_ignored() -> None:
    effect = effect_of(_event("checkout.session.completed", _checkout(payment_status="unpaid")))
    assert isinstance(effect, Ignored)
    assert effect.expected
    assert "not 'paid'" in effect.reason


@pytest.mark.parametrize("credits", ["0", "-5", "1000001", "12.5", "lots", "", "١٢"])
def test_checkout_credits_must_be_a_sensible_whole_number(credits: str) -> None:
    session = _checkout(metadata={"user_id": str(USER), "credits": credits})
    effect = effect_of(_event("checkout.session.completed", session))
    assert isinstance(effect, Ignored)
    assert "metadata.credits" in effect.reason
    assert not effect.expected


def test_the_largest_purchase_is_a_million_credits() -> None:
    session = _checkout(metadata={"user_id": str(USER), "credits": "1000000"})
    effect = effect_of(_event("checkout.session.completed", session))
    assert isinstance(effect, CreditPurchase)
    assert effect.data.amount == 1_000_000


@pytest.mark.parametrize("metadata", [{"credits": "5"}, {"credits": "5", "user_id": "bob"}, None])
def test_a_checkout_for_no_valid_user_is_ignored(metadata: dict[str, str] | None) -> None:
    effect = effect_of(_event("checkout.session.completed", _checkout(metadata=metadata)))
    assert isinstance(effect, Ignored)
    assert not effect.expected


@pytest.mark.parametrize(
    ("type_", "status", "plan"),
    [
        ("customer.subscription.created", "active", "PRO"),
        ("customer.subscription.updated", "trialing", "creator"),
    ],
)
def test_an_active_subscription_sets_its_plan(type_: str, status: str, plan: str) -> None:
    subscription = _subscription(status=status, metadata={"user_id": str(USER), "plan": plan})
    effect = effect_of(_event(type_, subscription))
    assert effect == PlanUpdate(user_id=USER, plan=Plan(plan.upper()), subscription_id="sub_1")


@pytest.mark.parametrize("status", ["incomplete", "past_due", "canceled", "unpaid"])
def test_an_inactive_subscription_changes_no_plan(status: str) -> None:
    effect = effect_of(_event("customer.subscription.updated", _subscription(status=status)))
    assert isinstance(effect, Ignored)
    assert status in effect.reason


@pytest.mark.parametrize("plan", ["FREE", "GOLD", ""])
def test_a_subscription_must_name_a_paid_plan(plan: str) -> None:
    subscription = _subscription(metadata={"user_id": str(USER), "plan": plan})
    effect = effect_of(_event("customer.subscription.created", subscription))
    assert effect == Ignored("metadata.plan is not CREATOR or PRO")


def test_a_deleted_subscription_returns_the_user_to_free() -> None:
    effect = effect_of(_event("customer.subscription.deleted", _subscription(status="canceled")))
    assert effect == PlanUpdate(user_id=USER, plan=Plan.FREE, subscription_id=None)


def test_unhandled_event_types_are_ignored() -> None:
    effect = effect_of(_event("invoice.paid", {"id": "in_1"}))
    assert effect == Ignored("event type 'invoice.paid' is not handled", expected=True)


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1, 2]",
        b'"evt_1"',
        b'{"id": "evt_1", "type": "checkout.session.completed"}',
        b'{"id": "evt_1", "type": "x", "data": {}}',
        b'{"id": "evt_1", "type": "x", "data": {"object": "cs_1"}}',
        b'{"id": "", "type": "x", "data": {"object": {}}}',
        b'{"id": "evt 1", "type": "x", "data": {"object": {}}}',
        b'{"id": 5, "type": "x", "data": {"object": {}}}',
    ],
)
def test_bodies_that_are_not_events_are_refused(body: bytes) -> None:
    with pytest.raises(PayloadError, match="not a payment event"):
        parse_event(body)


@pytest.mark.parametrize(
    ("type_", "obj"),
    [
        ("checkout.session.completed", {"payment_status": "paid"}),
        ("checkout.session.completed", _checkout(id="cs with spaces")),
        ("checkout.session.completed", _checkout(amount_total=-1)),
        ("checkout.session.completed", _checkout(metadata={"credits": 5})),
        ("customer.subscription.updated", {"id": "sub_1"}),
        ("customer.subscription.deleted", {"status": "canceled"}),
    ],
)
def test_handled_events_with_malformed_objects_are_refused(type_: str, obj: dict[str, Any]) -> None:
    with pytest.raises(PayloadError, match=f"the {type_} object is malformed"):
        effect_of(_event(type_, obj))


def test_a_plan_change_names_the_plan_it_replaces() -> None:
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    update = PlanUpdate(user_id=USER, plan=Plan.PRO, subscription_id="sub_1")
    change = plan_changed(update, previous=Plan.FREE, event_id="evt_9", now=now)
    assert change is not None
    assert (change.plan, change.previous_plan, change.effective_at) == (Plan.PRO, Plan.FREE, now)
    assert (change.subscription_id, change.idempotency_key) == ("sub_1", "payment:evt_9")


def test_a_plan_the_user_already_has_is_no_change() -> None:
    update = PlanUpdate(user_id=USER, plan=Plan.PRO, subscription_id="sub_1")
    now = datetime.now(UTC)
    assert plan_changed(update, previous=Plan.PRO, event_id="evt_9", now=now) is None
