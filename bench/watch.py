"""Clocks that note when each job's events reach the benchmark (``time.time()`` on arrival).

Latencies are taken from the benchmark's own receive time against the time it scheduled the
request, both on this machine's wall clock; no server's timestamp enters them.
``LifecycleClock`` reads genstream's lifecycle topic (the job id is the record key, the event
type a header, so nothing is decoded); the peer's clock listens to its Redis channel.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Iterable

from confluent_kafka import Consumer, Message, TopicPartition

from contracts import TopicSpec
from contracts.codec import header_type
from genstream.kafka import KafkaSettings
from genstream.kafka.records import record_headers

__all__ = ["EventClock", "LifecycleClock", "short_type"]


def short_type(wire_type: str) -> str:
    """``genstream.job.started.v1`` → ``started``."""
    parts = wire_type.split(".")
    return parts[2] if len(parts) >= 4 else wire_type


class EventClock:
    """First arrival time of each (event kind, job id); fed by a reader thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: dict[str, dict[str, float]] = defaultdict(dict)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def note(self, kind: str, job_id: str, at: float) -> None:
        with self._lock:
            self._seen[kind].setdefault(job_id, at)

    def times(self, kind: str, job_ids: Iterable[str]) -> dict[str, float]:
        with self._lock:
            seen = self._seen.get(kind, {})
            return {job_id: seen[job_id] for job_id in job_ids if job_id in seen}

    def count(self, kind: str, job_ids: Iterable[str]) -> int:
        return len(self.times(kind, job_ids))

    def wait_for(self, kind: str, job_ids: Iterable[str], *, timeout_s: float) -> dict[str, float]:
        """Arrival times of ``kind`` for the jobs, once all have arrived or the time is up."""
        wanted = list(job_ids)
        deadline = time.monotonic() + timeout_s
        while True:
            found = self.times(kind, wanted)
            if len(found) == len(wanted) or time.monotonic() > deadline:
                return found
            time.sleep(0.05)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=type(self).__name__, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(10)

    def _run(self) -> None:
        raise NotImplementedError


class LifecycleClock(EventClock):
    def __init__(self, settings: KafkaSettings, lifecycle: TopicSpec, group: str) -> None:
        super().__init__()
        self.group = group
        self._consumer = Consumer(settings.librdkafka("bench-watch", **{"group.id": group}))
        self._consumer.assign(
            [TopicPartition(lifecycle.name, p, 0) for p in range(lifecycle.partitions)]
        )

    def _run(self) -> None:
        try:
            while not self._stopping.is_set():
                # poll returns as soon as a record arrives (consume would wait out its timeout,
                # which would add to every latency); what else is already here follows at once.
                first = self._consumer.poll(0.05)
                if first is None:
                    continue
                at = time.time()
                for message in [first, *self._consumer.consume(num_messages=1000, timeout=0)]:
                    self._note_record(message, at)
        finally:
            self._consumer.close()

    def _note_record(self, message: Message, at: float) -> None:
        if message.error() is not None:
            return
        key = message.key()
        if key is None:
            return
        kind = header_type(record_headers(message))
        if kind is not None:
            self.note(short_type(kind), _text(key), at)


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
