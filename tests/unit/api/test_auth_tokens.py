"""Access token issue and verification: only tokens this service signed, unexpired, pass."""

from __future__ import annotations

import base64
import json
import secrets
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from pydantic import SecretStr

from api.auth.tokens import (
    InvalidTokenError,
    digest,
    issue_access_token,
    new_secret,
    verify_access_token,
)
from api.settings import AuthSettings


@pytest.fixture
def settings() -> AuthSettings:
    return AuthSettings(jwt_secret=SecretStr(secrets.token_urlsafe(48)), jwt_issuer="genstream")


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _claims(settings: AuthSettings, **overrides: Any) -> dict[str, Any]:
    now = int(datetime.now(UTC).timestamp())
    claims: dict[str, Any] = {
        "iss": settings.jwt_issuer,
        "sub": str(uuid.uuid4()),
        "sid": str(uuid.uuid4()),
        "iat": now,
        "exp": now + 60,
        "jti": uuid.uuid4().hex,
        "typ": "access",
    }
    claims.update(overrides)
    return {name: value for name, value in claims.items() if value is not None}


def _sign(settings: AuthSettings, claims: dict[str, Any]) -> str:
    return jwt.encode(claims, settings.jwt_secret.get_secret_value(), algorithm="HS256")


def test_round_trip(settings: AuthSettings) -> None:
    user_id, session_id = uuid.uuid4(), uuid.uuid4()
    token = issue_access_token(settings, user_id=user_id, session_id=session_id)

    claims = verify_access_token(settings, token)

    assert claims.user_id == user_id
    assert claims.session_id == session_id
    assert claims.expires_at > datetime.now(UTC)
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "HS256"


def test_each_token_has_its_own_id(settings: AuthSettings) -> None:
    ids = {uuid.uuid4(), uuid.uuid4()}
    first, second = (
        verify_access_token(settings, issue_access_token(settings, user_id=i, session_id=i))
        for i in ids
    )
    assert first.token_id != second.token_id


def test_alg_none_is_refused(settings: AuthSettings) -> None:
    token = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(_claims(settings))}."
    with pytest.raises(InvalidTokenError):
        verify_access_token(settings, token)


def test_other_algorithms_are_refused(settings: AuthSettings) -> None:
    token = jwt.encode(_claims(settings), settings.jwt_secret.get_secret_value(), algorithm="HS512")
    with pytest.raises(InvalidTokenError):
        verify_access_token(settings, token)


def test_wrong_key_is_refused(settings: AuthSettings) -> None:
    token = jwt.encode(_claims(settings), secrets.token_urlsafe(48), algorithm="HS256")
    with pytest.raises(InvalidTokenError):
        verify_access_token(settings, token)


def test_expired_token_is_refused(settings: AuthSettings) -> None:
    issued = datetime.now(UTC) - timedelta(seconds=settings.access_ttl_s + 1)
    token = issue_access_token(settings, user_id=uuid.uuid4(), session_id=uuid.uuid4(), now=issued)
    with pytest.raises(InvalidTokenError):
        verify_access_token(settings, token)


def test_wrong_issuer_is_refused(settings: AuthSettings) -> None:
    with pytest.raises(InvalidTokenError):
        verify_access_token(settings, _sign(settings, _claims(settings, iss="someone-else")))


@pytest.mark.parametrize("claim", ["exp", "iat", "iss", "sub", "sid", "jti", "typ"])
def test_missing_claims_are_refused(settings: AuthSettings, claim: str) -> None:
    token = _sign(settings, _claims(settings, **{claim: None}))
    with pytest.raises(InvalidTokenError):
        verify_access_token(settings, token)


@pytest.mark.parametrize(
    "overrides", [{"typ": "refresh"}, {"sub": "not-a-uuid"}, {"sid": "not-a-uuid"}]
)
def test_malformed_claims_are_refused(settings: AuthSettings, overrides: dict[str, Any]) -> None:
    with pytest.raises(InvalidTokenError):
        verify_access_token(settings, _sign(settings, _claims(settings, **overrides)))


@pytest.mark.parametrize("token", ["", "garbage", "a.b.c", "gsk_notajwt"])
def test_garbage_is_refused(settings: AuthSettings, token: str) -> None:
    with pytest.raises(InvalidTokenError):
        verify_access_token(settings, token)


def test_secrets_are_random_and_stored_as_sha256() -> None:
    first, second = new_secret("gsk_"), new_secret("gsk_")
    assert first.startswith("gsk_")
    assert first != second
    assert len(first) >= 4 + 43
    assert len(digest(first)) == 64
    assert digest(first) == digest(first) != digest(second)
