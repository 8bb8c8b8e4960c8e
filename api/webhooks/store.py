"""The dispatcher's PostgreSQL work: record deliveries, claim due ones, record attempts.

Recording is keyed by (event id, URL), and by (job, URL), with ``ON CONFLICT DO NOTHING``:
an event read twice (a redelivered batch, a duplicate written after a crash) records
nothing new, so it is never sent twice. Claiming takes due rows with ``SKIP LOCKED`` and
pushes them a lease ahead under a claim token; a dispatcher that dies holding them only
delays them by the lease, and an attempt is recorded only by the claim's holder.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast
from urllib.parse import urlsplit

from sqlalchemy import CursorResult, Engine, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import sessionmaker

from api.webhooks.secret_box import SecretBox
from api.webhooks.secret_store import (
    SigningSecrets,
    create_statement,
    read_statement,
    signing_secrets,
)
from api.webhooks.sender import Attempt
from api.webhooks.subscriptions import DEFAULT_EVENTS, WebhookEvent
from genstream.db.models import Job
from genstream.db.webhooks import WebhookAttempt, WebhookDelivery

__all__ = ["Claimed", "DeliveryStore", "NewDelivery", "Target", "host_of"]


@dataclass(frozen=True, slots=True)
class Target:
    """Where a job's webhooks go, whose job it is, and what its owner subscribed to."""

    user_id: uuid.UUID
    url: str
    events: frozenset[WebhookEvent] = frozenset(DEFAULT_EVENTS)


@dataclass(frozen=True, slots=True)
class NewDelivery:
    event_id: str
    event_type: str
    job_id: str
    user_id: uuid.UUID
    url: str
    payload: str


@dataclass(frozen=True, slots=True)
class Claimed:
    id: int
    event_id: str
    job_id: str
    user_id: uuid.UUID
    url: str
    payload: str
    attempts: int
    """Attempts recorded before this one."""
    claim: uuid.UUID


def _events(stored: list[str] | None) -> frozenset[WebhookEvent]:
    if not stored:
        return frozenset(DEFAULT_EVENTS)
    known = {event.value for event in WebhookEvent}
    return frozenset(WebhookEvent(name) for name in stored if name in known)


def host_of(url: str) -> str:
    return (urlsplit(url).hostname or "").lower()


class DeliveryStore:
    def __init__(self, *, engine: Engine, box: SecretBox) -> None:
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._box = box

    # -- intake ---------------------------------------------------------------------------------
    def targets(self, job_ids: Iterable[str]) -> dict[str, Target]:
        """The webhook target of each of ``job_ids`` that has one."""
        wanted = sorted(set(job_ids))
        if not wanted:
            return {}
        query = select(Job.id, Job.user_id, Job.webhook_url, Job.webhook_events).where(
            Job.id.in_(wanted), Job.webhook_url.is_not(None)
        )
        with self._sessions() as session:
            rows = session.execute(query).all()
        return {
            job_id: Target(user_id=user_id, url=url, events=_events(events))
            for job_id, user_id, url, events in rows
            if url
        }

    def job_trace(self, job_id: str) -> str | None:
        """The ``traceparent`` the job's events started from, for the delivery's span."""
        with self._sessions() as session:
            found: str | None = session.scalar(select(Job.event_trace).where(Job.id == job_id))
        return found

    def record(self, deliveries: Sequence[NewDelivery]) -> int:
        """Stores what is not stored yet; returns how many rows are new."""
        if not deliveries:
            return 0
        rows = [
            {
                "event_id": d.event_id,
                "event_type": d.event_type,
                "job_id": d.job_id,
                "user_id": d.user_id,
                "url": d.url,
                "payload": d.payload,
            }
            for d in deliveries
        ]
        statement = insert(WebhookDelivery).values(rows).on_conflict_do_nothing()
        with self._sessions.begin() as session:
            result = cast(CursorResult[Any], session.execute(statement))
            return result.rowcount

    # -- delivery -------------------------------------------------------------------------------
    def claim(
        self, *, limit: int, busy_hosts: Mapping[str, int], per_host: int, lease_s: float
    ) -> list[Claimed]:
        """Up to ``limit`` due deliveries, earliest first, at most ``per_host`` in flight per
        host counting ``busy_hosts``; each is held for ``lease_s``."""
        if limit <= 0:
            return []
        token = uuid.uuid4()
        due = (
            select(
                WebhookDelivery.id,
                WebhookDelivery.event_id,
                WebhookDelivery.job_id,
                WebhookDelivery.user_id,
                WebhookDelivery.url,
                WebhookDelivery.payload,
                WebhookDelivery.attempts,
            )
            .where(
                WebhookDelivery.status == "pending", WebhookDelivery.next_attempt_at <= func.now()
            )
            .order_by(WebhookDelivery.next_attempt_at)
            # More than needed, so that a busy host's backlog does not hide the others'.
            .limit(limit * 4)
            .with_for_update(skip_locked=True)
        )
        with self._sessions.begin() as session:
            chosen: list[Claimed] = []
            load = dict(busy_hosts)
            for row in session.execute(due):
                host = host_of(row.url)
                if load.get(host, 0) >= per_host:
                    continue
                load[host] = load.get(host, 0) + 1
                chosen.append(
                    Claimed(
                        id=row.id,
                        event_id=row.event_id,
                        job_id=row.job_id,
                        user_id=row.user_id,
                        url=row.url,
                        payload=row.payload,
                        attempts=row.attempts,
                        claim=token,
                    )
                )
                if len(chosen) == limit:
                    break
            if chosen:
                session.execute(
                    update(WebhookDelivery)
                    .where(WebhookDelivery.id.in_([c.id for c in chosen]))
                    .values(
                        next_attempt_at=func.now() + timedelta(seconds=lease_s),
                        claim=token,
                    )
                )
        return chosen

    def signing_secrets(self, user_id: uuid.UUID) -> SigningSecrets:
        """The user's secrets, a new one made on first use."""
        with self._sessions.begin() as session:
            row = session.scalars(read_statement(user_id)).one_or_none()
            if row is None:
                session.execute(create_statement(self._box, user_id))
                row = session.scalars(read_statement(user_id)).one()
            return signing_secrets(self._box, row)

    def finish(
        self, claimed: Claimed, attempt: Attempt, *, status: str, retry_in_s: float | None
    ) -> bool:
        """Records ``attempt`` and the delivery's new ``status`` (``pending`` with
        ``retry_in_s`` to try again). False when the claim was lost to another dispatcher."""
        values: dict[str, object] = {
            "attempts": WebhookDelivery.attempts + 1,
            "status": status,
            "claim": None,
            "last_status_code": attempt.status_code,
            "last_error": attempt.error,
            "last_attempt_at": attempt.started_at,
            "updated_at": func.now(),
            "next_attempt_at": (
                func.now() + timedelta(seconds=retry_in_s) if retry_in_s is not None else None
            ),
        }
        if status == "delivered":
            values["delivered_at"] = func.now()
        with self._sessions.begin() as session:
            number = session.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.id == claimed.id, WebhookDelivery.claim == claimed.claim)
                .values(values)
                .returning(WebhookDelivery.attempts)
            ).scalar_one_or_none()
            if number is None:
                return False
            session.execute(
                insert(WebhookAttempt).values(
                    delivery_id=claimed.id,
                    attempt=number,
                    started_at=attempt.started_at,
                    duration_ms=attempt.duration_ms,
                    status_code=attempt.status_code,
                    error=attempt.error,
                )
            )
        return True
