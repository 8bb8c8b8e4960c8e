"""Access tokens (short-lived HS256 JWTs) and the opaque secrets stored only as digests."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import jwt

from api.settings import AuthSettings

ALGORITHM: Final = "HS256"
ACCESS_TYPE: Final = "access"
_REQUIRED_CLAIMS: Final = ["exp", "iat", "iss", "sub", "sid", "jti", "typ"]


class InvalidTokenError(Exception):
    """The token is malformed, forged, expired or meant for something else."""


@dataclass(frozen=True, slots=True)
class AccessClaims:
    user_id: uuid.UUID
    session_id: uuid.UUID
    token_id: str
    expires_at: datetime


def issue_access_token(
    settings: AuthSettings,
    *,
    user_id: uuid.UUID,
    session_id: uuid.UUID,
    now: datetime | None = None,
) -> str:
    issued = int((now or datetime.now(UTC)).timestamp())
    claims: dict[str, Any] = {
        "iss": settings.jwt_issuer,
        "sub": str(user_id),
        "sid": str(session_id),
        "iat": issued,
        "exp": issued + settings.access_ttl_s,
        "jti": uuid.uuid4().hex,
        "typ": ACCESS_TYPE,
    }
    return jwt.encode(claims, settings.jwt_secret.get_secret_value(), algorithm=ALGORITHM)


def verify_access_token(settings: AuthSettings, token: str) -> AccessClaims:
    """The claims of a token this service issued; raises ``InvalidTokenError`` otherwise."""
    try:
        claims = jwt.decode(
            token,
            settings.jwt_secret.get_secret_value(),
            algorithms=[ALGORITHM],
            issuer=settings.jwt_issuer,
            options={"require": _REQUIRED_CLAIMS},
        )
        if claims["typ"] != ACCESS_TYPE:
            raise InvalidTokenError("not an access token")
        return AccessClaims(
            user_id=uuid.UUID(str(claims["sub"])),
            session_id=uuid.UUID(str(claims["sid"])),
            token_id=str(claims["jti"]),
            expires_at=datetime.fromtimestamp(int(claims["exp"]), UTC),
        )
    except (jwt.PyJWTError, ValueError, TypeError) as error:
        raise InvalidTokenError(str(error)) from error


def new_secret(prefix: str = "") -> str:
    """A random bearer secret (256 bits) for refresh tokens and API keys."""
    return prefix + secrets.token_urlsafe(32)


def digest(secret: str) -> str:
    """What the database keeps of a secret: SHA-256 hex, enough for 256-bit random inputs."""
    return hashlib.sha256(secret.encode()).hexdigest()
