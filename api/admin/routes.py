"""For admins alone: ``GET /v1/admin/status``, the ``genstream status`` snapshot as JSON, and
``POST /v1/admin/jobs/{id}/rerun``, a failed job re-run as ``genstream deadletter rerun`` does."""

from __future__ import annotations

import asyncio
import functools
from typing import Annotated

from fastapi import APIRouter, Path, Request, Response
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncEngine

from api.auth.admin import AdminUser
from api.deps import SettingsDep
from api.jobs.events import ProducerDep, emit, requested_topic
from api.problems import Problem, not_found, problem_responses
from contracts.catalog import load_catalog
from genstream.job_requests import requested_envelope
from genstream.rerun import RERUN_SOURCE, claim_rerun, mark_emitted
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


class RerunPublic(BaseModel):
    job_id: str
    """The failed job."""
    rerun_job_id: str
    """The re-run: a new job of the same user and request, charged once."""
    created: bool
    """False when the job was re-run before: the same re-run is answered."""


@router.post(
    "/jobs/{job_id}/rerun",
    operation_id="admin_job_rerun",
    response_model=RerunPublic,
    status_code=201,
    responses={200: {"model": RerunPublic}, **problem_responses(401, 403, 404, 409, 503)},
)
async def admin_job_rerun(
    job_id: Annotated[str, Path(max_length=64)],
    request: Request,
    response: Response,
    _: AdminUser,
    settings: SettingsDep,
    producer: ProducerDep,
) -> RerunPublic:
    """Re-runs a failed job as a new job with its own id, keyed ``rerun:<job id>``: asked
    again, the same re-run is answered (200) and nothing more is made or charged."""
    engine: AsyncEngine = request.app.state.engine
    async with engine.begin() as connection:
        outcome, unsent = await connection.run_sync(claim_rerun, job_id)
    if outcome.how == "unknown":
        raise not_found("job")
    if outcome.how == "not_failed" or outcome.job_id is None:
        raise Problem(409, "only a failed job can be re-run", type_="job_not_failed")
    if unsent is not None:
        envelope = requested_envelope(unsent, source=RERUN_SOURCE)
        topic = requested_topic(settings.jobs)
        await emit(producer, topic, envelope, timeout_s=settings.jobs.send_timeout_s)
        async with engine.begin() as connection:
            await connection.run_sync(mark_emitted, unsent.id)
    if outcome.how != "created":
        response.status_code = 200
    return RerunPublic(job_id=job_id, rerun_job_id=outcome.job_id, created=outcome.how == "created")
