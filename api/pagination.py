"""Opaque cursors for keyset pagination."""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime, timedelta
from typing import Final

from api.problems import Problem

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = timedelta(microseconds=1)
_MAX_KEY_LENGTH: Final = 128


def _encode(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _decode(cursor: str) -> str:
    padded = cursor + "=" * (-len(cursor) % 4)
    return base64.urlsafe_b64decode(padded.encode()).decode()


def _not_ours() -> Problem:
    return Problem(400, "the cursor is not one this API issued")


def encode_cursor(position: int) -> str:
    return _encode(str(position))


def decode_cursor(cursor: str) -> int:
    try:
        position = int(_decode(cursor))
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise _not_ours() from exc
    if position < 0:
        raise _not_ours()
    return position


def encode_time_cursor(at: datetime, key: str) -> str:
    """A cursor after the row at (``at``, ``key``) of a list ordered by both.

    The instant travels as whole microseconds since the epoch, PostgreSQL's own resolution,
    so the row it came from compares equal to it.
    """
    micros = (at - _EPOCH) // _MICROSECOND
    return _encode(f"{micros}|{key}")


def decode_time_cursor(cursor: str) -> tuple[datetime, str]:
    """The (instant, key) of an ``encode_time_cursor`` cursor; 400 for anything else."""
    try:
        micros_text, key = _decode(cursor).split("|", 1)
        micros = int(micros_text)
        at = _EPOCH + micros * _MICROSECOND
    except (ValueError, OverflowError, binascii.Error, UnicodeDecodeError) as exc:
        raise _not_ours() from exc
    if micros < 0 or not key or len(key) > _MAX_KEY_LENGTH or "\x00" in key:
        raise _not_ours()
    return at, key
