"""The ``wait`` preference of ``Prefer`` (RFC 7240): how long a submission may wait for its end.

``Prefer: wait`` asks for the longest wait the server allows, ``Prefer: wait=N`` for N
seconds, capped at that longest wait. Like every preference it is a wish: a value that is no
whole number of seconds is ignored, as are the other preferences of the header.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["wait_seconds"]

_WAIT: Final = re.compile(r'\s*wait\s*(?:=\s*"?(?P<seconds>[^",;\s]*)"?\s*)?(?:;.*)?', re.I)
_DIGITS: Final = re.compile(r"[0-9]{1,6}")


def wait_seconds(header: str | None, *, longest_s: int) -> int | None:
    """Seconds to wait, from 1 to ``longest_s``; ``None`` when the header asks no wait."""
    if not header or longest_s <= 0:
        return None
    for preference in header.split(","):
        found = _WAIT.fullmatch(preference)
        if found is None:
            continue
        seconds = found.group("seconds")
        if seconds is None or seconds == "":
            return longest_s
        if not _DIGITS.fullmatch(seconds) or int(seconds) == 0:
            return None
        return min(int(seconds), longest_s)
    return None
