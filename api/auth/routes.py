"""``/v1/auth``: registration, password and OIDC sign-in, refresh, sign-out."""

from __future__ import annotations

import uuid
from typing import Annotated, Final

from fastapi import APIRouter, Depends, Request, Response, status
from fastapi.security import OAuth2PasswordRequestForm
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from api.auth.oidc import (
    JwksCache,
    JwksUnavailableError,
    OidcIdentity,
    OidcTokenError,
    enabled,
    jwks_url,
    verify_id_token,
)
from api.auth.passwords import MAX_LENGTH as PASSWORD_MAX_LENGTH
from api.auth.passwords import hash_password, verify_password
from api.auth.principal import CurrentPrincipal
from api.auth.schemas import (
    OidcRequest,
    RefreshRequest,
    RegisterRequest,
    SignUpReceived,
    TokenResponse,
)
from api.auth.sessions import IssuedTokens, RefreshRefusedError, revoke, rotate, start_session
from api.deps import ClientAddressDep, RateLimiterDep, SessionDep, SettingsDep
from api.problems import Problem, not_found, problem_responses
from api.settings import ApiSettings
from contracts import CREDITS_LEDGER, CreditsGranted, Envelope, Plan
from genstream.db.models import User
from producers.outbox import stage

SOURCE: Final = "genstream/api"
SIGNED_UP: Final = (
    "if this email had no account, it has one now: sign in with this email and password"
)
_MAX_EMAIL_LENGTH: Final = 320
_RATE_KEY_LENGTH: Final = 255

router = APIRouter(prefix="/v1/auth", tags=["auth"])


async def _limit_address(
    limiter: RateLimiterDep, settings: SettingsDep, address: ClientAddressDep
) -> None:
    limits = settings.rate_limits
    await limiter.hit(f"auth:ip:{address}", limit=limits.auth_per_ip, window_s=limits.window_s)


_ADDRESS_LIMITED = (Depends(_limit_address),)


def _token_response(tokens: IssuedTokens) -> TokenResponse:
    return TokenResponse(
        access_token=tokens.access_token,
        refresh_token=tokens.refresh_token,
        expires_in=tokens.expires_in,
    )


def _new_user(
    db: AsyncSession,
    settings: ApiSettings,
    *,
    email: str,
    password_hash: str | None,
    identity: OidcIdentity | None = None,
) -> User:
    """Adds a user and the sign-up credit grant to the session's transaction."""
    user = User(
        id=uuid.uuid4(),
        email=email,
        password_hash=password_hash,
        plan=Plan.FREE.value,
        oidc_issuer=identity.issuer if identity else None,
        oidc_subject=identity.subject if identity else None,
    )
    db.add(user)
    if settings.auth.signup_credits > 0:
        grant = CreditsGranted(
            amount=settings.auth.signup_credits,
            reason="signup",
            idempotency_key=f"signup:{user.id}",
        )
        stage(db, CREDITS_LEDGER, Envelope.wrap(grant, user_id=str(user.id), source=SOURCE))
    return user


def _email_taken() -> Problem:
    return Problem(409, "an account with this email already exists")


@router.post(
    "/register",
    operation_id="auth_register",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=SignUpReceived,
    dependencies=_ADDRESS_LIMITED,
    summary="Create an account; the answer is the same when the email has one already",
    responses=problem_responses(400, 413, 422, 429),
)
async def register(body: RegisterRequest, db: SessionDep, settings: SettingsDep) -> SignUpReceived:
    """An address that has an account keeps it unchanged (its password, its credits). The
    answer, its status and its time (the password is hashed either way) are the same, so
    sign-up does not tell who has an account; the account's id comes from ``GET /v1/me``."""
    if len(body.password) < settings.auth.password_min_length:
        raise Problem(
            422, f"the password must have at least {settings.auth.password_min_length} characters"
        )
    password_hash = await hash_password(body.password)
    _new_user(db, settings, email=body.email, password_hash=password_hash)
    try:
        await db.commit()
    except IntegrityError:
        await db.rollback()  # the address is taken: nothing changes, and nothing says so
    return SignUpReceived(email=body.email, detail=SIGNED_UP)


