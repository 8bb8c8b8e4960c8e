"""Read-ahead buffers: per-tier order, per-partition limits, letting go of lost partitions."""

from __future__ import annotations

from contracts import Tier
from gpu_consumers.dispatch import Buffered, DispatchBuffers


def entry(tier: Tier, partition: int, offset: int) -> Buffered[str]:
    return Buffered(
        tier=tier,
        topic=f"jobs.image.{tier.value}",
        partition=partition,
        offset=offset,
        item=f"{tier.value}-{partition}-{offset}",
    )


def test_jobs_leave_each_tier_in_arrival_order() -> None:
    buffers: DispatchBuffers[str] = DispatchBuffers(limit=10)
    for offset in range(3):
        buffers.add(entry(Tier.FREE, 0, offset))
        buffers.add(entry(Tier.FREE, 1, offset))
    buffers.add(entry(Tier.PRO, 0, 7))
    assert buffers.waiting() == {Tier.PRO: 1, Tier.CREATOR: 0, Tier.FREE: 6}
    taken = [buffers.take(Tier.FREE).item for _ in range(6)]
    assert taken == [f"free-{p}-{o}" for o in range(3) for p in (0, 1)]
    assert buffers.take(Tier.PRO).offset == 7
    assert len(buffers) == 0


def test_a_partition_asks_to_pause_at_its_limit() -> None:
    buffers: DispatchBuffers[str] = DispatchBuffers(limit=2)
    assert buffers.add(entry(Tier.PRO, 0, 0)) is False
    assert buffers.add(entry(Tier.PRO, 1, 0)) is False
    assert buffers.add(entry(Tier.PRO, 0, 1)) is True
    buffers.take(Tier.PRO)
    assert buffers.count("jobs.image.pro", 0) == 1


def test_revoked_partitions_are_let_go() -> None:
    buffers: DispatchBuffers[str] = DispatchBuffers(limit=10)
    for offset in range(3):
        buffers.add(entry(Tier.CREATOR, 0, offset))
        buffers.add(entry(Tier.CREATOR, 1, offset))
    assert buffers.drop([("jobs.image.creator", 1)]) == 3
    assert buffers.count("jobs.image.creator", 1) == 0
    assert [buffers.take(Tier.CREATOR).partition for _ in range(3)] == [0, 0, 0]
