"""``Prefer: wait`` as submissions read it."""

from __future__ import annotations

import pytest

from api.jobs.prefer import wait_seconds


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("wait", 60),
        ("WAIT", 60),
        ("wait=5", 5),
        ("wait = 5", 5),
        ('wait="7"', 7),
        ("wait=600", 60),
        ("respond-async, wait=10", 10),
        ("wait=10; strict", 10),
        ("wait=0", None),
        ("wait=-3", None),
        ("wait=1.5", None),
        ("wait=soon", None),
        ("waiting=5", None),
        ("return=minimal", None),
    ],
)
def test_the_wait_preference(header: str | None, expected: int | None) -> None:
    assert wait_seconds(header, longest_s=60) == expected


def test_no_wait_when_the_server_allows_none() -> None:
    assert wait_seconds("wait=5", longest_s=0) is None
