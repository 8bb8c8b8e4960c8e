from __future__ import annotations

import pytest

from genstream.db.chunks import in_chunks


def test_rows_are_cut_in_order_with_a_short_last_chunk() -> None:
    assert [list(chunk) for chunk in in_chunks(list(range(7)), 3)] == [[0, 1, 2], [3, 4, 5], [6]]


def test_no_rows_give_no_statement() -> None:
    assert list(in_chunks([], 3)) == []


def test_a_chunk_holds_at_least_one_row() -> None:
    with pytest.raises(ValueError, match="at least one row"):
        list(in_chunks([1], 0))
