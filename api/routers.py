"""Every versioned router the API serves, in the order OpenAPI lists them."""

from __future__ import annotations

from fastapi import APIRouter

from api.accounts.routes import router as accounts_router
from api.admin.accounts import router as admin_accounts_router
from api.admin.routes import router as admin_router
from api.credits.routes import router as credits_router
from api.events.routes import router as events_router
from api.jobs.reads import router as job_reads_router
from api.jobs.routes import router as jobs_router
from api.payments.routes import router as payments_router
from api.uploads.routes import router as uploads_router
from api.webhooks.routes import router as webhooks_router

ROUTERS: tuple[APIRouter, ...] = (
    accounts_router,
    credits_router,
    payments_router,
    uploads_router,
    jobs_router,
    job_reads_router,
    events_router,
    webhooks_router,
    admin_router,
    admin_accounts_router,
)
