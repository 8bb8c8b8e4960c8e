"""Stripe-compatible webhook signatures: ``Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>...]``.

Each ``v1`` is the hex HMAC-SHA256 of ``f"{t}.{raw body}"`` under the endpoint's secret. The
provider lists several while it rolls a secret over, so any one matching is enough; other
schemes (``v0``) are ignored. The timestamp is signed too, which bounds how long a captured
request can be replayed.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from typing import Final

__all__ = ["SCHEME", "SignatureError", "sign", "verify_signature"]

SCHEME: Final = "v1"
_UNIX_TIME: Final = re.compile(r"[0-9]{1,12}")


class SignatureError(ValueError):
    """The request does not prove that the payment provider sent it; the message says why."""


def _digest(payload: bytes, secret: str, timestamp: int) -> str:
    message = str(timestamp).encode() + b"." + payload
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def sign(payload: bytes, secret: str, *, timestamp: int) -> str:
    """The header value the provider would send with ``payload`` at ``timestamp``."""
    return f"t={timestamp},{SCHEME}={_digest(payload, secret, timestamp)}"


def _parse(header: str) -> tuple[int, list[str]]:
    timestamp: int | None = None
    signatures: list[str] = []
    for item in header.split(","):
        name, separator, value = item.strip().partition("=")
        if not separator:
            raise SignatureError("malformed signature header")
        if name == "t":
            if timestamp is not None or not _UNIX_TIME.fullmatch(value):
                raise SignatureError("malformed signature timestamp")
            timestamp = int(value)
        elif name == SCHEME:
            signatures.append(value)
    if timestamp is None:
        raise SignatureError("signature header has no timestamp")
    if not signatures:
        raise SignatureError(f"signature header has no {SCHEME} signature")
    return timestamp, signatures


def verify_signature(
    payload: bytes,
    header: str | None,
    secret: str,
    *,
    tolerance_s: int,
    now: float | None = None,
) -> int:
    """Checks ``header`` against the raw ``payload``; returns the signed timestamp.

    Raises ``SignatureError`` when the header is missing or malformed, when no signature
    matches, or when the timestamp is more than ``tolerance_s`` from ``now`` either way.
    """
    if not secret:
        raise SignatureError("no webhook secret is configured")
    if not header:
        raise SignatureError("missing signature header")
    timestamp, signatures = _parse(header)
    expected = _digest(payload, secret, timestamp).encode()
    # Every candidate is compared, in constant time each, so timing reveals nothing.
    matched = False
    for candidate in signatures:
        matched |= hmac.compare_digest(expected, candidate.encode("utf-8", "replace"))
    if not matched:
        raise SignatureError("no signature matches the payload")
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_s:
        raise SignatureError(f"signature timestamp is more than {tolerance_s}s from now")
    return timestamp
