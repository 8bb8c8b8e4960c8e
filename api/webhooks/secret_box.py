"""Signing secrets sealed at rest with AES-256-GCM under the deployment's key.

The user id is the associated data, so a sealed secret copied to another user's row does
not open. Both the API (which shows the secret to its owner) and the dispatcher (which signs
with it) hold the key; the database alone reveals nothing.
"""

from __future__ import annotations

import base64
import binascii
import os
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ["InvalidKeyError", "SealedSecretError", "SecretBox", "parse_key"]

_KEY_BYTES: Final = 32
_NONCE_BYTES: Final = 12
_VERSION: Final = b"\x01"
"""First byte of every sealed value, so that a later scheme can be told apart."""


class InvalidKeyError(ValueError):
    """The configured key is not the base64 of 32 bytes."""


class SealedSecretError(ValueError):
    """A sealed value that this key cannot open: another key, another user, or damaged."""


def parse_key(text: str) -> bytes:
    """The 32 key bytes of standard or URL-safe base64 text (padding optional)."""
    compact = text.strip().replace("-", "+").replace("_", "/")
    try:
        key = base64.b64decode(compact + "=" * (-len(compact) % 4), validate=True)
    except (binascii.Error, ValueError) as error:
        raise InvalidKeyError("the webhook encryption key is not base64") from error
    if len(key) != _KEY_BYTES:
        raise InvalidKeyError(f"the webhook encryption key must be {_KEY_BYTES} bytes")
    return key


class SecretBox:
    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    @classmethod
    def from_text(cls, text: str) -> SecretBox:
        return cls(parse_key(text))

    def seal(self, secret: str, *, user_id: str) -> bytes:
        nonce = os.urandom(_NONCE_BYTES)
        return _VERSION + nonce + self._aead.encrypt(nonce, secret.encode(), _aad(user_id))

    def open(self, sealed: bytes, *, user_id: str) -> str:
        if len(sealed) <= 1 + _NONCE_BYTES or sealed[:1] != _VERSION:
            raise SealedSecretError("not a sealed webhook secret")
        nonce, ciphertext = sealed[1 : 1 + _NONCE_BYTES], sealed[1 + _NONCE_BYTES :]
        try:
            return self._aead.decrypt(nonce, ciphertext, _aad(user_id)).decode()
        except InvalidTag:
            raise SealedSecretError("the webhook secret does not open with this key") from None


def _aad(user_id: str) -> bytes:
    return f"genstream/webhook-secret/{user_id}".encode()