@router.post(
    "/token",
    operation_id="auth_token",
    response_model=TokenResponse,
    dependencies=_ADDRESS_LIMITED,
    summary="Sign in with email and password",
    responses=problem_responses(400, 401, 413, 422, 429),
)
async def token(
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    db: SessionDep,
    settings: SettingsDep,
    limiter: RateLimiterDep,
) -> TokenResponse:
    email = form.username.strip().lower()
    refused = Problem(401, "incorrect email or password")
    if "\x00" in email:
        # No account has one, and PostgreSQL could not even store it as a rate limit key.
        raise refused
    limits = settings.rate_limits
    account_key = f"auth:acct:{email}"[:_RATE_KEY_LENGTH]
    await limiter.hit(account_key, limit=limits.auth_per_account, window_s=limits.window_s)
    if len(email) > _MAX_EMAIL_LENGTH or len(form.password) > PASSWORD_MAX_LENGTH:
        raise refused
    user = (await db.execute(select(User).where(User.email == email))).scalar_one_or_none()
    matches, rehashed = await verify_password(user.password_hash if user else None, form.password)
    if user is None or not matches:
        raise refused
    if rehashed:
        user.password_hash = rehashed
    return _token_response(await start_session(db, settings.auth, user))


@router.post(
    "/refresh",
    operation_id="auth_refresh",
    response_model=TokenResponse,
    dependencies=_ADDRESS_LIMITED,
    summary="Exchange a refresh token for new tokens",
    responses=problem_responses(400, 401, 413, 422, 429),
)
async def refresh(body: RefreshRequest, db: SessionDep, settings: SettingsDep) -> TokenResponse:
    try:
        tokens = await rotate(db, settings.auth, body.refresh_token)
    except RefreshRefusedError as error:
        raise Problem(401, str(error)) from None
    return _token_response(tokens)


@router.post(
    "/logout",
    operation_id="auth_logout",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="End the current session",
    responses=problem_responses(401),
)
async def logout(principal: CurrentPrincipal, db: SessionDep) -> Response:
    # An API key is no session: it is revoked through /v1/api-keys instead.
    if principal.session_id is not None:
        await revoke(db, principal.session_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _jwks(request: Request, settings: SettingsDep) -> JwksCache:
    """The app's one key-set cache, made on first use (``app.state.oidc_jwks``)."""
    cache: JwksCache | None = getattr(request.app.state, "oidc_jwks", None)
    if cache is None:
        cache = JwksCache(url=jwks_url(settings.oidc), max_age_s=settings.oidc.jwks_cache_s)
        request.app.state.oidc_jwks = cache
    return cache


async def _oidc_enabled(settings: SettingsDep) -> None:
    if not enabled(settings.oidc):
        raise not_found("sign-in provider")


async def _oidc_user(db: AsyncSession, settings: ApiSettings, identity: OidcIdentity) -> User:
    by_subject = select(User).where(
        User.oidc_issuer == identity.issuer, User.oidc_subject == identity.subject
    )
    user = (await db.execute(by_subject)).scalar_one_or_none()
    if user is not None:
        return user
    if identity.email is None:
        raise Problem(403, "the identity provider has not verified an email address")
    by_email = select(User).where(User.email == identity.email).with_for_update()
    user = (await db.execute(by_email)).scalar_one_or_none()
    if user is not None:
        if user.oidc_issuer is not None:
            raise Problem(409, "this email belongs to an account linked to another identity")
        user.oidc_issuer, user.oidc_subject = identity.issuer, identity.subject
    else:
        user = _new_user(db, settings, email=identity.email, password_hash=None, identity=identity)
    try:
        await db.flush()
    except IntegrityError:
        # A concurrent first sign-in of the same identity won; use its account.
        await db.rollback()
        user = (await db.execute(by_subject)).scalar_one_or_none()
        if user is None:
            raise _email_taken() from None
    return user


@router.post(
    "/oidc",
    operation_id="auth_oidc",
    response_model=TokenResponse,
    dependencies=[Depends(_oidc_enabled), *_ADDRESS_LIMITED],
    summary="Sign in with an OpenID Connect ID token",
    responses=problem_responses(
        400, 401, 403, 409, 413, 422, 429, 503, described={404: "OpenID Connect sign-in is off"}
    ),
)
async def oidc(
    body: OidcRequest,
    db: SessionDep,
    settings: SettingsDep,
    keys: Annotated[JwksCache, Depends(_jwks)],
) -> TokenResponse:
    try:
        identity = await verify_id_token(settings.oidc, keys, body.id_token)
    except OidcTokenError as error:
        raise Problem(401, f"ID token refused: {error}") from None
    except JwksUnavailableError:
        raise Problem(503, "the identity provider's keys are unavailable") from None
    user = await _oidc_user(db, settings, identity)
    return _token_response(await start_session(db, settings.auth, user))
