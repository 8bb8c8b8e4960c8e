"""``genstream replay rebuild``: the read model rebuilt from the topics and held against the
live one, which it replaces when asked.

The rebuild replays ``jobs.lifecycle`` and ``credits.ledger`` from their first offsets, up
to the offsets the live projection's group has committed, into a scratch schema, storing
the rows the service's ``Projection`` stores (in bulk: ``api.projection.bulk``). Up to those
offsets the live model must hold exactly what the rebuilt one holds. Records after them (the
live projection is still working, or stored a batch and died before committing it) make
their jobs and users "in flight": those are left out of the comparison rather than reported.

The submissions (users, job rows as the API wrote them) are not events; the scratch schema
gets a copy of them, with placeholder e-mail addresses, before the replay.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Final

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    ConsumerGroupTopicPartitions,
    Message,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._listoffsets import OffsetSpec
from sqlalchemy import Engine, func, select, text

from api.projection.bulk import BulkModel, BulkShard
from api.projection.compare import Difference, differences, quoted
from api.projection.swap import SwapCounts, swap_read_model
from contracts import (
    CREDITS_LEDGER,
    JOBS_LIFECYCLE,
    ContractError,
    Envelope,
    JobEvent,
    decode,
)
from contracts.codec import Headers
from genstream.db import sync_engine, upgrade
from genstream.db.models import Job
from genstream.kafka import KafkaSettings
from genstream.kafka.records import record_headers, record_position
from genstream.settings import StackSettings

__all__ = [
    "RebuildOptions",
    "RebuildRefusedError",
    "RebuildReport",
    "ReplayTally",
    "default_workers",
    "rebuild",
    "shares",
]

_TIMEOUT_S: Final = 30.0

Offsets = dict[tuple[str, int], int]
_spec: Any = OffsetSpec  # its constructors carry no annotations


class RebuildRefusedError(Exception):
    """The rebuild cannot start as asked (a swap while the projection runs, no topics)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class RebuildOptions:
    group: str = "genstream-projection"
    """The live projection's consumer group: its committed offsets bound the replay."""
    topic_prefix: str = ""
    schema: str | None = None
    """The live read model's schema; the connection's default one without it."""
    swap: bool = False
    """Replace the live read model by the rebuilt one (the projection must be stopped)."""
    keep_scratch: bool = False
    batch_size: int = 5000
    timeout_s: float = 900.0
    workers: int = 1
    """Shards of the replay, each in a process of its own when more than one."""


@dataclass(slots=True)
class ReplayTally:
    """What replaying some of the partitions found; a process's share, or all of them."""

    replayed: int = 0
    """Events applied to the rebuilt model (copies included)."""
    unreadable: int = 0
    """Records that are not events, which the live projection dead-lettered too."""
    in_flight_jobs: set[str] = field(default_factory=set)
    in_flight_users: set[str] = field(default_factory=set)
    seconds: dict[str, float] = field(default_factory=dict)
    """Wall time by phase; a share's phases are added up over the shares."""

    def absorb(self, share: ReplayTally) -> None:
        self.replayed += share.replayed
        self.unreadable += share.unreadable
        self.in_flight_jobs |= share.in_flight_jobs
        self.in_flight_users |= share.in_flight_users
        for phase, seconds in share.seconds.items():
            _add(self, phase, seconds)


@dataclass(slots=True, kw_only=True)
class RebuildReport(ReplayTally):
    scratch: str
    topics: tuple[str, ...]
    jobs: int = 0
    """Jobs the rebuilt model has rows for."""
    differences: list[Difference] = field(default_factory=list)
    swapped: SwapCounts | None = None
    shards: int = 1


def _admin(kafka: KafkaSettings) -> AdminClient:
    return AdminClient(kafka.librdkafka())


def _require_idle(kafka: KafkaSettings, group: str) -> None:
    admin = _admin(kafka)  # kept referenced: the future dies with its client
    described = admin.describe_consumer_groups([group])[group].result(_TIMEOUT_S)
    if described.members:
        raise RebuildRefusedError(
            f"the projection group {group!r} has {len(described.members)} running member(s); "
            "stop genstream-projection before swapping"
        )


