"""Operators' changes to accounts: find a user, set their plan, grant them credits.

Each change is an event, as a payment's would be, staged in the transaction that makes it
(the outbox publishes it after the commit), and names the admin who made it and why: a plan
change on ``users.plans``, a grant on ``credits.ledger``. The processors apply both as they
apply the payment provider's, so plans are tried out and support gestures made without
faking a payment.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Final

from fastapi import APIRouter, Header, Query, status
from pydantic import BaseModel, ConfigDict, EmailStr, Field
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from api.auth.admin import AdminUser
from api.auth.key_revocations import announce_user_changed
from api.auth.principal import ApiKeyCacheDep
from api.deps import SessionDep
from api.problems import Problem, problem_responses
from contracts import CREDITS_LEDGER, USERS_PLANS, CreditsGranted, Envelope, Plan, PlanChanged
from genstream.db.models import User
from producers.outbox import stage

__all__ = ["router"]

SOURCE: Final = "genstream/api"
MAX_GRANT: Final = 1_000_000
"""The most credits one grant gives: a typo's reach."""

router = APIRouter(prefix="/v1/admin/users", tags=["admin"])

_Reason = Annotated[str, Field(min_length=1, max_length=300)]
_GrantKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=200,
        pattern=r"^[!-~]+$",
        description="The same key grants once, however often the request is sent.",
    ),
]


class UserSummary(BaseModel):
    id: uuid.UUID
    email: str
    plan: Plan
    role: str
    created_at: datetime


class PlanSet(BaseModel):
    model_config = ConfigDict(extra="forbid")

    plan: Plan
    reason: _Reason


class PlanAnswer(BaseModel):
    user_id: uuid.UUID
    plan: Plan
    previous_plan: Plan | None
    changed: bool
    """False when the user already had the plan: nothing was written."""


class GrantRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: Annotated[int, Field(gt=0, le=MAX_GRANT, strict=True)]
    reason: _Reason


class GrantAnswer(BaseModel):
    user_id: uuid.UUID
    amount: int
    idempotency_key: str
    """The ledger's key of the grant: ``operator:`` and the request's key or a new one."""


def _summary(user: User) -> UserSummary:
    return UserSummary(
        id=user.id,
        email=user.email,
        plan=Plan(user.plan),
        role=user.role,
        created_at=user.created_at,
    )


async def _user(db: SessionDep, user_id: uuid.UUID, *, for_update: bool = False) -> User:
    query = select(User).where(User.id == user_id)
    if for_update:
        query = query.with_for_update()
    user: User | None = (await db.scalars(query)).one_or_none()
    if user is None:
        raise Problem(404, f"no user {user_id}")
    return user


@router.get(
    "",
    operation_id="admin_find_user",
    response_model=UserSummary,
    summary="The user with an email address",
    responses=problem_responses(400, 401, 403, 404, 413, 422),
)
async def find_user(
    db: SessionDep, _: AdminUser, email: Annotated[EmailStr, Query(max_length=320)]
) -> UserSummary:
    user = (
        await db.scalars(select(User).where(func.lower(User.email) == email.lower()))
    ).one_or_none()
    if user is None:
        raise Problem(404, "no user has this email")
    return _summary(user)


@router.put(
    "/{user_id}/plan",
    operation_id="admin_set_plan",
    response_model=PlanAnswer,
    summary="Set a user's plan (announced on users.plans, naming the admin)",
    responses=problem_responses(400, 401, 403, 404, 413, 422),
)
async def set_plan(
    user_id: uuid.UUID, body: PlanSet, db: SessionDep, admin: AdminUser, cache: ApiKeyCacheDep
) -> PlanAnswer:
    # Locked, so that concurrent changes (and the payment provider's) see each other.
    user = await _user(db, user_id, for_update=True)
    previous = Plan(user.plan)
    if previous == body.plan:
        await db.rollback()
        return PlanAnswer(user_id=user_id, plan=body.plan, previous_plan=previous, changed=False)
    change = PlanChanged(
        plan=body.plan,
        previous_plan=previous,
        effective_at=datetime.now(UTC),
        idempotency_key=f"operator:{uuid.uuid4()}",
        operator=str(admin.id),
        reason=body.reason,
    )
    user.plan = body.plan.value
    await announce_user_changed(db, user.id)
    stage(db, USERS_PLANS, Envelope.wrap(change, user_id=str(user.id), source=SOURCE))
    await db.commit()
    # Cached API keys carry the old plan: the other processes hear of it at commit.
    cache.forget_user(user_id)
    return PlanAnswer(user_id=user_id, plan=body.plan, previous_plan=previous, changed=True)


@router.post(
    "/{user_id}/credits",
    operation_id="admin_grant_credits",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=GrantAnswer,
    summary="Grant a user credits (a ledger grant naming the admin and the reason)",
    responses=problem_responses(400, 401, 403, 404, 413, 422),
)
async def grant_credits(
    user_id: uuid.UUID,
    body: GrantRequest,
    db: SessionDep,
    admin: AdminUser,
    idempotency_key: _GrantKey = None,
) -> GrantAnswer:
    """Accepted once staged: the balance shows it when the processors and the read model
    have counted it. The same ``Idempotency-Key`` grants once."""
    key = f"operator:{idempotency_key or uuid.uuid4()}"
    user = await _user(db, user_id)
    grant = CreditsGranted(
        amount=body.amount,
        reason=f"operator: {body.reason}",
        idempotency_key=key,
        operator=str(admin.id),
    )
    # The event's id comes from the key, and the outbox holds an event id once: a request
    # sent again stages nothing (and every reader would keep one copy by id or key anyway).
    event_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"genstream:grant:{user.id}:{key}"))
    envelope = Envelope.wrap(grant, user_id=str(user.id), source=SOURCE, event_id=event_id)
    stage(db, CREDITS_LEDGER, envelope)
    try:
        await db.commit()
    except IntegrityError:
        await db.rollback()  # granted already, by the same key
    return GrantAnswer(user_id=user_id, amount=body.amount, idempotency_key=key)
