"""``GET /v1/admin/status``: the ``genstream status`` snapshot as JSON, for admins alone."""

from __future__ import annotations

import asyncio
import functools

from fastapi import APIRouter, Request
from sqlalchemy.ext.asyncio import AsyncEngine

from api.auth.admin import AdminUser
from api.deps import SettingsDep
from api.problems import problem_responses
from contracts.catalog import load_catalog
from genstream.system_status import (
    StatusScope,
    StatusSnapshot,
    probe_services,
    read_kafka,
    read_model_facts,
    snapshot,
)

router = APIRouter(prefix="/v1/admin", tags=["admin"])


def status_scope(request: Request) -> StatusScope:
    """The app's ``status_scope`` (tests set one over their own topics), else the stack's."""
    scope = getattr(request.app.state, "status_scope", None)
    return scope if isinstance(scope, StatusScope) else StatusScope()


@router.get(
    "/status",
    operation_id="admin_status",
    response_model=StatusSnapshot,
    responses=problem_responses(401, 403),
)
async def admin_status(request: Request, _: AdminUser, settings: SettingsDep) -> StatusSnapshot:
    scope = status_scope(request)
    engine: AsyncEngine = request.app.state.engine
    # The brokers' and the services' answers block; they are asked in threads, side by side
    # with the read model's queries.
    services = asyncio.to_thread(probe_services, scope.services, timeout_s=scope.probe_timeout_s)
    kafka = asyncio.to_thread(read_kafka, settings.kafka, scope)
    async with engine.connect() as connection:
        facts = await connection.run_sync(
            functools.partial(read_model_facts, failures_shown=scope.failures_shown)
        )
    probed, brokers = await asyncio.gather(services, kafka)
    return snapshot(
        scope=scope, services=probed, kafka=brokers, read_model=facts, catalog=load_catalog()
    )
