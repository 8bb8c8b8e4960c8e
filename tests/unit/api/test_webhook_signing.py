"""Standard Webhooks signatures: checked against the spec's construction, computed here."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from api.webhooks.signing import (
    SECRET_PREFIX,
    InvalidSecretError,
    new_secret,
    sign,
    signature_header,
)

# The example of the Standard Webhooks specification; the expected value was derived with
# `openssl dgst -sha256 -mac HMAC` over "{id}.{timestamp}.{body}", outside this code base.
VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TIMESTAMP = 1614265330
VECTOR_BODY = b'{"test": 2432232314}'
VECTOR_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def _expected(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The spec, spelled out: HMAC-SHA256 keyed by the base64-decoded secret after its prefix."""
    key = base64.b64decode(secret.split("_", 1)[1])
    content = message_id.encode() + b"." + str(timestamp).encode() + b"." + body
    return "v1," + base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()


def test_known_vector() -> None:
    signature = sign(
        VECTOR_SECRET, message_id=VECTOR_ID, timestamp=VECTOR_TIMESTAMP, body=VECTOR_BODY
    )
    assert signature == VECTOR_SIGNATURE


def test_signature_matches_the_spec_for_a_fresh_secret() -> None:
    secret = new_secret()
    body = b'{"type":"job.completed","data":{"job_id":"job_1","status":"completed"}}'
    signature = sign(secret, message_id="evt-1", timestamp=1_700_000_000, body=body)
    assert signature == _expected(secret, "evt-1", 1_700_000_000, body)


def test_anything_signed_changes_the_signature() -> None:
    secret = new_secret()
    base = sign(secret, message_id="a", timestamp=1, body=b"{}")
    assert sign(secret, message_id="b", timestamp=1, body=b"{}") != base
    assert sign(secret, message_id="a", timestamp=2, body=b"{}") != base
    assert sign(secret, message_id="a", timestamp=1, body=b"{ }") != base
    assert sign(new_secret(), message_id="a", timestamp=1, body=b"{}") != base


def test_header_carries_one_signature_per_secret() -> None:
    old, new = new_secret(), new_secret()
    header = signature_header([new, old], message_id="m", timestamp=5, body=b"x")
    assert header.split(" ") == [_expected(new, "m", 5, b"x"), _expected(old, "m", 5, b"x")]


def test_new_secrets_are_prefixed_random_32_bytes() -> None:
    first, second = new_secret(), new_secret()
    assert first.startswith(SECRET_PREFIX)
    assert len(base64.b64decode(first.removeprefix(SECRET_PREFIX))) == 32
    assert first != second


@pytest.mark.parametrize(
    "secret",
    [
        "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",  # no prefix
        "whsec_not base64!",
        "whsec_" + base64.b64encode(b"short").decode(),  # under 24 bytes
        "whsec_" + base64.b64encode(bytes(65)).decode(),  # over 64 bytes
    ],
)
def test_malformed_secrets_are_refused(secret: str) -> None:
    with pytest.raises(InvalidSecretError):
        sign(secret, message_id="m", timestamp=1, body=b"")


def test_nothing_to_sign_with_is_refused() -> None:
    with pytest.raises(InvalidSecretError):
        signature_header([], message_id="m", timestamp=1, body=b"")
