"""Stripe-compatible webhook signatures: what proves a request came from the provider."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from api.payments.signature import SignatureError, sign, verify_signature

SECRET = "whsec_test_secret"
PAYLOAD = b'{"id":"evt_1","type":"checkout.session.completed","data":{"object":{}}}'
NOW = 1_700_000_000


def _v1(payload: bytes, secret: str, timestamp: int) -> str:
    message = f"{timestamp}.".encode() + payload
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def _verify(header: str | None, *, now: float = NOW, payload: bytes = PAYLOAD) -> int:
    return verify_signature(payload, header, SECRET, tolerance_s=300, now=now)


def test_a_valid_signature_returns_its_timestamp() -> None:
    assert _verify(f"t={NOW},v1={_v1(PAYLOAD, SECRET, NOW)}") == NOW


def test_sign_writes_the_header_the_provider_sends() -> None:
    assert sign(PAYLOAD, SECRET, timestamp=NOW) == f"t={NOW},v1={_v1(PAYLOAD, SECRET, NOW)}"


def test_the_wrong_secret_is_refused() -> None:
    with pytest.raises(SignatureError, match="no signature matches"):
        _verify(sign(PAYLOAD, "whsec_other", timestamp=NOW))


def test_a_changed_body_is_refused() -> None:
    with pytest.raises(SignatureError, match="no signature matches"):
        _verify(sign(PAYLOAD, SECRET, timestamp=NOW), payload=PAYLOAD + b" ")


def test_a_changed_timestamp_is_refused() -> None:
    signature = _v1(PAYLOAD, SECRET, NOW)
    with pytest.raises(SignatureError, match="no signature matches"):
        _verify(f"t={NOW + 1},v1={signature}")


@pytest.mark.parametrize("age_s", [301, -301])
def test_timestamps_beyond_the_tolerance_either_way_are_refused(age_s: int) -> None:
    signed_at = NOW - age_s
    with pytest.raises(SignatureError, match="more than 300s from now"):
        _verify(sign(PAYLOAD, SECRET, timestamp=signed_at))


@pytest.mark.parametrize("age_s", [300, -300, 0])
def test_timestamps_within_the_tolerance_pass(age_s: int) -> None:
    assert _verify(sign(PAYLOAD, SECRET, timestamp=NOW - age_s)) == NOW - age_s


def test_any_one_of_several_v1_signatures_suffices() -> None:
    good = _v1(PAYLOAD, SECRET, NOW)
    stale_secret = _v1(PAYLOAD, "whsec_rolled_over", NOW)
    assert _verify(f"t={NOW},v1={stale_secret},v1={good}") == NOW
    assert _verify(f"t={NOW}, v1={good}, v1={stale_secret}") == NOW


def test_other_schemes_are_ignored() -> None:
    v0 = _v1(PAYLOAD, SECRET, NOW)
    assert _verify(f"t={NOW},v0=deadbeef,v1={v0}") == NOW
    with pytest.raises(SignatureError, match="no v1 signature"):
        _verify(f"t={NOW},v0={v0}")


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (None, "missing signature header"),
        ("", "missing signature header"),
        ("garbage", "malformed signature header"),
        (f"v1={'0' * 64}", "no timestamp"),
        ("t=soon,v1=abc", "malformed signature timestamp"),
        ("t=-5,v1=abc", "malformed signature timestamp"),
        ("t=" + "9" * 5000 + ",v1=abc", "malformed signature timestamp"),
        (f"t={NOW},t={NOW},v1=abc", "malformed signature timestamp"),
        (f"t={NOW}", "no v1 signature"),
    ],
)
def test_malformed_headers_are_refused(header: str | None, reason: str) -> None:
    with pytest.raises(SignatureError, match=reason):
        _verify(header)


def test_a_non_ascii_signature_is_refused_not_an_error() -> None:
    with pytest.raises(SignatureError, match="no signature matches"):
        _verify(f"t={NOW},v1=é{'0' * 63}")


def test_without_a_secret_nothing_verifies() -> None:
    header = sign(PAYLOAD, "", timestamp=NOW)
    with pytest.raises(SignatureError, match="no webhook secret"):
        verify_signature(PAYLOAD, header, "", tolerance_s=300, now=NOW)
