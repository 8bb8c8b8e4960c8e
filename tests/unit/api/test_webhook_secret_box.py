"""Signing secrets sealed at rest: they open only with the key and for their own user."""

from __future__ import annotations

import base64
import os

import pytest

from api.webhooks.secret_box import InvalidKeyError, SealedSecretError, SecretBox, parse_key


def _key_text() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def test_round_trip_and_no_plaintext_in_the_sealed_value() -> None:
    box = SecretBox.from_text(_key_text())
    sealed = box.seal("whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0", user_id="u1")
    assert b"whsec_" not in sealed
    assert box.open(sealed, user_id="u1") == "whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0"
    # Each sealing uses a new nonce.
    assert box.seal("same", user_id="u1") != box.seal("same", user_id="u1")


def test_sealed_for_one_user_does_not_open_for_another() -> None:
    box = SecretBox.from_text(_key_text())
    with pytest.raises(SealedSecretError):
        box.open(box.seal("s", user_id="u1"), user_id="u2")


def test_another_key_or_damage_does_not_open() -> None:
    sealed = SecretBox.from_text(_key_text()).seal("s", user_id="u1")
    with pytest.raises(SealedSecretError):
        SecretBox.from_text(_key_text()).open(sealed, user_id="u1")
    box = SecretBox.from_text(_key_text())
    damaged = bytearray(box.seal("s", user_id="u1"))
    damaged[-1] ^= 1
    with pytest.raises(SealedSecretError):
        box.open(bytes(damaged), user_id="u1")
    with pytest.raises(SealedSecretError):
        box.open(b"\x02" + bytes(40), user_id="u1")


def test_keys_in_either_base64_alphabet() -> None:
    raw = bytes(range(250, 256)) + os.urandom(26)
    assert parse_key(base64.b64encode(raw).decode()) == raw
    assert parse_key(base64.urlsafe_b64encode(raw).decode().rstrip("=")) == raw


@pytest.mark.parametrize("text", ["", "not base64 at all!", base64.b64encode(bytes(16)).decode()])
def test_bad_keys_are_refused(text: str) -> None:
    with pytest.raises(InvalidKeyError):
        parse_key(text)
