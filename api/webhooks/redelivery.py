"""Sending a job's last webhook delivery again, on its owner's request.

The delivery is made due now with the same event id (``webhook-id``: a receiver that kept it
knows it is the same message) and, where the body carries download URLs, newly signed ones:
the first ones may have expired since. Its attempts so far stay in its log; a delivery that
had given up gets one more attempt, one still retrying goes now.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from api.problems import Problem
from api.webhooks.links import SignedLinks, Signer
from genstream.db.webhooks import WebhookDelivery

__all__ = ["redeliver_last", "resigned"]


def resigned(payload: str, sign: Signer, *, user_id: str, job_id: str) -> str:
    """``payload`` with the download URLs of its outputs and preview signed again."""
    body: dict[str, Any] = json.loads(payload)
    data = body.get("data", {})
    files = [*data.get("outputs", []), *([data["preview"]] if data.get("preview") else [])]
    keys = [file["key"] for file in files if isinstance(file, dict) and "key" in file]
    if not keys:
        return payload
    signed: SignedLinks = sign(user_id, job_id, keys)
    for file in files:
        if file.get("key") in signed.urls:
            file["url"] = signed.urls[file["key"]]
    if signed.expires_at is not None:
        data["urls_expire_at"] = (
            signed.expires_at.astimezone(UTC).isoformat().replace("+00:00", "Z")
        )
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


async def redeliver_last(
    session: AsyncSession, *, user_id: uuid.UUID, job_id: str, sign: Signer | None
) -> WebhookDelivery:
    """Makes the job's latest delivery due now; 409 when it has none or one is being sent."""
    last = await session.scalar(
        select(WebhookDelivery)
        .where(WebhookDelivery.job_id == job_id, WebhookDelivery.user_id == user_id)
        .order_by(WebhookDelivery.id.desc())
        .limit(1)
        .with_for_update()
    )
    if last is None:
        raise Problem(409, "the job has sent no webhook yet", type_="no_webhook_delivery")
    now = datetime.now(UTC)
    if last.claim is not None and last.next_attempt_at is not None and last.next_attempt_at > now:
        raise Problem(
            409,
            "the delivery is being sent right now",
            type_="webhook_delivery_in_flight",
            headers={"Retry-After": "5"},
        )
    if sign is not None:
        last.payload = resigned(last.payload, sign, user_id=str(user_id), job_id=job_id)
    last.status = "pending"
    last.claim = None
    last.next_attempt_at = now
    last.updated_at = now
    await session.commit()
    return last
