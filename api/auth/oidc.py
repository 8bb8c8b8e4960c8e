"""Sign-in with an OpenID Connect provider: ID tokens checked against its published keys."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, Final

import httpx
import jwt

from api.settings import OidcSettings

_REQUIRED_CLAIMS: Final = ["exp", "iat", "sub", "iss", "aud"]
_LEEWAY_S: Final = 30
"""Tolerated clock difference with the provider."""
_FETCH_TIMEOUT_S: Final = 5.0
_MIN_REFETCH_S: Final = 10.0
"""An unknown key id refetches the key set at most this often, so forged ids cannot flood the
provider with requests."""


class OidcTokenError(Exception):
    """The ID token is malformed, forged, expired or meant for someone else."""


class JwksUnavailableError(Exception):
    """The provider's key set could not be fetched or read."""


@dataclass(frozen=True, slots=True)
class OidcIdentity:
    issuer: str
    subject: str
    email: str | None
    """Lower-cased; only set when the provider says it verified the address."""


def enabled(settings: OidcSettings) -> bool:
    return bool(settings.issuer and settings.audience)


def jwks_url(settings: OidcSettings) -> str:
    if settings.jwks_url:
        return settings.jwks_url
    if not settings.issuer:
        raise ValueError("OIDC has no issuer")
    return settings.issuer.rstrip("/") + "/.well-known/jwks.json"


class JwksCache:
    """The provider's signing keys by key id, refreshed when stale or when a new id shows up."""

    def __init__(
        self, *, url: str, max_age_s: float, min_refetch_s: float = _MIN_REFETCH_S
    ) -> None:
        self._url = url
        self._max_age_s = max_age_s
        self._min_refetch_s = min_refetch_s
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._lock = asyncio.Lock()

    async def key(self, kid: str) -> jwt.PyJWK | None:
        if self._fresh() and kid in self._keys:
            return self._keys[kid]
        async with self._lock:
            # Another request may have fetched while this one waited for the lock.
            if kid in self._keys and self._fresh():
                return self._keys[kid]
            if not self._fresh() or self._may_refetch():
                await self._fetch()
            return self._keys.get(kid)

    def _fresh(self) -> bool:
        return (
            self._fetched_at is not None and time.monotonic() - self._fetched_at < self._max_age_s
        )

    def _may_refetch(self) -> bool:
        return (
            self._fetched_at is None or time.monotonic() - self._fetched_at >= self._min_refetch_s
        )

    async def _fetch(self) -> None:
        try:
            async with httpx.AsyncClient(timeout=_FETCH_TIMEOUT_S) as client:
                response = await client.get(self._url, headers={"Accept": "application/json"})
                response.raise_for_status()
                document = response.json()
            key_set = jwt.PyJWKSet.from_dict(document)
        except (httpx.HTTPError, ValueError, jwt.PyJWTError) as error:
            raise JwksUnavailableError(f"cannot read the key set at {self._url}") from error
        self._keys = {
            key.key_id: key
            for key in key_set.keys
            if key.key_id and key.public_key_use in (None, "sig") and key.key_type != "oct"
        }
        self._fetched_at = time.monotonic()


def _verified_email(claims: dict[str, Any]) -> str | None:
    email = claims.get("email")
    verified = claims.get("email_verified")
    # Some providers send the flag as a string.
    if isinstance(email, str) and email and (verified is True or verified == "true"):
        return email.strip().lower()
    return None


async def verify_id_token(settings: OidcSettings, keys: JwksCache, id_token: str) -> OidcIdentity:
    """The identity an ID token vouches for.

    Raises ``OidcTokenError`` for a token to refuse, ``JwksUnavailableError`` when the keys to
    judge it by cannot be had.
    """
    try:
        header = jwt.get_unverified_header(id_token)
    except jwt.PyJWTError as error:
        raise OidcTokenError("malformed ID token") from error
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise OidcTokenError("the ID token names no signing key")
    key = await keys.key(kid)
    if key is None:
        raise OidcTokenError("the ID token is signed with an unknown key")
    try:
        claims: dict[str, Any] = jwt.decode(
            id_token,
            key,
            algorithms=list(settings.algorithms),
            audience=settings.audience,
            issuer=settings.issuer,
            leeway=_LEEWAY_S,
            options={"require": _REQUIRED_CLAIMS},
        )
    except jwt.PyJWTError as error:
        raise OidcTokenError(str(error)) from error
    subject = claims["sub"]
    if not isinstance(subject, str) or not subject:
        raise OidcTokenError("the ID token has no subject")
    return OidcIdentity(issuer=str(claims["iss"]), subject=subject, email=_verified_email(claims))
