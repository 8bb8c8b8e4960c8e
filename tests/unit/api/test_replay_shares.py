"""How ``genstream replay rebuild`` deals the partitions into shares for its processes."""

from __future__ import annotations

import pytest

from api.projection.rebuild import shares


def test_every_partition_goes_to_one_share_of_about_equal_records() -> None:
    sizes = {("lifecycle", p): 100 + p for p in range(12)} | {("ledger", p): 40 for p in range(12)}
    dealt = shares(sizes, 2)
    assert len(dealt) == 2
    assert sorted(key for share in dealt for key in share) == sorted(sizes)
    totals = [sum(sizes[key] for key in share) for share in dealt]
    assert max(totals) - min(totals) <= max(sizes.values())


def test_no_share_is_left_without_records() -> None:
    sizes = {("lifecycle", 0): 10, ("lifecycle", 1): 0, ("ledger", 0): 3}
    assert shares(sizes, 8) == [[("lifecycle", 0)], [("ledger", 0)]]
    assert shares({("lifecycle", 0): 0}, 4) == []


@pytest.mark.parametrize("count", [0, 1])
def test_one_share_holds_everything(count: int) -> None:
    sizes = {("a", 0): 5, ("b", 0): 7}
    assert shares(sizes, count) == [[("b", 0), ("a", 0)]]
