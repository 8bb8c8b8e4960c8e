"""``POST /v1/webhooks/payments``: the payment provider's events, applied once each.

The event id is recorded in the same transaction as the event's effects (a plan change, and
the events staged for Kafka), so a redelivery finds it and changes nothing, and a failure
leaves nothing half done for the provider's retry to trip over. A checkout session is
fulfilled once whatever the events that report it paid: its id is recorded the same way.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Final

from fastapi import APIRouter, Header, Request
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from api.auth.key_revocations import announce_user_changed
from api.auth.principal import ApiKeyCacheDep
from api.deps import SessionDep, SettingsDep
from api.payments.events import (
    CreditPurchase,
    Effect,
    Ignored,
    PayloadError,
    PlanUpdate,
    ProviderEvent,
    effect_of,
    parse_event,
    plan_changed,
)
from api.payments.signature import SignatureError, verify_signature
from api.problems import Problem, problem_responses
from contracts import CREDITS_LEDGER, USERS_PLANS, Envelope, Plan
from genstream.db.models import PaymentEvent, User
from producers.outbox import stage

SOURCE: Final = "genstream/api"
_FULFILLED: Final = "fulfilled:"
"""Prefix of the recorded ids of fulfilled checkout sessions, beside the event ids."""

_log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])


def _event_body() -> dict[str, Any]:
    """The request body as the document declares it: the fields read of a provider event.

    The route reads the raw bytes itself (the signature covers them exactly), so FastAPI
    never sees a body parameter; the schema is that of ``ProviderEvent``, inlined.
    """
    schema = ProviderEvent.model_json_schema()
    defs = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                return inline(defs[ref.removeprefix("#/$defs/")])
            return {key: inline(value) for key, value in node.items()}
        if isinstance(node, list):
            return [inline(item) for item in node]
        return node

    schema = inline(schema)
    schema["title"] = "PaymentProviderEvent"
    schema["properties"]["data"]["title"] = "PaymentProviderEventData"
    schema["description"] = (
        "A Stripe-compatible event, signed in the ``Stripe-Signature`` header; fields other "
        "than these are accepted and ignored."
    )
    return {"required": True, "content": {"application/json": {"schema": schema}}}


class WebhookReceipt(BaseModel):
    received: bool = True
    duplicate: bool = False
    """True when this event was handled before; nothing was done again."""
    ignored: str | None = None
    """Why the event changed nothing, when it did not."""


@router.post(
    "/payments",
    operation_id="payments_webhook",
    response_model_exclude_none=True,
    summary="Receive a payment provider event (Stripe-compatible signature)",
    openapi_extra={"requestBody": _event_body()},
    responses=problem_responses(
        413,
        422,
        described={
            400: "Unsigned, badly signed, stale or malformed event",
            503: "No webhook secret is configured",
        },
    ),
)
async def payments_webhook(
    request: Request,
    db: SessionDep,
    settings: SettingsDep,
    cache: ApiKeyCacheDep,
    stripe_signature: Annotated[str | None, Header()] = None,
) -> WebhookReceipt:
    secret = settings.payments.webhook_secret.get_secret_value()
    if not secret:
        raise Problem(503, "payment webhooks are not configured")
    payload = await request.body()
    try:
        verify_signature(
            payload, stripe_signature, secret, tolerance_s=settings.payments.tolerance_s
        )
        event = parse_event(payload)
        effect = effect_of(event)
    except (SignatureError, PayloadError) as error:
        raise Problem(400, str(error)) from None

    async with db.begin():
        if not await _first_delivery(db, event):
            return WebhookReceipt(duplicate=True)
        ignored = await _apply(db, effect, event.id)
    if ignored is None and isinstance(effect, PlanUpdate):
        # Cached API keys carry the old plan: the other processes hear of it at commit.
        cache.forget_user(effect.user_id)
    if ignored is not None:
        level = logging.INFO if ignored.expected else logging.WARNING
        extra = {"payment_event": event.id, "event_type": event.type, "reason": ignored.reason}
        _log.log(level, "payment event ignored", extra=extra)
        return WebhookReceipt(ignored=ignored.reason)
    return WebhookReceipt()


async def _first_delivery(db: AsyncSession, event: ProviderEvent) -> bool:
    """Records the event as handled; False when it already was."""
    recorded = await db.execute(
        insert(PaymentEvent)
        .values(id=event.id, type=event.type)
        .on_conflict_do_nothing(index_elements=[PaymentEvent.id])
        .returning(PaymentEvent.id)
    )
    return recorded.first() is not None


async def _first_fulfilment(db: AsyncSession, session_id: str) -> bool:
    """Records the checkout session as fulfilled; False when it already was."""
    recorded = await db.execute(
        insert(PaymentEvent)
        .values(id=f"{_FULFILLED}{session_id}", type="checkout.session.fulfilled")
        .on_conflict_do_nothing(index_elements=[PaymentEvent.id])
        .returning(PaymentEvent.id)
    )
    return recorded.first() is not None


async def _apply(db: AsyncSession, effect: Effect, event_id: str) -> Ignored | None:
    """Adds ``effect`` to the transaction; returns why not when it does nothing."""
    if isinstance(effect, Ignored):
        return effect
    if isinstance(effect, CreditPurchase):
        if await _user(db, effect.user_id) is None:
            return Ignored(f"unknown user {effect.user_id}")
        if not await _first_fulfilment(db, effect.data.payment_id):
            return Ignored(f"checkout session {effect.data.payment_id} is already fulfilled")
        envelope = Envelope.wrap(effect.data, user_id=str(effect.user_id), source=SOURCE)
        stage(db, CREDITS_LEDGER, envelope)
        return None
    return await _change_plan(db, effect, event_id)


async def _change_plan(db: AsyncSession, update: PlanUpdate, event_id: str) -> Ignored | None:
    # Locked, so that concurrent changes of one user's plan each see the one before.
    user = await _user(db, update.user_id, for_update=True)
    if user is None:
        return Ignored(f"unknown user {update.user_id}")
    previous = Plan(user.plan) if user.plan in {plan.value for plan in Plan} else None
    change = plan_changed(update, previous=previous, event_id=event_id, now=datetime.now(UTC))
    if change is None:
        return Ignored(f"the user's plan is already {update.plan.value}", expected=True)
    user.plan = change.plan.value
    await announce_user_changed(db, user.id)
    stage(db, USERS_PLANS, Envelope.wrap(change, user_id=str(user.id), source=SOURCE))
    return None


async def _user(db: AsyncSession, user_id: uuid.UUID, *, for_update: bool = False) -> User | None:
    query = select(User).where(User.id == user_id)
    if for_update:
        query = query.with_for_update()
    user: User | None = (await db.scalars(query)).one_or_none()
    return user