def _committed(kafka: KafkaSettings, group: str, partitions: list[TopicPartition]) -> Offsets:
    request = ConsumerGroupTopicPartitions(group, partitions)
    admin = _admin(kafka)  # kept referenced: the future dies with its client
    answer = admin.list_consumer_group_offsets([request])[group].result(_TIMEOUT_S)
    return {(tp.topic, tp.partition): max(tp.offset, 0) for tp in answer.topic_partitions}


class _Reader:
    """Reads some partitions of the topics from ``start`` (their first offsets without it),
    outside any group."""

    def __init__(
        self,
        kafka: KafkaSettings,
        partitions: list[TopicPartition],
        batch_size: int,
        start: Offsets | None = None,
    ) -> None:
        self._admin = _admin(kafka)
        options: dict[str, str | int | float | bool] = {
            # Never joins the group nor commits: the replay reads every partition itself.
            "group.id": f"genstream-replay-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
        self._consumer = Consumer(kafka.librdkafka(**options))
        self._batch_size = batch_size
        self.partitions = [TopicPartition(tp.topic, tp.partition) for tp in partitions]
        self._start: Offsets = dict(start or {})
        self._consumer.assign(
            [
                TopicPartition(
                    tp.topic,
                    tp.partition,
                    OFFSET_BEGINNING if start is None else start[(tp.topic, tp.partition)],
                )
                for tp in self.partitions
            ]
        )

    def watermarks(self) -> dict[tuple[str, int], tuple[int, int]]:
        """(first, end) offset per partition, asked of the brokers in one go.

        Asked through an admin client: the consumer's own connections are busy with its
        long-polling fetches, behind which each of its offset requests would wait.
        """
        return _watermarks(self._admin, self.partitions)

    def read_until(
        self, targets: Offsets, handle: Callable[[list[Message]], None], *, deadline: float
    ) -> None:
        """Reads until every partition's position reaches its target offset."""
        # A partition whose target is where the reading starts has nothing to wait for (and
        # no position until a record arrives).
        starts = {
            key: max(low, self._start.get(key, low)) for key, (low, _) in self.watermarks().items()
        }
        waiting = {key: offset for key, offset in targets.items() if offset > starts[key]}
        while waiting:
            if time.monotonic() > deadline:
                raise TimeoutError(f"replay did not reach {waiting} in time")
            messages = self._consumer.consume(num_messages=self._batch_size, timeout=0.5)
            handle([m for m in messages if m.error() is None])
            positions = self._consumer.position(
                [TopicPartition(topic, partition) for topic, partition in waiting]
            )
            for tp in positions:
                if tp.offset >= waiting[(tp.topic, tp.partition)]:
                    del waiting[(tp.topic, tp.partition)]

    def close(self) -> None:
        self._consumer.close()


def _partitions(kafka: KafkaSettings, topics: tuple[str, ...]) -> list[TopicPartition]:
    metadata = _admin(kafka).list_topics(timeout=_TIMEOUT_S)
    found: list[TopicPartition] = []
    for topic in topics:
        described = metadata.topics.get(topic)
        if described is None or described.error is not None:
            raise RebuildRefusedError(f"topic {topic!r} does not exist")
        found += [TopicPartition(topic, p) for p in sorted(described.partitions)]
    return found


def _watermarks(
    admin: AdminClient, partitions: list[TopicPartition]
) -> dict[tuple[str, int], tuple[int, int]]:
    def offsets(spec: OffsetSpec) -> Offsets:
        requests = {TopicPartition(tp.topic, tp.partition): spec for tp in partitions}
        futures = admin.list_offsets(requests, request_timeout=_TIMEOUT_S)
        return {
            (tp.topic, tp.partition): int(future.result(_TIMEOUT_S).offset)
            for tp, future in futures.items()
        }

    lows, highs = offsets(_spec.earliest()), offsets(_spec.latest())
    return {key: (lows[key], highs[key]) for key in lows}


def shares(sizes: dict[tuple[str, int], int], count: int) -> list[list[tuple[str, int]]]:
    """The partitions dealt into at most ``count`` shares of about as many records each:
    the biggest first, each to the share with the fewest so far. Empty shares are left out."""
    dealt: list[list[tuple[str, int]]] = [[] for _ in range(max(1, count))]
    totals = [0] * len(dealt)
    for key in sorted(sizes, key=lambda k: (-sizes[k], k)):
        least = totals.index(min(totals))
        dealt[least].append(key)
        totals[least] += sizes[key]
    return [share for share, total in zip(dealt, totals, strict=True) if total > 0]


@dataclass(frozen=True, kw_only=True, slots=True)
class _ShardTask:
    stack: StackSettings
    scratch: str
    shard: int
    partitions: tuple[tuple[str, int], ...]
    stop: Offsets
    batch_size: int
    deadline_s: float
    """Seconds the shard has left when it starts."""


def _load_shard(task: _ShardTask) -> ReplayTally:
    """Replays a share of the partitions into the prepared scratch model (in a process of
    its own when there are several shares)."""
    report = ReplayTally()
    deadline = time.monotonic() + task.deadline_s
    engine = sync_engine(task.stack.pg, schema=task.scratch)
    partitions = [TopicPartition(topic, partition) for topic, partition in task.partitions]
    reader = _Reader(task.stack.kafka, partitions, task.batch_size)
    try:
        stop = task.stop

        def replay(messages: list[Message]) -> None:
            batch = []
            began = time.perf_counter()
            for message in messages:
                envelope = _decoded(message, report)
                if envelope is None:
                    continue
                topic, partition, offset = record_position(message)
                if offset < stop[(topic, partition)]:
                    batch.append(envelope)
                else:
                    _note_in_flight(envelope, report)
            decoded = time.perf_counter()
            load(batch)
            report.replayed += len(batch)
            _add(report, "decode", decoded - began)
            _add(report, "load", time.perf_counter() - decoded)

        with _collector_paused(), BulkShard(engine, shard=task.shard) as load:
            reader.read_until(
                {key: stop[key] for key in task.partitions}, replay, deadline=deadline
            )
            began = time.perf_counter()
            load.finish()
            _add(report, "shard finish", time.perf_counter() - began)
        return report
    finally:
        reader.close()
        engine.dispose()


def _load_shards(tasks: list[_ShardTask]) -> list[ReplayTally]:
    if len(tasks) <= 1:
        return [_load_shard(task) for task in tasks]
    # Spawned: the parent holds Kafka clients, whose threads a fork would not carry over.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=len(tasks), mp_context=context) as pool:
        return list(pool.map(_load_shard, tasks))


def default_workers() -> int:
    """One shard per core this process may run on."""
    return len(os.sched_getaffinity(0))


def rebuild(stack: StackSettings, options: RebuildOptions) -> RebuildReport:
    topics = (
        JOBS_LIFECYCLE.prefixed(options.topic_prefix).name,
        CREDITS_LEDGER.prefixed(options.topic_prefix).name,
    )
    report = RebuildReport(scratch=f"replay_{uuid.uuid4().hex[:12]}", topics=topics)
    deadline = time.monotonic() + options.timeout_s
    began = time.perf_counter()
    if options.swap:
        _require_idle(stack.kafka, options.group)
    live_engine = sync_engine(stack.pg, schema=options.schema)
    partitions = _partitions(stack.kafka, topics)
    scratch_engine: Engine | None = None
    try:
        stop = _committed(stack.kafka, options.group, partitions)
        lows = {key: low for key, (low, _) in _watermarks(_admin(stack.kafka), partitions).items()}
        with live_engine.connect() as connection:
            live = str(connection.scalar(text("SELECT current_schema()")))
        upgrade(stack.pg, schema=report.scratch)
        scratch_engine = sync_engine(stack.pg, schema=report.scratch)
        # Built only for a model that outlives the command: comparing and swapping need none.
        model = BulkModel(scratch_engine, submissions=live, index=options.keep_scratch)
        model.prepare()
        sizes = {key: max(0, stop[key] - lows[key]) for key in stop}
        tasks = [
            _ShardTask(
                stack=stack,
                scratch=report.scratch,
                shard=number,
                partitions=tuple(share),
                stop=stop,
                batch_size=options.batch_size,
                deadline_s=deadline - time.monotonic(),
            )
            for number, share in enumerate(shares(sizes, options.workers))
        ]
        report.shards = len(tasks)
        _add(report, "setup", time.perf_counter() - began)
        began = time.perf_counter()
        for share in _load_shards(tasks):
            report.absorb(share)
        _add(report, "read", time.perf_counter() - began)
        began = time.perf_counter()
        model.complete(shards=len(tasks))
        _add(report, "finish", time.perf_counter() - began)
        with scratch_engine.connect() as connection:
            report.jobs = int(connection.scalar(select(func.count()).select_from(Job)) or 0)
        # The live model first, then the topics' ends: whatever the live projection stored
        # by then was written to the topics before, so the tail read next covers it.
        began = time.perf_counter()
        with live_engine.connect().execution_options(
            isolation_level="REPEATABLE READ"
        ) as connection:
            found = differences(connection, live=live, rebuilt=report.scratch)
        _add(report, "compare", time.perf_counter() - began)
        began = time.perf_counter()
        _read_tail(stack.kafka, partitions, stop, report, deadline=deadline)
        report.differences = [d for d in found if not _in_flight(d, report)]
        _add(report, "tail", time.perf_counter() - began)
        if options.swap:
            with live_engine.begin() as connection:
                report.swapped = swap_read_model(connection, rebuilt=report.scratch)
        return report
    finally:
        if scratch_engine is not None:
            scratch_engine.dispose()
        if not options.keep_scratch:
            with live_engine.begin() as connection:
                connection.execute(text(f"DROP SCHEMA IF EXISTS {quoted(report.scratch)} CASCADE"))
        live_engine.dispose()


def _read_tail(
    kafka: KafkaSettings,
    partitions: list[TopicPartition],
    stop: Offsets,
    report: RebuildReport,
    *,
    deadline: float,
) -> None:
    """Notes the jobs and users of the records after the replayed ones, up to the ends."""
    reader = _Reader(kafka, partitions, 5000, start=stop)
    try:
        ends = {key: high for key, (_, high) in reader.watermarks().items()}

        def tail(messages: list[Message]) -> None:
            for message in messages:
                envelope = _decoded(message, report)
                if envelope is not None:
                    _note_in_flight(envelope, report)

        reader.read_until(ends, tail, deadline=deadline)
    finally:
        reader.close()


@contextmanager
def _collector_paused() -> Iterator[None]:
    """The cycle collector off for the replay: it makes millions of short-lived objects
    (envelopes, none of them in a cycle: freed by their counts alone), and the passes the
    collector makes over them cost about as much as decoding them."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _decoded(message: Message, report: ReplayTally) -> Envelope[Any] | None:
    try:
        raw = message.headers()
        # A consumed record's are (name, bytes) pairs already, which ``decode`` reads as
        # they are; the copy ``record_headers`` makes costs a tenth of a decode.
        headers: Headers = record_headers(message) if isinstance(raw, dict) else (raw or [])
        return decode(message.value(), headers)
    except ContractError:
        report.unreadable += 1
        return None


def _note_in_flight(envelope: Envelope[Any], report: ReplayTally) -> None:
    if isinstance(envelope.data, JobEvent):
        report.in_flight_jobs.add(envelope.subject)
        return
    report.in_flight_users.add(envelope.user_id)
    job_id = getattr(envelope.data, "job_id", None)
    if job_id is not None:
        report.in_flight_jobs.add(job_id)


def _in_flight(difference: Difference, report: RebuildReport) -> bool:
    if difference.what in ("job", "job_events"):
        return difference.key in report.in_flight_jobs
    return difference.key in report.in_flight_users


def _add(report: ReplayTally, phase: str, seconds: float) -> None:
    report.seconds[phase] = report.seconds.get(phase, 0.0) + seconds
