"""One workload's worker: reads its tier topics, schedules across tiers, runs one job at a time.

The consumer keeps polling while a job runs (in its own thread), so the group never takes a
long job for a dead worker, and the tier buffers keep showing the scheduler what waits: a
pro job that arrives during a long free job is the next to start. A dispatch is committed
only once the runner has written the job's end and the brokers acknowledged it; a worker
that dies mid-job leaves it uncommitted, and the group hands it to another worker.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from contracts import ContractError, Envelope, ImageGenerateInput, JobQueued, decode
from genstream.kafka.deadletter import DeadLetters
from genstream.kafka.records import record_headers
from gpu_consumers import metrics
from gpu_consumers.dispatch import Buffered, DispatchBuffers
from gpu_consumers.runner import JobRunner, Outcome
from gpu_consumers.scheduling import TierScheduler
from gpu_consumers.settings import WorkerSettings
from gpu_consumers.topology import WorkerTopology

__all__ = ["Worker"]

_log = logging.getLogger(__name__)

_JOIN_GRACE_S = 30.0
"""The longest a starting worker waits for all its tier consumers to join before working."""
_TICK_S = 0.005
"""How long the loop waits on one thing before looking at the others again."""

Dispatch = Envelope[JobQueued] | None
"""A decoded dispatch, or ``None`` for a record already parked that only needs committing."""


class NotADispatchError(ContractError):
    """A valid event that does not belong on a tier topic."""


class Worker:
    def __init__(
        self,
        settings: WorkerSettings,
        *,
        topology: WorkerTopology,
        runner: JobRunner,
        dead_letters: DeadLetters,
    ) -> None:
        self._settings = settings
        self._topology = topology
        self._runner = runner
        self._dead_letters = dead_letters
        session_ms = int(settings.worker_session_timeout_s * 1000)
        options: dict[str, str | int | float | bool] = {
            "group.id": settings.group_id,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "partition.assignment.strategy": "cooperative-sticky",
            "session.timeout.ms": session_ms,
            "heartbeat.interval.ms": max(1000, session_ms // 5),
        }
        # One consumer per tier, all in the workload's group: the group's assignor then spreads
        # each tier's partitions over the workers (members take only what they subscribe
        # to), where one consumer of all three topics could leave every pro partition to a
        # single worker and the others without pro work.
        self._consumers = {
            spec.name: Consumer(settings.kafka.librdkafka(**options))
            for spec in topology.tiers.values()
        }
        self._first = next(iter(self._consumers.values()))
        self._started = time.monotonic()
        self._buffers: DispatchBuffers[Dispatch] = DispatchBuffers(settings.worker_prefetch)
        self._scheduler = TierScheduler(settings.shares)
        self._paused: set[tuple[str, int]] = set()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="job")
        self._running: tuple[list[Buffered[Dispatch]], Future[list[Outcome]]] | None = None
        self.assigned = threading.Event()
        """Set once every tier consumer has had its first assignment (tests, readiness)."""
        self._joined: set[int] = set()
        """Set once the group has given this worker partitions (tests and readiness)."""

    # -- group membership ----------------------------------------------------------------------
    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        _log.info("partitions assigned: %s", _names(partitions))
        self._joined.add(id(consumer))
        if len(self._joined) == len(self._consumers):
            self.assigned.set()

    def _on_revoke(self, _: Consumer, partitions: list[TopicPartition]) -> None:
        gone = [(tp.topic, tp.partition) for tp in partitions]
        dropped = self._buffers.drop(gone)
        self._paused.difference_update(gone)
        _log.info("partitions revoked: %s (%d read-ahead jobs let go)", _names(partitions), dropped)

    # -- the loop ------------------------------------------------------------------------------
    def run(self, stop: threading.Event, *, drain_timeout_s: float = 600.0) -> None:
        self._started = time.monotonic()
        for topic, consumer in self._consumers.items():
            consumer.subscribe(
                [topic],
                on_assign=self._on_assign,
                on_revoke=self._on_revoke,
                on_lost=self._on_revoke,
            )
        try:
            while not stop.is_set():
                # Work waiting and the device free: no reason to wait for anything.
                ready = self._running is None and len(self._buffers) > 0
                self._read(0.0 if ready else 0.5)
                self._finish_if_done()
                if self._running is None:
                    self._start_next()
            self._drain(drain_timeout_s)
        finally:
            self._executor.shutdown(wait=False, cancel_futures=True)
            for consumer in self._consumers.values():
                consumer.close()

    def _drain(self, timeout_s: float) -> None:
        """On a clean stop, lets the running job end (and commit) before leaving the group."""
        deadline = time.monotonic() + timeout_s
        while self._running is not None and time.monotonic() < deadline:
            for consumer in self._consumers.values():
                consumer.poll(0.03)  # stays in the group meanwhile; new records are dropped
            self._finish_if_done()

    def _read(self, timeout: float) -> None:
        """Takes in what the tier consumers hold; waits up to ``timeout`` for something to
        happen (a record, or the running job's end), in short ticks.

        ``consume`` with a timeout returns only when it has its whole count or the time is
        up, so each consumer is read without waiting, and the waiting happens on whatever
        can end it early.
        """
        deadline = time.monotonic() + timeout
        while True:
            messages = [
                message
                for consumer in self._consumers.values()
                for message in consumer.consume(num_messages=100, timeout=0)
            ]
            if messages:
                self._take(messages)
                return
            left = deadline - time.monotonic()
            if left <= 0:
                return
            tick = min(left, _TICK_S)
            if self._running is not None:
                futures_wait([self._running[1]], timeout=tick)
                if self._running[1].done():
                    return
            else:
                # Any one consumer's poll returns as soon as it has a record.
                message = self._first.poll(tick)
                if message is not None:
                    self._take([message])
                    return

    def _take(self, messages: list[Message]) -> None:
        for message in messages:
            error = message.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    _log.warning("read error: %s", error)
                continue
            topic, partition = message.topic() or "", message.partition() or 0
            entry = Buffered(
                tier=self._topology.tier_of(topic),
                topic=topic,
                partition=partition,
                offset=message.offset() or 0,
                item=self._decode(message),
            )
            if self._buffers.add(entry) and (topic, partition) not in self._paused:
                self._consumers[topic].pause([TopicPartition(topic, partition)])
                self._paused.add((topic, partition))

    def _decode(self, message: Message) -> Dispatch:
        try:
            envelope: Envelope[Any] = decode(message.value(), record_headers(message))
            if not isinstance(envelope.data, JobQueued):
                raise NotADispatchError(f"{envelope.type} does not belong on a tier topic")
        except ContractError as error:
            metrics.DEAD_LETTERS.labels("undecodable").inc()
            self._dead_letters(message, error)
            return None
        return envelope

    def _start_next(self) -> None:
        if not self.assigned.is_set() and time.monotonic() < self._started + _JOIN_GRACE_S:
            # The tiers join the group one after another: starting before all have their
            # partitions would run free jobs while pro ones wait unseen.
            return
        tier = self._scheduler.pick(self._buffers.waiting())
        if tier is None:
            return
        entry = self._buffers.take(tier)
        if entry.item is None:
            self._resume_if_room(entry)
            self._commit(entry)
            return
        batch = [entry, *self._companions(entry.item)]
        for taken in batch:
            self._resume_if_room(taken)
        jobs = [(taken.item, taken.tier) for taken in batch if taken.item is not None]
        self._running = (batch, self._executor.submit(self._runner.handle_batch, jobs))

    def _companions(self, first: Envelope[JobQueued]) -> list[Buffered[Dispatch]]:
        """Jobs that can run in one batch with ``first``, waiting up to the batch wait."""
        room = self._settings.worker_max_batch - 1
        key = batch_key(first.data)
        if room <= 0 or key is None:
            return []

        def compatible(entry: Buffered[Dispatch]) -> bool:
            return entry.item is not None and batch_key(entry.item.data) == key

        found = self._buffers.take_heads(compatible, room)
        deadline = time.monotonic() + self._settings.worker_batch_wait_ms / 1000
        while len(found) < room and (left := deadline - time.monotonic()) > 0:
            self._read(left)
            found += self._buffers.take_heads(compatible, room - len(found))
        return found

    def _resume_if_room(self, entry: Buffered[Any]) -> None:
        key = (entry.topic, entry.partition)
        if key in self._paused and self._buffers.count(*key) < self._buffers.limit:
            self._consumers[entry.topic].resume([TopicPartition(*key)])
            self._paused.discard(key)

    def _finish_if_done(self) -> None:
        if self._running is None or not self._running[1].done():
            return
        batch, future = self._running
        self._running = None
        try:
            future.result()
        except Exception:
            # A job's end could not be written: run the jobs again rather than lose one.
            _log.exception("a job's end was not written; reading its dispatch again")
            earliest: dict[tuple[str, int], Buffered[Dispatch]] = {}
            for entry in batch:
                key = (entry.topic, entry.partition)
                if key not in earliest or entry.offset < earliest[key].offset:
                    earliest[key] = entry
            for entry in earliest.values():
                self._rewind(entry)
            return
        for entry in batch:
            self._commit(entry)

    def _commit(self, entry: Buffered[Any]) -> None:
        position = TopicPartition(entry.topic, entry.partition, entry.offset + 1)
        try:
            self._consumers[entry.topic].commit(offsets=[position], asynchronous=False)
        except KafkaException as exc:
            # The partition moved to another worker, which reads the job again and finds it
            # finished; nothing is lost.
            _log.warning("commit after a job failed: %s", exc)

    def _rewind(self, entry: Buffered[Any]) -> None:
        key = (entry.topic, entry.partition)
        self._buffers.drop([key])
        try:
            self._consumers[entry.topic].seek(
                TopicPartition(entry.topic, entry.partition, entry.offset)
            )
        except KafkaException as exc:
            _log.warning("rewinding %s failed: %s", key, exc)
        if key in self._paused:
            self._consumers[entry.topic].resume([TopicPartition(*key)])
            self._paused.discard(key)


def batch_key(job: JobQueued) -> tuple[object, ...] | None:
    """What jobs must share to run as one batch; None for a job that runs alone."""
    match job.input:
        case ImageGenerateInput():
            given = job.input
            return (job.job_type, given.width, given.height, given.steps, given.guidance)
    return None


def _names(partitions: list[TopicPartition]) -> str:
    return ", ".join(f"{tp.topic}[{tp.partition}]" for tp in partitions) or "none"
