"""The key partitioner against the vectors Kafka's Java client and librdkafka pin."""

from __future__ import annotations

import pytest

from genstream.kafka.partitioner import murmur2, partition_for

# Kafka's UtilsTest.testMurmur2, then librdkafka's rdmurmur2.c unit test (one per tail length).
JAVA_VECTORS = [
    (b"21", -973932308),
    (b"foobar", -790332482),
    (b"a-little-bit-long-string", -985981536),
    (b"a-little-bit-longer-string", -1486304829),
    (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
    (b"abc", 479470107),
    (b"", 275646681),
    (b"kafka", -798503068),
    (b"giberish123456789", -1890243828),
    (b"1234", -1614185708),
    (b"234", -406844982),
    (b"34", -2026295078),
]


@pytest.mark.parametrize(("data", "expected"), JAVA_VECTORS)
def test_murmur2_matches_the_java_client(data: bytes, expected: int) -> None:
    assert murmur2(data) == expected


def test_partition_clears_the_sign_bit_instead_of_negating() -> None:
    # -790332482 & 0x7fffffff = 1357151166; abs() would give 790332482 (partition 32).
    assert partition_for(b"foobar", 50) == 1357151166 % 50 == 16


def test_partition_is_in_range_and_stable() -> None:
    keys = [f"user-{n}".encode() for n in range(500)]
    for partitions in (1, 6, 12):
        placed = [partition_for(key, partitions) for key in keys]
        assert all(0 <= p < partitions for p in placed)
        assert placed == [partition_for(key, partitions) for key in keys]
    assert len({partition_for(key, 12) for key in keys}) == 12


def test_a_topic_without_partitions_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one partition"):
        partition_for(b"key", 0)
