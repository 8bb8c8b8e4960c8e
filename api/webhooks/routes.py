"""``/v1/webhooks/secret``: the caller's signing secret; ``/v1/jobs/{id}/webhooks``: the log."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, Response
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from api.auth.principal import CurrentUser
from api.deps import SessionDep, SettingsDep
from api.jobs.reads import JobId, own_job
from api.problems import Problem, problem_responses
from api.settings import ApiSettings
from api.webhooks.links import s3_signer
from api.webhooks.redaction import redacted_url
from api.webhooks.redelivery import redeliver_last
from api.webhooks.secret_box import SecretBox
from api.webhooks.secret_store import (
    SigningSecrets,
    create_statement,
    read_statement,
    rotate_statement,
    signing_secrets,
)
from genstream.db.webhooks import WebhookAttempt, WebhookDelivery

router = APIRouter(prefix="/v1", tags=["webhooks"])


class WebhookSecretPublic(BaseModel):
    secret: str
    """``whsec_…``: the key that ``webhook-signature`` is computed with (Standard Webhooks)."""
    created_at: datetime
    rotated_at: datetime | None
    previous_valid_until: datetime | None
    """Until then requests are signed with the previous secret too, so a receiver can switch."""


class WebhookAttemptPublic(BaseModel):
    attempt: int
    started_at: datetime
    duration_ms: int
    status_code: int | None
    """The endpoint's answer; ``None`` when none came (network error, timeout, refused)."""
    error: str | None


class WebhookDeliveryPublic(BaseModel):
    id: str
    event_id: str
    """Sent as ``webhook-id``; the same on every attempt."""
    type: str
    url: str
    """``scheme://host[:port]/path``; a query string shows as ``?[redacted]``."""
    status: str
    """``pending`` (will be tried, again), ``delivered`` or ``failed`` (given up)."""
    attempts: int
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    last_attempt_at: datetime | None
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    log: list[WebhookAttemptPublic]
    """Every attempt, first to last."""


class JobWebhooksPublic(BaseModel):
    job_id: str
    deliveries: list[WebhookDeliveryPublic]


def _box(settings: ApiSettings) -> SecretBox:
    key = settings.webhooks.encryption_key.get_secret_value()
    if not key:
        raise Problem(503, "webhook signing is not configured on this server")
    return SecretBox.from_text(key)


async def _secrets(session: AsyncSession, box: SecretBox, user_id: uuid.UUID) -> SigningSecrets:
    row = await session.scalar(read_statement(user_id))
    if row is None:
        await session.execute(create_statement(box, user_id))
        await session.commit()
        row = await session.scalar(read_statement(user_id))
        assert row is not None
    return signing_secrets(box, row)


def _public(secrets: SigningSecrets, response: Response) -> WebhookSecretPublic:
    response.headers["Cache-Control"] = "no-store"
    return WebhookSecretPublic(
        secret=secrets.current,
        created_at=secrets.created_at,
        rotated_at=secrets.rotated_at,
        previous_valid_until=secrets.previous_until if secrets.previous else None,
    )


@router.get(
    "/webhooks/secret",
    operation_id="webhooks_secret_get",
    summary="The caller's webhook signing secret, made on first use",
    responses=problem_responses(401, 503),
)
async def get_webhook_secret(
    user: CurrentUser, session: SessionDep, settings: SettingsDep, response: Response
) -> WebhookSecretPublic:
    return _public(await _secrets(session, _box(settings), user.id), response)


@router.post(
    "/webhooks/secret/rotate",
    operation_id="webhooks_secret_rotate",
    summary="Replace the signing secret; the old one keeps signing for a grace period",
    responses=problem_responses(401, 503),
)
async def rotate_webhook_secret(
    user: CurrentUser, session: SessionDep, settings: SettingsDep, response: Response
) -> WebhookSecretPublic:
    box = _box(settings)
    await _secrets(session, box, user.id)
    grace = timedelta(seconds=settings.webhooks.rotation_grace_s)
    await session.execute(rotate_statement(box, user.id, now=datetime.now(UTC), grace=grace))
    await session.commit()
    return _public(await _secrets(session, box, user.id), response)


@router.get(
    "/jobs/{job_id}/webhooks",
    operation_id="jobs_webhooks_list",
    summary="The webhook deliveries of a job of the caller's, with every attempt",
    responses=problem_responses(401, 404, 422),
)
async def list_job_webhooks(
    job_id: JobId, user: CurrentUser, session: SessionDep
) -> JobWebhooksPublic:
    await own_job(session, user.id, job_id)
    deliveries = (
        await session.scalars(
            select(WebhookDelivery)
            .where(WebhookDelivery.job_id == job_id, WebhookDelivery.user_id == user.id)
            .order_by(WebhookDelivery.id)
        )
    ).all()
    attempts: dict[int, list[WebhookAttemptPublic]] = {d.id: [] for d in deliveries}
    if deliveries:
        rows = await session.scalars(
            select(WebhookAttempt)
            .where(WebhookAttempt.delivery_id.in_(list(attempts)))
            .order_by(WebhookAttempt.delivery_id, WebhookAttempt.attempt)
        )
        for row in rows:
            attempts[row.delivery_id].append(_attempt_public(row))
    return JobWebhooksPublic(
        job_id=job_id, deliveries=[_delivery_public(d, attempts[d.id]) for d in deliveries]
    )


def _attempt_public(row: WebhookAttempt) -> WebhookAttemptPublic:
    return WebhookAttemptPublic(
        attempt=row.attempt,
        started_at=row.started_at,
        duration_ms=row.duration_ms,
        status_code=row.status_code,
        error=row.error,
    )


def _delivery_public(d: WebhookDelivery, log: list[WebhookAttemptPublic]) -> WebhookDeliveryPublic:
    return WebhookDeliveryPublic(
        id=str(d.id),
        event_id=d.event_id,
        type=d.event_type,
        url=redacted_url(d.url),
        status=d.status,
        attempts=d.attempts,
        last_status_code=d.last_status_code,
        last_error=d.last_error,
        created_at=d.created_at,
        last_attempt_at=d.last_attempt_at,
        next_attempt_at=d.next_attempt_at if d.status == "pending" else None,
        delivered_at=d.delivered_at,
        log=log,
    )


@router.post(
    "/jobs/{job_id}/webhooks/redeliver",
    operation_id="jobs_webhooks_redeliver",
    status_code=202,
    summary="Send the job's last webhook delivery again, now, with fresh download URLs",
    responses=problem_responses(401, 404, 409, 422),
)
async def redeliver_job_webhook(
    job_id: JobId, user: CurrentUser, session: SessionDep, settings: SettingsDep
) -> WebhookDeliveryPublic:
    await own_job(session, user.id, job_id)
    sign = None
    if settings.s3.access_key.get_secret_value():
        sign = s3_signer(settings.s3, ttl_s=settings.webhooks.download_url_ttl_s)
    delivery = await redeliver_last(session, user_id=user.id, job_id=job_id, sign=sign)
    rows = await session.scalars(
        select(WebhookAttempt)
        .where(WebhookAttempt.delivery_id == delivery.id)
        .order_by(WebhookAttempt.attempt)
    )
    return _delivery_public(delivery, [_attempt_public(row) for row in rows])
