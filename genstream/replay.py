"""Replay export: a time range of the event log, as Parquet files for analysis.

For each topic (the lifecycle and the credit ledger by default) the start of the range is
found per partition with ``offsets_for_times``, and reading stops at the end offsets taken
when the export began, or at the first record stamped at or after the end of the range. The
range is by record timestamp (when the event was produced); the envelope's own ``time`` is
a column. Each file has one row per event id: copies written again after a crash (which
share their id) are dropped, as are records that do not decode as a known event.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, Final, TypeVar

import pyarrow as pa
import pyarrow.parquet as pq
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from contracts import (
    CREDITS_LEDGER,
    JOBS_LIFECYCLE,
    ContractError,
    Envelope,
    JobAccepted,
    JobCancelled,
    JobCompleted,
    JobExpired,
    JobFailed,
    JobPreview,
    JobProgress,
    JobQueued,
    JobRejected,
    JobRequested,
    JobRetried,
    JobStarted,
    JobStatus,
    decode,
)
from genstream.kafka import KafkaSettings
from genstream.kafka.records import record_headers

__all__ = ["DEFAULT_TOPICS", "SCHEMA", "TopicExport", "export_range", "parse_instant"]

DEFAULT_TOPICS: Final = (JOBS_LIFECYCLE.name, CREDITS_LEDGER.name)

SCHEMA: Final = pa.schema(
    [
        ("event_id", pa.string()),
        ("type", pa.string()),
        ("time", pa.timestamp("us", tz="UTC")),
        ("source", pa.string()),
        ("subject", pa.string()),
        ("user_id", pa.string()),
        ("job_id", pa.string()),
        ("trace", pa.string()),
        ("status", pa.string()),
        ("job_type", pa.string()),
        ("tier", pa.string()),
        ("amount", pa.int64()),
        ("worker_id", pa.string()),
        ("attempt", pa.int32()),
        ("error_code", pa.string()),
        ("reason", pa.string()),
        ("data", pa.string()),
        ("topic", pa.string()),
        ("partition", pa.int32()),
        ("offset", pa.int64()),
        ("record_time", pa.timestamp("ms", tz="UTC")),
    ]
)
"""One row per event; ``data`` is the event's data as JSON, the columns before it flatten
what most questions ask (null where the event has no such field)."""

_STATUS: Final[dict[type[Any], JobStatus]] = {
    JobRequested: JobStatus.PENDING,
    JobAccepted: JobStatus.ACCEPTED,
    JobRejected: JobStatus.REJECTED,
    JobQueued: JobStatus.QUEUED,
    JobStarted: JobStatus.RUNNING,
    JobProgress: JobStatus.RUNNING,
    JobPreview: JobStatus.RUNNING,
    JobCompleted: JobStatus.COMPLETED,
    JobFailed: JobStatus.FAILED,
    JobRetried: JobStatus.QUEUED,
    JobCancelled: JobStatus.CANCELLED,
    JobExpired: JobStatus.EXPIRED,
}
"""The job status each lifecycle event moves its job to."""

T = TypeVar("T")

# Answers that a moment later are different; librdkafka does not flag all of them retriable.
_TRANSIENT: Final = frozenset(
    {
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        KafkaError._TRANSPORT,
        KafkaError._TIMED_OUT,
    }
)

_ROWS_PER_GROUP: Final = 10_000
_POLL_S: Final = 0.5


@dataclass(frozen=True, slots=True)
class TopicExport:
    topic: str
    path: Path
    written: int
    """Rows in the file: distinct events in the range."""
    duplicates: int
    """Copies of an event already written, dropped."""
    undecodable: int
    """Records in the range that are not a valid event, skipped."""


def parse_instant(text: str) -> datetime:
    """An ISO 8601 instant; one without an offset is taken as UTC."""
    moment = datetime.fromisoformat(text.strip())
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _row(envelope: Envelope[Any], message: Message, record_ms: int) -> dict[str, Any]:
    data = envelope.data.model_dump(mode="json")
    status = _STATUS.get(type(envelope.data))
    topic, partition, offset = message.topic(), message.partition(), message.offset()
    return {
        "event_id": envelope.id,
        "type": envelope.type,
        "time": envelope.time,
        "source": envelope.source,
        "subject": envelope.subject,
        "user_id": envelope.user_id,
        "job_id": data.get("job_id"),
        "trace": envelope.trace,
        "status": status.value if status else None,
        "job_type": data.get("job_type"),
        "tier": data.get("tier"),
        "amount": data.get("amount"),
        "worker_id": data.get("worker_id"),
        "attempt": data.get("attempt"),
        "error_code": data.get("error_code"),
        "reason": data.get("reason"),
        "data": json.dumps(data, separators=(",", ":"), ensure_ascii=False),
        "topic": topic,
        "partition": partition,
        "offset": offset,
        "record_time": datetime.fromtimestamp(record_ms / 1000, UTC),
    }


def _retrying(call: Callable[[], T], deadline: float) -> T:
    """``call()``, again while the cluster answers with a transient error (a leader moving, a
    topic just created) and the deadline allows."""
    while True:
        try:
            return call()
        except KafkaException as error:
            reason = error.args[0]
            transient = reason.retriable() or reason.code() in _TRANSIENT
            if not transient or time.monotonic() >= deadline:
                raise
        time.sleep(0.1)


class _RangeReader:
    """The records of one topic from ``start`` up to the end offsets seen at construction."""

    def __init__(
        self,
        consumer: Consumer,
        topic: str,
        *,
        start: datetime,
        end: datetime,
        timeout_s: float,
    ) -> None:
        self._consumer = consumer
        self._topic = topic
        self._end_ms = _ms(end)
        self._timeout_s = timeout_s
        deadline = time.monotonic() + timeout_s

        def partitions_of() -> list[int]:
            metadata = consumer.list_topics(topic, timeout=timeout_s).topics.get(topic)
            if metadata is None or metadata.error is not None or not metadata.partitions:
                missing = KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART, f"no topic {topic}")
                raise KafkaException(missing)
            return sorted(metadata.partitions)

        partitions = _retrying(partitions_of, deadline)

        def end_of(partition: int) -> int:
            _, high = consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=timeout_s, cached=False
            )
            return int(high)

        self._ends = {p: _retrying(partial(end_of, p), deadline) for p in partitions}
        found = _retrying(
            lambda: consumer.offsets_for_times(
                [TopicPartition(topic, p, _ms(start)) for p in partitions], timeout=timeout_s
            ),
            deadline,
        )
        # An offset of -1 means no record at or after the start in that partition.
        self._starts = {
            tp.partition: tp.offset for tp in found if 0 <= tp.offset < self._ends[tp.partition]
        }

    def __iter__(self) -> Iterator[tuple[Message, int]]:
        """Records in the range, with their timestamps in milliseconds."""
        remaining = set(self._starts)
        if not remaining:
            return
        self._consumer.assign([TopicPartition(self._topic, p, o) for p, o in self._starts.items()])
        idle_since = time.monotonic()
        try:
            while remaining:
                messages = self._consumer.consume(num_messages=1000, timeout=_POLL_S)
                for message in messages:
                    error = message.error()
                    if error is not None:
                        if error.code() == KafkaError._PARTITION_EOF:
                            continue
                        raise KafkaException(error)
                    partition, offset = message.partition(), message.offset()
                    if partition not in remaining or offset is None:
                        continue
                    _, stamp = message.timestamp()
                    if stamp >= self._end_ms or offset >= self._ends[partition]:
                        remaining.discard(partition)
                        continue
                    yield message, stamp
                # Positions rather than record offsets: they also step over transaction markers.
                positions = self._consumer.position(
                    [TopicPartition(self._topic, p) for p in remaining]
                )
                for tp in positions:
                    if tp.offset >= self._ends[tp.partition]:
                        remaining.discard(tp.partition)
                if messages:
                    idle_since = time.monotonic()
                elif time.monotonic() - idle_since > self._timeout_s:
                    raise TimeoutError(
                        f"{self._topic}: no records for {self._timeout_s:.0f}s before the end "
                        f"offsets of partitions {sorted(remaining)}"
                    )
        finally:
            self._consumer.unassign()


def _export_topic(
    consumer: Consumer,
    topic: str,
    *,
    start: datetime,
    end: datetime,
    out_dir: Path,
    timeout_s: float,
) -> TopicExport:
    reader = _RangeReader(consumer, topic, start=start, end=end, timeout_s=timeout_s)
    path = out_dir / f"{topic}.parquet"
    unfinished = path.with_name(path.name + ".partial")
    seen: set[str] = set()
    duplicates = undecodable = 0
    rows: list[dict[str, Any]] = []
    with pq.ParquetWriter(unfinished, SCHEMA) as writer:
        for message, stamp in reader:
            try:
                envelope = decode(message.value(), record_headers(message))
            except ContractError:
                undecodable += 1
                continue
            if envelope.id in seen:
                duplicates += 1
                continue
            seen.add(envelope.id)
            rows.append(_row(envelope, message, stamp))
            if len(rows) >= _ROWS_PER_GROUP:
                writer.write_table(pa.Table.from_pylist(rows, schema=SCHEMA))
                rows.clear()
        writer.write_table(pa.Table.from_pylist(rows, schema=SCHEMA))
    unfinished.replace(path)
    return TopicExport(
        topic=topic, path=path, written=len(seen), duplicates=duplicates, undecodable=undecodable
    )


def export_range(
    kafka: KafkaSettings,
    *,
    start: datetime,
    end: datetime,
    out_dir: Path,
    topics: Sequence[str] = DEFAULT_TOPICS,
    timeout_s: float = 30.0,
) -> list[TopicExport]:
    """Writes ``<out_dir>/<topic>.parquet`` for each topic: its events in ``[start, end)``."""
    if end <= start:
        raise ValueError("the end of the range must be after its start")
    out_dir.mkdir(parents=True, exist_ok=True)
    overrides: dict[str, str | int | float | bool] = {
        # Assigned partitions only: the group is never joined and nothing is committed.
        "group.id": f"genstream-replay-{uuid.uuid4().hex[:12]}",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
    }
    consumer = Consumer(kafka.librdkafka(**overrides))
    try:
        return [
            _export_topic(
                consumer, topic, start=start, end=end, out_dir=out_dir, timeout_s=timeout_s
            )
            for topic in topics
        ]
    finally:
        consumer.close()
