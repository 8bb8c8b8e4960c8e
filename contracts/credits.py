"""The credits ledger: every grant, purchase, reservation, settlement and release.

A user's balance is the sum of these events, so each carries an idempotency key that
its consumers deduplicate on. The user is the envelope's ``user_id`` (also the topic's
partition key) and is deliberately not repeated in the data: one field, one truth.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Final

from pydantic import Field, model_validator

from contracts.event import Event
from contracts.fields import Id, IdempotencyKey, Reason

__all__ = [
    "CREDIT_EVENT_TYPES",
    "CreditEvent",
    "CreditsGranted",
    "CreditsPurchased",
    "CreditsReleased",
    "CreditsReserved",
    "CreditsSettled",
]

PositiveCredits = Annotated[int, Field(gt=0)]
Credits = Annotated[int, Field(ge=0)]


class CreditEvent(Event):
    """Base of ledger events; the envelope subject is the user id."""

    idempotency_key: IdempotencyKey


class CreditsGranted(CreditEvent):
    """Credits given for free: sign-up bonus, plan allowance, support gesture."""

    TYPE: ClassVar[str] = "genstream.credits.granted"
    VERSION: ClassVar[int] = 1
    ADDED: ClassVar[frozenset[str]] = frozenset({"operator"})

    amount: PositiveCredits
    reason: Reason
    operator: Id | None = None
    """The admin who granted them by hand (``POST /v1/admin/users/{id}/credits``)."""


class CreditsPurchased(CreditEvent):
    """Credits bought through the payment provider."""

    TYPE: ClassVar[str] = "genstream.credits.purchased"
    VERSION: ClassVar[int] = 1

    amount: PositiveCredits
    payment_id: Id
    amount_paid_minor: Annotated[int, Field(ge=0)] | None = None
    """Price paid in the currency's minor unit (cents)."""
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] | None = None
    """ISO 4217 code."""

    @model_validator(mode="after")
    def _price_has_currency(self) -> CreditsPurchased:
        if (self.amount_paid_minor is None) != (self.currency is None):
            raise ValueError("amount_paid_minor and currency go together")
        return self


class CreditsReserved(CreditEvent):
    """Credits held for a job when it is accepted."""

    TYPE: ClassVar[str] = "genstream.credits.reserved"
    VERSION: ClassVar[int] = 1

    job_id: Id
    amount: Credits


class CreditsSettled(CreditEvent):
    """A completed job's reservation turned into a charge; the rest goes back."""

    TYPE: ClassVar[str] = "genstream.credits.settled"
    VERSION: ClassVar[int] = 1

    job_id: Id
    amount: Credits
    """Credits charged."""
    released: Credits
    """Credits of the reservation returned to the balance."""


class CreditsReleased(CreditEvent):
    """A reservation returned in full: the job failed, was cancelled or expired."""

    TYPE: ClassVar[str] = "genstream.credits.released"
    VERSION: ClassVar[int] = 1

    job_id: Id
    amount: Credits
    reason: Reason


CREDIT_EVENT_TYPES: Final[tuple[type[CreditEvent], ...]] = (
    CreditsGranted,
    CreditsPurchased,
    CreditsReserved,
    CreditsSettled,
    CreditsReleased,
)
