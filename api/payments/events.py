"""Payment provider events and what each one means for genstream.

Parsing refuses a body that is not an event, or a handled event whose object has the wrong
shape: the provider answers such a refusal by retrying, which helps once the cause is fixed.
An event that is well formed but names no usable user, plan or credit amount is ``Ignored``
instead: retrying the same event could never make it apply.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Final, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from contracts import CreditsPurchased, Plan, PlanChanged
from contracts.fields import Id

__all__ = [
    "MAX_CREDITS",
    "CreditPurchase",
    "Effect",
    "Ignored",
    "PayloadError",
    "PlanUpdate",
    "ProviderEvent",
    "effect_of",
    "parse_event",
    "plan_changed",
]

MAX_CREDITS: Final = 1_000_000
"""The most credits one checkout may buy; more is a mistake in the checkout's metadata."""

CHECKOUT_PAID: Final = frozenset(
    {"checkout.session.completed", "checkout.session.async_payment_succeeded"}
)
SUBSCRIPTION_CHANGED: Final = frozenset(
    {"customer.subscription.created", "customer.subscription.updated"}
)
SUBSCRIPTION_DELETED: Final = "customer.subscription.deleted"
_PLAN_GRANTING_STATUSES: Final = frozenset({"active", "trialing"})
_PAID_PLANS: Final = frozenset({Plan.CREATOR, Plan.PRO})
_CREDITS: Final = re.compile(r"[0-9]{1,7}")
_CURRENCY: Final = re.compile(r"[A-Za-z]{3}")


class PayloadError(ValueError):
    """The body is not a payment event genstream can read; the message says what is wrong."""


class _Received(BaseModel):
    # The provider adds fields over time; only the ones read here are checked.
    model_config = ConfigDict(extra="ignore", frozen=True)


_ObjectT = TypeVar("_ObjectT", bound=_Received)


class _EventData(_Received):
    object: dict[str, Any]


class ProviderEvent(_Received):
    id: Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[!-~]+$")]
    """Unique per event, also across redeliveries: the deduplication key."""
    type: Annotated[str, Field(min_length=1, max_length=100)]
    data: _EventData


class _CheckoutSession(_Received):
    id: Id
    payment_status: str | None = None
    client_reference_id: str | None = None
    metadata: dict[str, str] | None = None
    amount_total: Annotated[int, Field(ge=0)] | None = None
    currency: str | None = None


class _Subscription(_Received):
    id: Id
    status: str
    metadata: dict[str, str] | None = None


@dataclass(frozen=True, slots=True)
class CreditPurchase:
    user_id: uuid.UUID
    data: CreditsPurchased


@dataclass(frozen=True, slots=True)
class PlanUpdate:
    user_id: uuid.UUID
    plan: Plan
    subscription_id: str | None


@dataclass(frozen=True, slots=True)
class Ignored:
    reason: str
    expected: bool = False
    """True for events that are normal to skip (types not handled, unpaid sessions)."""


Effect = CreditPurchase | PlanUpdate | Ignored


def parse_event(body: bytes) -> ProviderEvent:
    try:
        return ProviderEvent.model_validate_json(body)
    except ValidationError as error:
        raise PayloadError(_explain("the body is not a payment event", error)) from None


def effect_of(event: ProviderEvent) -> Effect:
    """What ``event`` asks of genstream; raises ``PayloadError`` for a malformed object."""
    if event.type in CHECKOUT_PAID:
        return _checkout(event, _object(event, _CheckoutSession))
    if event.type in SUBSCRIPTION_CHANGED:
        return _subscription_changed(_object(event, _Subscription))
    if event.type == SUBSCRIPTION_DELETED:
        return _subscription_deleted(_object(event, _Subscription))
    return Ignored(f"event type {event.type!r} is not handled", expected=True)


def plan_changed(
    update: PlanUpdate, *, previous: Plan | None, event_id: str, now: datetime
) -> PlanChanged | None:
    """The event announcing ``update``, or ``None`` when the user already has the plan."""
    if previous == update.plan:
        return None
    return PlanChanged(
        plan=update.plan,
        previous_plan=previous,
        effective_at=now,
        subscription_id=update.subscription_id,
        idempotency_key=f"payment:{event_id}",
    )


def _object(event: ProviderEvent, model: type[_ObjectT]) -> _ObjectT:
    try:
        return model.model_validate(event.data.object)
    except ValidationError as error:
        raise PayloadError(_explain(f"the {event.type} object is malformed", error)) from None


def _explain(problem: str, error: ValidationError) -> str:
    # Where and why only: the input itself is untrusted and may be large.
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "body"
    return f"{problem}: {where}: {first['msg']}"


def _user_id(value: str | None) -> uuid.UUID | None:
    if not value:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def _checkout(event: ProviderEvent, session: _CheckoutSession) -> Effect:
    if session.payment_status != "paid":
        return Ignored(f"payment status is {session.payment_status!r}, not 'paid'", expected=True)
    metadata = session.metadata or {}
    user_id = _user_id(metadata.get("user_id") or session.client_reference_id)
    if user_id is None:
        return Ignored("no user id in metadata.user_id or client_reference_id")
    credits_text = metadata.get("credits", "")
    credits = int(credits_text) if _CREDITS.fullmatch(credits_text) else 0
    if not 0 < credits <= MAX_CREDITS:
        return Ignored(f"metadata.credits is not a whole number from 1 to {MAX_CREDITS}")
    # The price is a record of what was paid, kept only when complete.
    priced = session.amount_total is not None and _CURRENCY.fullmatch(session.currency or "")
    data = CreditsPurchased(
        amount=credits,
        payment_id=session.id,
        # Per checkout session, not per event: a session is fulfilled once, whichever of
        # its events (completed, async payment succeeded, a resend with a new id) pays it.
        idempotency_key=f"checkout:{session.id}",
        amount_paid_minor=session.amount_total if priced else None,
        currency=session.currency.upper() if priced and session.currency else None,
    )
    return CreditPurchase(user_id=user_id, data=data)


def _subscription_changed(subscription: _Subscription) -> Effect:
    if subscription.status not in _PLAN_GRANTING_STATUSES:
        return Ignored(
            f"subscription status {subscription.status!r} changes no plan", expected=True
        )
    metadata = subscription.metadata or {}
    plan = metadata.get("plan", "").upper()
    if plan not in {p.value for p in _PAID_PLANS}:
        return Ignored("metadata.plan is not CREATOR or PRO")
    user_id = _user_id(metadata.get("user_id"))
    if user_id is None:
        return Ignored("no user id in metadata.user_id")
    return PlanUpdate(user_id=user_id, plan=Plan(plan), subscription_id=subscription.id)


def _subscription_deleted(subscription: _Subscription) -> Effect:
    user_id = _user_id((subscription.metadata or {}).get("user_id"))
    if user_id is None:
        return Ignored("no user id in metadata.user_id")
    return PlanUpdate(user_id=user_id, plan=Plan.FREE, subscription_id=None)
