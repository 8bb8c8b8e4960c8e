"""``GET /v1/credits``: balance, reservations and the ledger; ``GET /v1/plans``: the catalog."""

from __future__ import annotations

from datetime import datetime
from functools import cache
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel
from sqlalchemy import select

from api.auth.principal import CurrentUser
from api.deps import SessionDep
from api.pagination import decode_cursor, encode_cursor
from api.problems import problem_responses
from contracts import Catalog, JobType, Plan, PlanLimits, Price, load_catalog
from genstream.db.models import CreditBalance, CreditLedgerEntry

router = APIRouter(prefix="/v1", tags=["credits"])


class LedgerEntryPublic(BaseModel):
    id: str
    """The ledger event's id."""
    kind: str
    amount: int
    """Change of the available balance."""
    reserved_change: int
    job_id: str | None
    detail: str | None
    occurred_at: datetime


class CreditsPublic(BaseModel):
    balance: int
    """Credits available to spend."""
    reserved: int
    """Credits held for jobs that have not finished."""
    ledger: list[LedgerEntryPublic]
    """Newest first."""
    next_cursor: str | None


class CatalogPublic(BaseModel):
    plans: dict[Plan, PlanLimits]
    prices: dict[JobType, Price]


@cache
def _catalog() -> Catalog:
    return load_catalog()


@router.get("/credits", operation_id="credits_get", responses=problem_responses(400, 401, 422))
async def get_credits(
    user: CurrentUser,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
) -> CreditsPublic:
    user_id = str(user.id)
    balance = await session.get(CreditBalance, user_id)
    query = select(CreditLedgerEntry).where(CreditLedgerEntry.user_id == user_id)
    if cursor is not None:
        query = query.where(CreditLedgerEntry.seq < decode_cursor(cursor))
    rows = (
        await session.scalars(query.order_by(CreditLedgerEntry.seq.desc()).limit(limit + 1))
    ).all()
    page = rows[:limit]
    return CreditsPublic(
        balance=balance.balance if balance else 0,
        reserved=balance.reserved if balance else 0,
        ledger=[
            LedgerEntryPublic(
                id=row.event_id,
                kind=row.kind,
                amount=row.amount,
                reserved_change=row.reserved_change,
                job_id=row.job_id,
                detail=row.detail,
                occurred_at=row.occurred_at,
            )
            for row in page
        ],
        next_cursor=encode_cursor(page[-1].seq) if len(rows) > limit else None,
    )


@router.get("/plans", operation_id="plans_list")
async def list_plans() -> CatalogPublic:
    catalog = _catalog()
    return CatalogPublic(plans=catalog.plans, prices=catalog.prices)
