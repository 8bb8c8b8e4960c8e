"""Opaque cursors: what one encodes, its decoding gives back; anything else is a 400."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from api.pagination import decode_cursor, decode_time_cursor, encode_cursor, encode_time_cursor
from api.problems import Problem

_KEYS = st.text(
    alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=64
)


@given(
    st.datetimes(
        min_value=datetime(1970, 1, 1),
        max_value=datetime(9000, 1, 1),
        timezones=st.just(UTC),
    ),
    _KEYS,
)
def test_time_cursors_round_trip(at: datetime, key: str) -> None:
    assert decode_time_cursor(encode_time_cursor(at, key)) == (at, key)


def test_time_cursors_keep_the_instant_not_the_offset() -> None:
    local = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=timezone(timedelta(hours=2)))
    at, key = decode_time_cursor(encode_time_cursor(local, "job_1"))
    assert at == local
    assert at.tzinfo is UTC
    assert key == "job_1"
    assert "job_1" not in encode_time_cursor(local, "job_1"), "cursors are opaque"


@pytest.mark.parametrize("bad", ["", "!!", "bm9waXBl", encode_cursor(5), "MTIz", "LTF8am9i"])
def test_time_cursors_refuse_what_was_not_issued(bad: str) -> None:
    with pytest.raises(Problem) as raised:
        decode_time_cursor(bad)
    assert raised.value.status == 400


def test_time_cursor_refuses_an_instant_out_of_range() -> None:
    with pytest.raises(Problem):
        decode_time_cursor(encode_cursor(10**20).rstrip("=") + "fGpvYg")


def test_sequence_cursors_still_round_trip() -> None:
    assert decode_cursor(encode_cursor(42)) == 42
    with pytest.raises(Problem):
        decode_cursor(encode_time_cursor(datetime.now(UTC), "x"))
