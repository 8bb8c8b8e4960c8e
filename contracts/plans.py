"""Subscription plan changes.

``users.plans`` is compacted by user id, so the latest ``PlanChanged`` of each user is
the current plan; the user is the envelope's ``user_id``.
"""

from __future__ import annotations

from typing import ClassVar, Final

from contracts.enums import Plan
from contracts.event import Event
from contracts.fields import Id, IdempotencyKey, Reason, UtcDatetime

__all__ = ["PLAN_EVENT_TYPES", "Plan", "PlanChanged"]


class PlanChanged(Event):
    """A user's plan is ``plan`` from ``effective_at`` on."""

    TYPE: ClassVar[str] = "genstream.plan.changed"
    VERSION: ClassVar[int] = 1
    ADDED: ClassVar[frozenset[str]] = frozenset({"operator", "reason"})

    plan: Plan
    previous_plan: Plan | None = None
    """``None`` for a user's first plan."""
    effective_at: UtcDatetime
    subscription_id: Id | None = None
    """The payment provider's subscription, absent for the free plan."""
    idempotency_key: IdempotencyKey
    operator: Id | None = None
    """The admin who set the plan by hand (``PUT /v1/admin/users/{id}/plan``); absent for
    changes the payment provider reported."""
    reason: Reason | None = None


PLAN_EVENT_TYPES: Final[tuple[type[Event], ...]] = (PlanChanged,)
