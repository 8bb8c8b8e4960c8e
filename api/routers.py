"""Every versioned router the API serves, in the order OpenAPI lists them."""

from __future__ import annotations

from fastapi import APIRouter

from api.accounts.routes import router as accounts_router
from api.credits.routes import router as credits_router
from api.payments.routes import router as payments_router

ROUTERS: tuple[APIRouter, ...] = (accounts_router, credits_router, payments_router)
