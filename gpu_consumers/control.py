"""What a worker must know about jobs besides their dispatch: cancelled, or already finished.

A background thread reads every partition of the lifecycle and command topics from a
look-back window (longer than any queue deadline) onwards, outside any consumer group,
and remembers the jobs whose cancellation was asked for and those that reached an end.
The worker asks it before starting a job (a dispatch seen again after a crash, or a job
cancelled or expired while queued, is not run) and between the steps of a running one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from typing import Final

from confluent_kafka import Consumer, KafkaError, Message, TopicPartition

from contracts import (
    ContractError,
    JobCancelled,
    JobCancelRequested,
    JobCompleted,
    JobExpired,
    JobFailed,
    TopicSpec,
    decode,
)
from contracts.codec import header_type
from genstream.kafka import KafkaSettings
from genstream.kafka.records import record_headers
from gpu_consumers.metrics import CONTROL_RECORDS

__all__ = ["JobControl"]

_log = logging.getLogger(__name__)

_WANTED: Final = frozenset(
    model.wire_type()
    for model in (JobCancelRequested, JobCancelled, JobCompleted, JobFailed, JobExpired)
)
REMEMBERED: Final = 1_000_000
"""Jobs remembered per kind; the oldest are forgotten first."""
_FETCH_MIN_BYTES: Final = 256 * 1024
_FETCH_WAIT_MS: Final = 100


class JobControl:
    def __init__(
        self,
        settings: KafkaSettings,
        *,
        lifecycle: TopicSpec,
        requested: TopicSpec,
        lookback_s: int,
    ) -> None:
        options: dict[str, str | int | float | bool] = {
            "group.id": "genstream-worker-control",  # never joins: positions assigned
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
            # Every worker reads every lifecycle record. Left to answer as soon as one byte
            # is there, each reader's fetches under load carry a record or two apiece, and
            # the broker's CPU goes on answering them; a cancellation may wait this long.
            "fetch.min.bytes": _FETCH_MIN_BYTES,
            "fetch.wait.max.ms": _FETCH_WAIT_MS,
        }
        self._consumer = Consumer(settings.librdkafka("worker-control", **options))
        since_ms = int((time.time() - lookback_s) * 1000)
        wanted = [
            TopicPartition(spec.name, partition, since_ms)
            for spec in (lifecycle, requested)
            for partition in range(spec.partitions)
        ]
        start = self._consumer.offsets_for_times(wanted, timeout=30)
        # A partition with nothing newer than the window answers -1: start at its end.
        self._consumer.assign(
            [
                TopicPartition(tp.topic, tp.partition, tp.offset if tp.offset >= 0 else -1)
                for tp in start
            ]
        )
        self._behind = {(tp.topic, tp.partition) for tp in start}
        self._caught_up = threading.Event()
        self._lock = threading.Lock()
        self._cancel_asked: OrderedDict[str, str] = OrderedDict()
        self._finished: OrderedDict[str, str] = OrderedDict()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="job-control", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wait_caught_up(self, timeout_s: float) -> bool:
        """True once everything written before the start has been read."""
        return self._caught_up.wait(timeout_s)

    def cancel_reason(self, job_id: str) -> str | None:
        with self._lock:
            return self._cancel_asked.get(job_id)

    def finished(self, job_id: str) -> str | None:
        """How the job ended (the terminal event's type), if it did."""
        with self._lock:
            return self._finished.get(job_id)

    def note_finished(self, job_id: str, how: str) -> None:
        """Records an end this worker wrote itself, before it comes back from the topic."""
        with self._lock:
            _remember(self._finished, job_id, how)

    def stop(self) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(10)
        self._consumer.close()

    def _run(self) -> None:
        while not self._stopping.is_set():
            # Waits for one record, then takes what else has arrived in one call: every
            # worker reads every lifecycle record, most of them unwanted. (``consume`` with a
            # timeout would wait out the whole of it unless its count were reached.)
            first = self._consumer.poll(0.5)
            if first is None:
                continue
            records = int(self._take(first))
            for message in self._consumer.consume(num_messages=500, timeout=0):
                records += self._take(message)
            CONTROL_RECORDS.inc(records)

    def _take(self, message: Message) -> bool:
        """Notes what the message says; False when it is no record (an end of partition, an
        error)."""
        error = message.error()
        if error is not None:
            if error.code() == KafkaError._PARTITION_EOF:
                self._behind.discard((message.topic() or "", message.partition() or 0))
                if not self._behind:
                    self._caught_up.set()
            else:
                _log.warning("job control read error: %s", error)
            return False
        headers = record_headers(message)
        kind = header_type(headers) or ""
        if kind not in _WANTED:
            return True
        try:
            data = decode(message.value(), headers).data
        except ContractError:
            return True  # the record's own consumers park it; here it says nothing
        with self._lock:
            if isinstance(data, JobCancelRequested):
                _remember(self._cancel_asked, data.job_id, data.reason or "cancelled")
            elif isinstance(data, JobCancelled | JobCompleted | JobFailed | JobExpired):
                _remember(self._finished, data.job_id, data.wire_type())
        return True


def _remember(table: OrderedDict[str, str], job_id: str, value: str) -> None:
    table[job_id] = value
    table.move_to_end(job_id)
    while len(table) > REMEMBERED:
        table.popitem(last=False)
