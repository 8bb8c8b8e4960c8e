"""Each user's signing secret: created on first use, rotated on request, read to sign.

The statements are built here once and run by either side: the API on its async session,
the dispatcher on a sync connection. Creation is ``INSERT … ON CONFLICT DO NOTHING`` and a
read after it, so two first uses at once agree on one secret.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Insert, Select, Update, select, update
from sqlalchemy.dialects.postgresql import insert

from api.webhooks.secret_box import SecretBox
from api.webhooks.signing import new_secret
from genstream.db.webhooks import WebhookSecret

__all__ = [
    "SigningSecrets",
    "create_statement",
    "read_statement",
    "rotate_statement",
    "signing_secrets",
]


@dataclass(frozen=True, slots=True)
class SigningSecrets:
    current: str
    previous: str | None
    """Still signing until ``previous_until`` after a rotation."""
    previous_until: datetime | None
    created_at: datetime
    rotated_at: datetime | None

    def valid(self, now: datetime) -> list[str]:
        """The secrets to sign with at ``now``: the current one first."""
        if self.previous is None or self.previous_until is None or self.previous_until <= now:
            return [self.current]
        return [self.current, self.previous]


def read_statement(user_id: uuid.UUID) -> Select[WebhookSecret]:
    # Fresh from the database even when the session already holds the row (after a rotation).
    return (
        select(WebhookSecret)
        .where(WebhookSecret.user_id == user_id)
        .execution_options(populate_existing=True)
    )


def create_statement(box: SecretBox, user_id: uuid.UUID) -> Insert:
    """Stores a fresh secret unless the user has one already."""
    sealed = box.seal(new_secret(), user_id=str(user_id))
    return (
        insert(WebhookSecret)
        .values(user_id=user_id, secret=sealed)
        .on_conflict_do_nothing(index_elements=[WebhookSecret.user_id])
    )


def rotate_statement(
    box: SecretBox, user_id: uuid.UUID, *, now: datetime, grace: timedelta
) -> Update:
    """Replaces the secret; the old one keeps signing for ``grace`` so receivers can switch."""
    sealed = box.seal(new_secret(), user_id=str(user_id))
    return (
        update(WebhookSecret)
        .where(WebhookSecret.user_id == user_id)
        .values(
            previous_secret=WebhookSecret.secret,
            previous_until=now + grace,
            secret=sealed,
            rotated_at=now,
        )
    )


def signing_secrets(box: SecretBox, row: WebhookSecret) -> SigningSecrets:
    user_id = str(row.user_id)
    return SigningSecrets(
        current=box.open(row.secret, user_id=user_id),
        previous=box.open(row.previous_secret, user_id=user_id) if row.previous_secret else None,
        previous_until=row.previous_until,
        created_at=row.created_at,
        rotated_at=row.rotated_at,
    )
