"""Multi-row statements cut to a size PostgreSQL takes."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Final, TypeVar

__all__ = ["INSERT_CHUNK", "in_chunks"]

_T = TypeVar("_T")

INSERT_CHUNK: Final = 1000
"""Rows per multi-row INSERT: at up to ten parameters a row, far below the 65,535 bind
parameters PostgreSQL takes in one statement."""


def in_chunks(rows: Sequence[_T], size: int = INSERT_CHUNK) -> Iterator[Sequence[_T]]:
    """``rows`` in consecutive slices of at most ``size``, in order."""
    if size < 1:
        raise ValueError("a chunk holds at least one row")
    for start in range(0, len(rows), size):
        yield rows[start : start + size]
