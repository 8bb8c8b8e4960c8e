"""Standard Webhooks signatures (https://www.standardwebhooks.com).

A secret is ``whsec_`` followed by the base64 of random bytes; those bytes are the HMAC key.
Each request carries ``webhook-id`` (stable across retries, so receivers can drop repeats),
``webhook-timestamp`` (unix seconds of this attempt) and ``webhook-signature``: space-separated
``v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">``, one per secret that is valid now
(two while a rotated-out secret is still honoured).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Sequence
from typing import Final

__all__ = ["SECRET_PREFIX", "InvalidSecretError", "new_secret", "sign", "signature_header"]

SECRET_PREFIX: Final = "whsec_"  # noqa: S105 - the format's prefix, not a secret
_SECRET_BYTES: Final = 32
# The spec's bounds on the key length, so that no weak key is ever accepted.
_MIN_KEY_BYTES: Final = 24
_MAX_KEY_BYTES: Final = 64


class InvalidSecretError(ValueError):
    """A secret that is not ``whsec_`` and the base64 of 24 to 64 bytes."""


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(_SECRET_BYTES)).decode()


def _key(secret: str) -> bytes:
    if not secret.startswith(SECRET_PREFIX):
        raise InvalidSecretError(f"a signing secret starts with {SECRET_PREFIX!r}")
    try:
        key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except (binascii.Error, ValueError) as error:
        raise InvalidSecretError("a signing secret is base64 after its prefix") from error
    if not _MIN_KEY_BYTES <= len(key) <= _MAX_KEY_BYTES:
        raise InvalidSecretError(
            f"a signing secret holds {_MIN_KEY_BYTES} to {_MAX_KEY_BYTES} bytes"
        )
    return key


def sign(secret: str, *, message_id: str, timestamp: int, body: bytes) -> str:
    """One ``v1,<base64>`` signature of ``body`` sent as ``message_id`` at ``timestamp``."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signature_header(
    secrets_: Sequence[str], *, message_id: str, timestamp: int, body: bytes
) -> str:
    """The ``webhook-signature`` value: a signature per secret, separated by spaces."""
    if not secrets_:
        raise InvalidSecretError("nothing to sign with")
    return " ".join(
        sign(secret, message_id=message_id, timestamp=timestamp, body=body) for secret in secrets_
    )
