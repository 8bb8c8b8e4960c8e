"""What each consumer group read over a window, from its committed offsets, as Kafka's own
tools would tell it (``kafka-consumer-groups --describe``).

A group's records over a window are, summed over every topic-partition it has committed, its
committed offset after the window minus its committed offset before (or the partition's log
start then, where it had committed nothing yet). Each record counts once however often it was
read: a record read again after a rebalance or a lost commit does not show. Offsets are only
records on topics without transaction markers (the processors' default, at least once).

A window's edges are taken once the groups have settled: no committed offset has moved for
longer than any of them takes between commits, so that what a group had read is committed;
``at_end`` says besides whether every group had then read all there was.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._listoffsets import OffsetSpec

from genstream.kafka import KafkaSettings

__all__ = [
    "GroupPositions",
    "Offsets",
    "Positions",
    "at_end",
    "read_by_topic",
    "settle",
    "written_by_topic",
]

_log = logging.getLogger("bench")

Offsets = dict[tuple[str, int], int]
"""An offset per (topic, partition)."""
Label = Callable[[str], str | None]
"""A group's or topic's name in the results (the same from run to run); None: not the run's."""

_spec: Any = OffsetSpec  # its constructors carry no annotations
_TIMEOUT_S: Final = 30.0
_POLL_S: Final = 0.5


@dataclass(frozen=True, slots=True)
class Positions:
    """The run's groups' committed offsets and its topics' log start and end offsets."""

    committed: Mapping[str, Offsets]
    """Per group: the next offset it will read, per partition it has committed."""
    starts: Offsets
    ends: Offsets


def read_by_topic(before: Positions, after: Positions) -> dict[str, dict[str, int]]:
    """Records each group read over the window between two positions, per topic."""
    read: dict[str, dict[str, int]] = {}
    for group, offsets in after.committed.items():
        earlier = before.committed.get(group, {})
        topics = read.setdefault(group, {})
        for (topic, partition), offset in offsets.items():
            since = earlier.get((topic, partition), before.starts.get((topic, partition), 0))
            topics[topic] = topics.get(topic, 0) + offset - since
    return read


def written_by_topic(before: Positions, after: Positions) -> dict[str, int]:
    """Records written to each topic over the window (its log end offsets' growth)."""
    written: dict[str, int] = {}
    for (topic, partition), end in after.ends.items():
        grown = end - before.ends.get((topic, partition), after.starts.get((topic, partition), 0))
        written[topic] = written.get(topic, 0) + grown
    return written


def at_end(positions: Positions) -> bool:
    """Every group has committed up to the end of every partition of each topic it has
    committed (a partition it has not committed yet counts from its log start)."""
    for offsets in positions.committed.values():
        topics = {topic for topic, _ in offsets}
        for key, end in positions.ends.items():
            if key[0] in topics and offsets.get(key, positions.starts.get(key, 0)) < end:
                return False
    return True


def settle(
    read: Callable[[], Positions],
    *,
    quiet_s: float,
    timeout_s: float,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[Positions, bool]:
    """Positions once no group's committed offsets have moved for ``quiet_s``; with False
    where they still moved at ``timeout_s``."""
    deadline = clock() + timeout_s
    last, still_since = read(), clock()
    while clock() - still_since < quiet_s:
        if clock() > deadline:
            _log.warning("consumer groups still committing after %.0fs", timeout_s)
            return last, False
        sleep(_POLL_S)
        now = read()
        if now.committed != last.committed:
            still_since = clock()
        last = now
    return last, True


class GroupPositions:
    """Reads the positions of a run's groups and topics, named as ``group`` and ``topic``
    name them (groups and topics they give None are not the run's)."""

    def __init__(self, settings: KafkaSettings, *, group: Label, topic: Label) -> None:
        self._admin = AdminClient(settings.librdkafka("bench-groups"))
        self._group = group
        self._topic = topic

    def read(self) -> Positions:
        partitions = self._partitions()
        starts = self._offsets(partitions, _spec.earliest())
        ends = self._offsets(partitions, _spec.latest())
        committed = {}
        listed = self._admin.list_consumer_groups(request_timeout=_TIMEOUT_S).result().valid
        for listing in listed:
            label = self._group(listing.group_id)
            if label is not None:
                committed[label] = self._committed(listing.group_id)
        return Positions(committed=committed, starts=starts, ends=ends)

    def settle(self, *, quiet_s: float, timeout_s: float) -> tuple[Positions, bool]:
        return settle(self.read, quiet_s=quiet_s, timeout_s=timeout_s)

    def _partitions(self) -> list[tuple[str, str, int]]:
        """(label, topic, partition) of every partition of the run's topics."""
        topics = self._admin.list_topics(timeout=_TIMEOUT_S).topics
        found = []
        for name, metadata in topics.items():
            label = self._topic(name)
            if label is not None:
                found += [(label, name, partition) for partition in metadata.partitions]
        return found

    def _offsets(self, partitions: Iterable[tuple[str, str, int]], spec: OffsetSpec) -> Offsets:
        labels = {(name, p): label for label, name, p in partitions}
        if not labels:
            return {}
        asked = {TopicPartition(name, p): spec for name, p in labels}
        answers = self._admin.list_offsets(asked, request_timeout=_TIMEOUT_S)
        return {
            (labels[(tp.topic, tp.partition)], tp.partition): future.result().offset
            for tp, future in answers.items()
        }

    def _committed(self, group_id: str) -> Offsets:
        asked = [ConsumerGroupTopicPartitions(group_id)]
        answer = self._admin.list_consumer_group_offsets(asked, request_timeout=_TIMEOUT_S)
        offsets: Offsets = {}
        for tp in answer[group_id].result().topic_partitions or []:
            label = self._topic(tp.topic)
            # A partition the group has not committed answers a negative offset.
            if label is not None and tp.offset >= 0:
                offsets[(label, tp.partition)] = tp.offset
        return offsets
