"""One delivery attempt: a signed POST to a vetted address, bounded in time and size.

Redirects are never followed, proxies and netrc from the environment are ignored, each
attempt has a connection of its own (a pooled TLS connection must not carry a request for
another host that shares its address), at most ``max_response_bytes`` of the answer are
read, and the only credential sent is the signature.

What the webhook's owner is told of a failure is its kind alone ("connection failed",
"timed out", "HTTP 4xx"): told apart, refused connections, hang-ups and TLS errors would map
the ports of whatever the dispatcher can reach. The whole story goes to operators' logs
(``Attempt.detail``); the answer's status code is kept as it came (``status_code``).
"""

from __future__ import annotations

import socket
import ssl
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

import httpx

from api.webhooks.destination import (
    RefusedDestinationError,
    Resolver,
    UnresolvedDestinationError,
    resolve_destination,
)
from api.webhooks.policy import parse_retry_after
from api.webhooks.settings import WebhookSettings
from api.webhooks.signing import signature_header

__all__ = ["USER_AGENT", "Attempt", "Outgoing", "Sender"]

USER_AGENT: Final = "genstream-webhooks/1"
_ERROR_CHARS: Final = 300


@dataclass(frozen=True, slots=True)
class Outgoing:
    message_id: str
    url: str
    body: str


@dataclass(frozen=True, slots=True)
class Attempt:
    started_at: datetime
    duration_ms: int
    status_code: int | None
    """``None`` when no answer came (refused, unresolved, network error, timeout)."""
    error: str | None
    """What the webhook's owner is told: the kind of failure, nothing more."""
    detail: str | None = None
    """What happened, for operators' logs only."""
    retry_after_s: float | None = None
    refused: bool = False
    """The destination is not allowed: no retry can succeed."""


class Sender:
    def __init__(
        self,
        *,
        settings: WebhookSettings,
        https_only: bool,
        resolver: Resolver = socket.getaddrinfo,
    ) -> None:
        self._settings = settings
        self._https_only = https_only
        self._resolver = resolver
        self._tls = ssl.create_default_context()
        self._timeout = httpx.Timeout(
            settings.request_timeout_s, connect=settings.connect_timeout_s
        )

    def post(self, outgoing: Outgoing, *, secrets: list[str]) -> Attempt:
        started_at = datetime.now(UTC)
        began = time.monotonic()

        def finished(
            status: int | None,
            error: str | None,
            detail: str | None = None,
            *,
            retry_after_s: float | None = None,
            refused: bool = False,
        ) -> Attempt:
            detail = detail or error
            return Attempt(
                started_at=started_at,
                duration_ms=int((time.monotonic() - began) * 1000),
                status_code=status,
                error=error[:_ERROR_CHARS] if error else None,
                detail=detail[:_ERROR_CHARS] if detail else None,
                retry_after_s=retry_after_s,
                refused=refused,
            )

        try:
            destination = resolve_destination(
                outgoing.url,
                https_only=self._https_only,
                allow_loopback=self._settings.allow_loopback,
                resolver=self._resolver,
            )
        except RefusedDestinationError as error:
            return finished(None, error.public, str(error), refused=True)
        except UnresolvedDestinationError as error:
            return finished(None, "host did not resolve", str(error))
        body = outgoing.body.encode()
        timestamp = int(time.time())
        headers = {
            "Host": destination.host_header,
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "webhook-id": outgoing.message_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signature_header(
                secrets, message_id=outgoing.message_id, timestamp=timestamp, body=body
            ),
        }
        extensions = {"sni_hostname": destination.server_name} if destination.server_name else {}
        deadline = began + self._settings.connect_timeout_s + self._settings.request_timeout_s
        try:
            with (
                httpx.Client(
                    timeout=self._timeout,
                    follow_redirects=False,
                    trust_env=False,
                    verify=self._tls,
                    limits=httpx.Limits(max_keepalive_connections=0),
                ) as client,
                client.stream(
                    "POST",
                    destination.request_url,
                    content=body,
                    headers=headers,
                    extensions=extensions,
                ) as response,
            ):
                self._read_some(response, deadline)
                retry_after = parse_retry_after(
                    response.headers.get("retry-after"), now=datetime.now(UTC)
                )
                code = response.status_code
                if response.is_success:
                    return finished(code, None, retry_after_s=retry_after)
                return finished(
                    code, f"HTTP {code // 100}xx", f"HTTP {code}", retry_after_s=retry_after
                )
        except httpx.TimeoutException as error:
            return finished(None, "timed out", f"{type(error).__name__}: {error}")
        except httpx.HTTPError as error:
            return finished(None, "connection failed", f"{type(error).__name__}: {error}")

    def _read_some(self, response: httpx.Response, deadline: float) -> None:
        """Reads at most the allowed bytes of the answer, and only until the deadline."""
        limit = self._settings.max_response_bytes
        read = 0
        try:
            for chunk in response.iter_raw(chunk_size=4096):
                read += len(chunk)
                if read >= limit or time.monotonic() >= deadline:
                    break
        except httpx.HTTPError:
            pass  # the status line is what counts; a body cut short changes nothing
