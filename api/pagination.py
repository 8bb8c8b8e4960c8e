"""Opaque cursors for keyset pagination."""

from __future__ import annotations

import base64
import binascii

from api.problems import Problem


def encode_cursor(position: int) -> str:
    return base64.urlsafe_b64encode(str(position).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        position = int(base64.urlsafe_b64decode(padded.encode()).decode())
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise Problem(400, "the cursor is not one this API issued") from exc
    if position < 0:
        raise Problem(400, "the cursor is not one this API issued")
    return position
