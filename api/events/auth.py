"""Who opens an event stream: the ``Authorization`` header, or ``?access_token=`` for
browsers' ``EventSource``, which cannot send headers.

Only short-lived access tokens are taken from the query string, where proxies and browser
history may keep them; long-lived API keys there are refused. A stream lasts no longer
than the access token that opened it: the client reconnects with a fresh one and its last
event id. An API key verified in the last ``auth.api_key_cache_s`` seconds is believed
without asking the database again, as on job submission. An access token's user already
holding as many streams as allowed is refused (429) before the database is asked at all.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.auth.api_keys import looks_like_api_key
from api.auth.principal import current_caller, unauthorized
from api.auth.tokens import InvalidTokenError, verify_access_token
from api.deps import SettingsDep
from api.events.hub import EventHub
from api.events.slots import refused

__all__ = ["StreamCaller", "StreamCallerDep"]

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="An access token from `/v1/auth/token`, or an API key (`gsk_…`).",
)


@dataclass(frozen=True, slots=True)
class StreamCaller:
    user_id: uuid.UUID
    api_key_id: uuid.UUID | None
    """The API key the stream was opened with; ``None`` for an access token."""
    ends_at: float | None
    """``time.monotonic()`` when the access token expires; ``None`` for an API key."""


async def stream_caller(
    request: Request,
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    access_token: Annotated[
        str | None,
        Query(
            max_length=4096,
            description="An access token, for clients that cannot send headers (EventSource). "
            "API keys go in the Authorization header only.",
        ),
    ] = None,
) -> StreamCaller:
    if credentials is None and access_token:
        if looks_like_api_key(access_token):
            raise unauthorized("API keys are accepted in the Authorization header only")
        credentials = HTTPAuthorizationCredentials(scheme="Bearer", credentials=access_token)
    token = credentials.credentials if credentials is not None else ""
    ends_at = None
    if token and not looks_like_api_key(token):
        try:
            claims = verify_access_token(settings.auth, token)
        except InvalidTokenError:
            raise unauthorized("invalid or expired access token") from None
        ends_at = time.monotonic() + (claims.expires_at - datetime.now(UTC)).total_seconds()
        # Refused before the database is asked whether the token's session still stands:
        # streams attempted by the hundred past their user's cap cost the database nothing.
        hub: EventHub = request.app.state.event_hub
        refusal = hub.slots.check(user_id=str(claims.user_id))
        if refusal is not None:
            raise refused(refusal, retry_after_s=settings.reads.sse_refused_retry_after_s)
    # An API key may be believed from the process's cache, as on other hot routes: streams
    # open by the thousand, several on one key. Either way no database session outlives
    # this call; one held by the request would hold a pooled connection for as long as the
    # stream stays open.
    caller = await current_caller(request, credentials)
    return StreamCaller(user_id=caller.user_id, api_key_id=caller.api_key_id, ends_at=ends_at)


StreamCallerDep = Annotated[StreamCaller, Depends(stream_caller)]
