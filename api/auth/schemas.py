"""Request and response bodies of the auth and account routes; none of them carries a hash."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, EmailStr, Field, StringConstraints

from api.auth.passwords import MAX_LENGTH as PASSWORD_MAX_LENGTH
from contracts import Plan
from genstream.db.models import ApiKey, User

Email = Annotated[EmailStr, AfterValidator(str.lower)]
"""Validated, then lower-cased whole, so that one mailbox is one account."""


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RegisterRequest(_Request):
    email: Email
    password: Annotated[str, Field(min_length=1, max_length=PASSWORD_MAX_LENGTH)]
    """The minimum length is a setting, checked by the route."""


class RefreshRequest(_Request):
    refresh_token: Annotated[str, Field(min_length=1, max_length=256)]


class OidcRequest(_Request):
    id_token: Annotated[str, Field(min_length=1, max_length=16 * 1024)]


class ApiKeyCreate(_Request):
    name: Annotated[
        str,
        StringConstraints(
            strip_whitespace=True, min_length=1, max_length=100, pattern=r"^[^\x00]*$"
        ),
    ]
    """Free text, without NUL: PostgreSQL cannot store it."""
    daily_credit_cap: Annotated[int, Field(ge=1, le=1_000_000_000)] | None = None
    """Credits the jobs this key submits may cost per UTC day; past it, submissions with
    the key answer 429 ``spend_cap``. Absent: no cap but the balance."""


class UserPublic(BaseModel):
    id: uuid.UUID
    email: str
    plan: Plan

    @classmethod
    def of(cls, user: User) -> UserPublic:
        return cls(id=user.id, email=user.email, plan=Plan(user.plan))


class SignUpReceived(BaseModel):
    """The answer to every sign-up, whether or not the address had an account already."""

    email: str
    """The address as accounts know it (lower case): the one to sign in with."""
    detail: str


class TokenResponse(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 -- the OAuth 2 token type
    expires_in: int
    """Seconds until the access token expires."""


class ApiKeyCreated(BaseModel):
    id: uuid.UUID
    name: str
    key: str
    """The secret itself, shown this once."""


class ApiKeyPublic(BaseModel):
    id: uuid.UUID
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    daily_credit_cap: int | None = None

    @classmethod
    def of(cls, key: ApiKey) -> ApiKeyPublic:
        return cls(
            id=key.id,
            name=key.name,
            prefix=key.prefix,
            created_at=key.created_at,
            last_used_at=key.last_used_at,
            daily_credit_cap=key.daily_credit_cap,
        )


class ApiKeyList(BaseModel):
    items: list[ApiKeyPublic]
