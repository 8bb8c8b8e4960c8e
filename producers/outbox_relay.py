"""The outbox relay: publishes staged events to Kafka, each exactly once, across crashes.

One cycle (``run_once``) publishes a batch:

1. Claim. In one transaction: lock unpublished rows (``FOR UPDATE SKIP LOCKED``), take a
   session advisory lock per row, and for each row not yet in doubt record the partition it
   will go to and that partition's end offset (``in_doubt_from``). Commit.
2. Resolve. Rows already in doubt were claimed by a relay that died (or failed) after step 1;
   read their partitions from ``in_doubt_from`` to the end and keep aside the rows whose
   event id is there: they were written.
3. Send the other rows with an idempotent producer to the recorded partition and wait for
   every delivery report.
4. Mark what was delivered or found published, commit, release the advisory locks.

The advisory locks live as long as the relay's database session, across the commits of steps
1 and 4, so a second relay skips rows in flight instead of mistaking them for a dead relay's;
they vanish with the session when a relay dies, which hands its rows to the next one. One
relay sends rows in the order they were staged; several may interleave their batches, so a
key's records keep their staging order only with a single relay.

A record whose leader had appended it but not yet replicated it when step 2 looks is not
seen: on a replicated cluster a relay killed mid-send and restarted within that moment can
still write such a record twice.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from sqlalchemy import Connection, Engine, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY, BIGINT, INTEGER
from sqlalchemy.exc import SQLAlchemyError

from contracts.codec import header_id
from genstream.kafka import KafkaKitError, KafkaSettings
from genstream.kafka.config import LibrdkafkaConfig
from genstream.kafka.partitioner import partition_for
from genstream.kafka.records import record_position

__all__ = ["OutboxRelay", "RelayError"]

_log = logging.getLogger(__name__)

PartitionCounts = Callable[[str], int]
"""The number of partitions of a topic."""

_CANDIDATES = text(
    "SELECT id FROM outbox WHERE published_at IS NULL AND id > :after "
    "ORDER BY id LIMIT :limit FOR UPDATE SKIP LOCKED"
)
# Both keys must be int4: the table's oid keeps schemas (and tenants) apart, the row id is
# folded into 32 bits; two rows 2**32 ids apart merely wait for each other.
_ADVISORY_LOCK = text(
    "SELECT id FROM unnest(:ids) AS claimed(id) WHERE pg_try_advisory_lock("
    "CAST(:space AS int4), CAST(((id + 2147483648) % 4294967296) - 2147483648 AS int4))"
).bindparams(bindparam("ids", type_=ARRAY(BIGINT)))
_CLAIMED_ROWS = text(
    "SELECT id, event_id, topic, key, value, headers, partition, in_doubt_from "
    "FROM outbox WHERE id = ANY(:ids) ORDER BY id"
).bindparams(bindparam("ids", type_=ARRAY(BIGINT)))
_MARK_IN_DOUBT = text(
    "UPDATE outbox SET partition = marked.partition, in_doubt_from = marked.start "
    "FROM unnest(:ids, :partitions, :starts) AS marked(id, partition, start) "
    "WHERE outbox.id = marked.id"
).bindparams(
    bindparam("ids", type_=ARRAY(BIGINT)),
    bindparam("partitions", type_=ARRAY(INTEGER)),
    bindparam("starts", type_=ARRAY(BIGINT)),
)
_MARK_PUBLISHED = text(
    "UPDATE outbox SET published_at = now() WHERE id = ANY(:ids) AND published_at IS NULL"
).bindparams(bindparam("ids", type_=ARRAY(BIGINT)))
_PENDING = text("SELECT count(*) FROM outbox WHERE published_at IS NULL")
_LOCK_SPACE = text("SELECT CAST(CAST('outbox' AS regclass) AS oid)::int4")
_UNLOCK_ALL = text("SELECT pg_advisory_unlock_all()")


_NOT_READY: Final = frozenset(
    {
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        KafkaError._UNKNOWN_PARTITION,
        KafkaError._UNKNOWN_TOPIC,
    }
)
"""Errors of a partition that is new or changing leader: they pass within moments."""


class RelayError(Exception):
    """A batch could not be published completely; its rows stay for a later cycle."""


@dataclass(frozen=True, slots=True)
class _Row:
    id: int
    event_id: str
    topic: str
    key: bytes | None
    value: bytes
    headers: list[tuple[str, str | bytes | None]]
    partition: int
    in_doubt_from: int


class OutboxRelay:
    """Publishes the ``outbox`` table of ``engine``'s database (and search path) to Kafka.

    ``partition_counts`` defaults to broker metadata, cached for ``metadata_max_age_s``.
    Any number of relays may run against one table.
    """

    def __init__(
        self,
        *,
        engine: Engine,
        kafka: KafkaSettings,
        batch_size: int = 500,
        partition_counts: PartitionCounts | None = None,
        delivery_timeout_s: float = 30.0,
        scan_timeout_s: float = 30.0,
        metadata_max_age_s: float = 60.0,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self._engine = engine
        self._batch_size = batch_size
        self._delivery_timeout_s = delivery_timeout_s
        self._scan_timeout_s = scan_timeout_s
        self._metadata_max_age_s = metadata_max_age_s
        self._partition_counts = partition_counts or self._broker_partition_count
        self._known_counts: dict[str, tuple[int, float]] = {}
        self._lock_space: int | None = None
        self._idle = threading.Event()
        producing: LibrdkafkaConfig = {
            "linger.ms": 5,
            "compression.type": "lz4",
            "message.timeout.ms": int(delivery_timeout_s * 1000),
        }
        self._producer_config = kafka.producer_config(**producing)
        self._producer = Producer(self._producer_config)
        # Reads metadata, end offsets and in-doubt ranges; it never joins its group or commits.
        reading: LibrdkafkaConfig = {
            "group.id": "genstream-outbox-relay",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
            # Up to the high watermark, past other producers' open transactions, since the
            # records looked for are never transactional.
            "isolation.level": "read_uncommitted",
        }
        self._reader = Consumer(kafka.librdkafka(**reading))

    # -- the loop and its bounded form ------------------------------------------------------

    def run(
        self, stop: threading.Event, *, idle_wait_s: float = 0.2, max_backoff_s: float = 30.0
    ) -> None:
        """Publishes until ``stop`` is set; a batch under way is finished first."""
        backoff = idle_wait_s
        while not stop.is_set():
            try:
                published = self.run_once()
            except (SQLAlchemyError, KafkaException, KafkaKitError, RelayError):
                _log.exception("outbox batch failed; retrying", extra={"retry_in_s": backoff})
                stop.wait(backoff)
                backoff = min(backoff * 2, max_backoff_s)
                continue
            backoff = idle_wait_s
            if published < self._batch_size:
                stop.wait(idle_wait_s)

    def drain(
        self, timeout_s: float, *, stop: threading.Event | None = None, idle_wait_s: float = 0.05
    ) -> int:
        """Publishes until no unpublished row remains; returns how many this relay published.

        Raises ``TimeoutError`` when rows remain after ``timeout_s`` (rows for a topic that
        does not exist, or held by a relay that does not finish).
        """
        deadline = time.monotonic() + timeout_s
        total = 0
        waiter = stop or self._idle
        while not waiter.is_set():
            published = self.run_once()
            total += published
            if published == 0:
                pending = self.pending()
                if pending == 0:
                    return total
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"{pending} outbox rows unpublished after {timeout_s:.0f}s")
                waiter.wait(min(idle_wait_s, remaining))
        return total

    def pending(self) -> int:
        with self._engine.connect() as connection:
            count: int = connection.execute(_PENDING).scalar_one()
        return count

    # -- one cycle -------------------------------------------------------------------------

    def run_once(self) -> int:
        """Publishes one batch; returns how many rows it marked published."""
        with self._engine.connect() as connection:
            try:
                fresh, in_doubt = self._claim(connection)
                if not fresh and not in_doubt:
                    return 0
                found = self._already_written(in_doubt)
                unsent = [row for row in in_doubt if row.id not in found]
                # In id order, as staged: the in-doubt rows of a dead relay come first.
                delivered = self._send(sorted([*fresh, *unsent], key=lambda row: row.id))
                done = sorted(found | delivered)
                with connection.begin():
                    connection.execute(_MARK_PUBLISHED, {"ids": done})
            finally:
                self._release(connection)
        if found:
            _log.info("in-doubt outbox rows found already written", extra={"rows": len(found)})
        claimed = len(fresh) + len(in_doubt)
        if len(done) < claimed:
            raise RelayError(f"{claimed - len(done)} of {claimed} outbox rows not delivered")
        return len(done)

    def _claim(self, connection: Connection) -> tuple[list[_Row], list[_Row]]:
        """Locks a batch and records where its rows will go; returns (fresh, in doubt)."""
        with connection.begin():
            space = self._space(connection)
            claimed: list[int] = []
            after = 0
            while len(claimed) < self._batch_size:
                limit = self._batch_size - len(claimed)
                ids = list(
                    connection.execute(_CANDIDATES, {"after": after, "limit": limit}).scalars()
                )
                if not ids:
                    break
                locked = connection.execute(_ADVISORY_LOCK, {"ids": ids, "space": space}).scalars()
                claimed.extend(locked)
                after = ids[-1]
            if not claimed:
                return [], []
            rows = connection.execute(_CLAIMED_ROWS, {"ids": claimed}).mappings().all()
            in_doubt = [
                _row(r, r["partition"], r["in_doubt_from"])
                for r in rows
                if r["in_doubt_from"] is not None
            ]
            fresh = self._mark_in_doubt(connection, [r for r in rows if r["in_doubt_from"] is None])
        return fresh, in_doubt

    def _mark_in_doubt(self, connection: Connection, rows: Sequence[Any]) -> list[_Row]:
        placed: list[tuple[Any, int]] = []
        unavailable: dict[str, str] = {}
        for row in rows:
            try:
                placed.append((row, self._partition_of(row["topic"], row["key"], row["id"])))
            except RelayError as exc:
                # A row for a missing topic must not hold back the rows behind it.
                unavailable[row["topic"]] = str(exc)
        for topic, reason in unavailable.items():
            _log.error("outbox rows skipped", extra={"topic": topic, "reason": reason})
        ends = self._end_offsets({(row["topic"], p) for row, p in placed})
        fresh = [_row(row, p, ends[(row["topic"], p)]) for row, p in placed]
        if fresh:
            connection.execute(
                _MARK_IN_DOUBT,
                {
                    "ids": [r.id for r in fresh],
                    "partitions": [r.partition for r in fresh],
                    "starts": [r.in_doubt_from for r in fresh],
                },
            )
        return fresh

    def _release(self, connection: Connection) -> None:
        if connection.in_transaction():
            connection.rollback()
        try:
            connection.execute(_UNLOCK_ALL)
            connection.commit()
        except SQLAlchemyError:
            # A session whose locks cannot be released must not go back to the pool.
            connection.invalidate()
            raise

    def _space(self, connection: Connection) -> int:
        if self._lock_space is None:
            self._lock_space = int(connection.execute(_LOCK_SPACE).scalar_one())
        return self._lock_space

    # -- Kafka -----------------------------------------------------------------------------

    def _partition_of(self, topic: str, key: bytes | None, row_id: int) -> int:
        count = self._partition_counts(topic)
        # Kafka spreads null keys at random; the relay must know the partition beforehand.
        return partition_for(key, count) if key is not None else row_id % count

    def _broker_partition_count(self, topic: str) -> int:
        known = self._known_counts.get(topic)
        now = time.monotonic()
        if known is not None and now - known[1] < self._metadata_max_age_s:
            return known[0]
        metadata = self._reader.list_topics(topic, timeout=self._scan_timeout_s).topics.get(topic)
        if metadata is None or metadata.error is not None or not metadata.partitions:
            reason = metadata.error if metadata is not None else "absent"
            raise RelayError(f"topic {topic!r} is not available: {reason}")
        count = len(metadata.partitions)
        self._known_counts[topic] = (count, now)
        return count

    def _end_offsets(self, partitions: Iterable[tuple[str, int]]) -> dict[tuple[str, int], int]:
        deadline = time.monotonic() + self._scan_timeout_s
        return {place: self._end_offset(*place, deadline=deadline) for place in partitions}

    def _end_offset(self, topic: str, partition: int, *, deadline: float) -> int:
        while True:
            try:
                _, high = self._reader.get_watermark_offsets(
                    TopicPartition(topic, partition),
                    timeout=max(0.5, deadline - time.monotonic()),
                    cached=False,
                )
                return int(high)
            except KafkaException as exc:
                if exc.args[0].code() not in _NOT_READY or time.monotonic() >= deadline:
                    raise
                self._idle.wait(0.1)

    def _already_written(self, rows: Sequence[_Row]) -> set[int]:
        """The rows among ``rows`` whose event is on its partition after ``in_doubt_from``."""
        if not rows:
            return set()
        wanted: dict[tuple[str, int], dict[str, int]] = {}
        starts: dict[tuple[str, int], int] = {}
        for row in rows:
            place = (row.topic, row.partition)
            wanted.setdefault(place, {})[row.event_id] = row.id
            starts[place] = min(starts.get(place, row.in_doubt_from), row.in_doubt_from)
        ends = self._end_offsets(starts)
        open_places = {place: end for place, end in ends.items() if end > starts[place]}
        found: set[int] = set()
        if not open_places:
            return found
        self._reader.assign([TopicPartition(t, p, starts[(t, p)]) for t, p in open_places])
        deadline = time.monotonic() + self._scan_timeout_s
        try:
            while open_places:
                if time.monotonic() > deadline:
                    raise RelayError(
                        f"reading in-doubt ranges took over {self._scan_timeout_s:.0f}s"
                    )
                for message in self._reader.consume(num_messages=500, timeout=0.5):
                    place = _place(message)
                    if place not in open_places:
                        continue
                    if _reached_end(message, open_places[place]):
                        del open_places[place]
                        continue
                    row_id = wanted[place].get(_event_id(message) or "")
                    if row_id is not None:
                        found.add(row_id)
        finally:
            self._reader.unassign()
        return found

    def _send(self, rows: Sequence[_Row]) -> set[int]:
        """Produces ``rows`` and returns the ids of those the broker acknowledged."""
        delivered: set[int] = set()
        failures: list[KafkaError] = []

        def report(row_id: int) -> Callable[[KafkaError | None, Message], None]:
            def settle(error: KafkaError | None, _: Message) -> None:
                if error is None:
                    delivered.add(row_id)
                else:
                    failures.append(error)

            return settle

        for row in rows:
            self._produce(row, report(row.id))
        remaining = self._producer.flush(self._delivery_timeout_s + 10)
        if failures:
            _log.warning(
                "outbox deliveries failed",
                extra={"failed": len(failures), "first": failures[0].str()},
            )
            if any(error.fatal() for error in failures):
                self._renew_producer()
        if remaining:
            # Reports are owed within message.timeout.ms; a producer that still owes them is
            # unusable, and the rows stay in doubt for the next cycle to resolve.
            self._renew_producer()
            raise RelayError(f"{remaining} outbox deliveries unacknowledged")
        return delivered

    def _produce(
        self, row: _Row, on_delivery: Callable[[KafkaError | None, Message], None]
    ) -> None:
        while True:
            try:
                self._producer.produce(
                    row.topic,
                    value=row.value,
                    key=row.key,
                    headers=row.headers,
                    partition=row.partition,
                    on_delivery=on_delivery,
                )
                return
            except BufferError:
                self._producer.poll(0.1)

    def _renew_producer(self) -> None:
        self._producer.purge(in_queue=True, in_flight=False)
        self._producer = Producer(self._producer_config)

    def close(self) -> None:
        self._producer.flush(self._delivery_timeout_s)
        self._reader.close()

    def __enter__(self) -> OutboxRelay:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _row(record: Any, partition: int, in_doubt_from: int) -> _Row:
    pairs = [(str(name), str(value)) for name, value in record["headers"]]
    event_id = header_id(pairs) or str(record["event_id"])
    headers: list[tuple[str, str | bytes | None]] = [(n, v.encode()) for n, v in pairs]
    return _Row(
        id=record["id"],
        event_id=event_id,
        topic=record["topic"],
        key=record["key"],
        value=record["value"],
        headers=headers,
        partition=partition,
        in_doubt_from=in_doubt_from,
    )


def _place(message: Message) -> tuple[str, int]:
    error = message.error()
    if error is not None and error.code() != KafkaError._PARTITION_EOF:
        raise KafkaException(error)
    topic, partition = message.topic(), message.partition()
    if topic is None or partition is None:
        raise KafkaException(KafkaError(KafkaError._BAD_MSG, "record without a partition"))
    return topic, partition


def _event_id(message: Message) -> str | None:
    headers = message.headers() or []
    return header_id(headers.items() if isinstance(headers, dict) else headers)


def _reached_end(message: Message, end: int) -> bool:
    """True at the partition's end; the record at ``end - 1`` is still to be looked at."""
    if message.error() is not None:
        return True
    _, _, offset = record_position(message)
    return offset >= end
