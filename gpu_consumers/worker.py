"""One workload's worker: reads its tier topics, schedules across tiers, runs one job at a time.

The consumer keeps polling while a job runs (in its own thread), so the group never takes a
long job for a dead worker, and the tier buffers keep showing the scheduler what waits: a
pro job that arrives during a long free job is the next to start. A job's end (its output
upload and end write) is finished in a second thread while the next job runs, so the device
does not wait on the brokers or the object store between jobs; at most one finish is in
flight, and finishes are committed in the order the jobs ran.

A dispatch is committed only once the runner has written the job's end and the brokers
acknowledged it; a worker that dies mid-job leaves it uncommitted, and the group hands it to
another worker. When an end cannot be written, its jobs and any running after them are read
again, and nothing behind them is committed first.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from contracts import ContractError, Envelope, ImageGenerateInput, JobQueued, decode
from genstream.kafka.deadletter import DeadLetters
from genstream.kafka.records import record_headers
from gpu_consumers import metrics
from gpu_consumers.dispatch import Buffered, DispatchBuffers
from gpu_consumers.runner import Finish, JobRunner, Outcome
from gpu_consumers.scheduling import TierScheduler
from gpu_consumers.settings import WorkerSettings
from gpu_consumers.startup import StartupGate
from gpu_consumers.topology import WorkerTopology

__all__ = ["Worker"]

_log = logging.getLogger(__name__)

_JOIN_GRACE_S = 30.0
"""The longest a starting worker waits for its tiers to join and show their backlog."""
_TICK_S = 0.005
"""How long the loop waits on one thing before looking at the others again."""
_COMMIT_EVERY_S = 0.2
"""How long a finished job's offset may wait to be committed with those after it: one
commit per partition and interval instead of one request to the brokers per job."""

Dispatch = Envelope[JobQueued] | None
"""A decoded dispatch, or ``None`` for a record already parked that only needs committing."""

Batch = list[Buffered[Dispatch]]


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
            # The end of a partition tells a starting worker it has seen what waits there.
            "enable.partition.eof": True,
        }
        # One consumer per tier, all in the workload's group: the group's assignor then spreads
        # each tier's partitions over the workers (members take only what they subscribe
        # to), where one consumer of all three topics could leave every pro partition to a
        # single worker and the others without pro work.
        config = settings.kafka.librdkafka("worker-tier", **options)
        self._consumers = {
            spec.name: Consumer({**config, "on_commit": _commit_failed_note})
            for spec in topology.tiers.values()
        }
        self._topics = {id(consumer): topic for topic, consumer in self._consumers.items()}
        self._first = next(iter(self._consumers.values()))
        self._gate = StartupGate(self._consumers, grace_s=_JOIN_GRACE_S)
        self._working = False
        self._buffers: DispatchBuffers[Dispatch] = DispatchBuffers(settings.worker_prefetch)
        self._scheduler = TierScheduler(settings.shares)
        self._paused: set[tuple[str, int]] = set()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="job")
        self._finisher = ThreadPoolExecutor(1, thread_name_prefix="job-end")
        self._running: tuple[Batch, Future[Finish]] | None = None
        self._ending: tuple[Batch, Future[list[Outcome]]] | None = None
        self._to_commit: dict[tuple[str, int], int] = {}
        """Each partition's next offset to commit, once the interval is up."""
        self._commit_due = 0.0
        self._redo: Batch = []
        """Dispatches to read again once nothing is in flight: an end was not written."""

    # -- group membership ----------------------------------------------------------------------
    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        _log.info("partitions assigned: %s", _names(partitions))
        self._gate.assigned(self._topics[id(consumer)], _keys(partitions))

    def _on_revoke(self, _: Consumer, partitions: list[TopicPartition]) -> None:
        gone = _keys(partitions)
        self._gate.revoked(gone)
        # Before the partitions go: their next owner starts past the jobs finished here.
        self._flush_commits(gone)
        dropped = self._buffers.drop(gone)
        self._paused.difference_update(gone)
        _log.info("partitions revoked: %s (%d read-ahead jobs let go)", _names(partitions), dropped)

    # -- the loop ------------------------------------------------------------------------------
    def run(self, stop: threading.Event, *, drain_timeout_s: float = 600.0) -> None:
        self._gate.restart()
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
                ready = self._free() and len(self._buffers) > 0
                self._read(0.0 if ready else 0.5)
                self._settle()
                if self._free():
                    self._start_next()
                if self._to_commit and (
                    time.monotonic() >= self._commit_due or not self._in_flight()
                ):
                    self._flush_commits()
            self._drain(drain_timeout_s)
            self._flush_commits(wait=True)
        finally:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._finisher.shutdown(wait=False, cancel_futures=True)
            for consumer in self._consumers.values():
                consumer.close()

    def _free(self) -> bool:
        """Whether the next job may start: nothing running and nothing to read again."""
        return self._running is None and not self._redo

    def _in_flight(self) -> list[Future[Any]]:
        return [work[1] for work in (self._running, self._ending) if work is not None]

    def _drain(self, timeout_s: float) -> None:
        """On a clean stop, lets the running job end (and commit) before leaving the group."""
        deadline = time.monotonic() + timeout_s
        while self._in_flight() and time.monotonic() < deadline:
            for consumer in self._consumers.values():
                consumer.poll(0.03)  # stays in the group meanwhile; new records are dropped
            self._settle()

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
            if in_flight := self._in_flight():
                done, _ = futures_wait(in_flight, timeout=tick, return_when=FIRST_COMPLETED)
                if done:
                    return
            else:
                # Any one consumer's poll returns as soon as it has a record.
                message = self._first.poll(tick)
                if message is not None:
                    self._take([message])
                    return

    def _take(self, messages: list[Message]) -> None:
        for message in messages:
            topic, partition = message.topic() or "", message.partition() or 0
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    self._gate.read((topic, partition))
                else:
                    _log.warning("read error: %s", error)
                continue
            self._gate.read((topic, partition))
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
        if not self._gate.is_open():
            # Starting before every tier has shown its backlog would run free jobs while pro
            # ones wait unseen.
            return
        if not self._working:
            self._working = True
            _log.info(
                "starting work: %s after %.2f s",
                "every tier read" if self._gate.caught_up else "grace period over",
                self._gate.waited_s,
            )
        tier = self._scheduler.pick(self._buffers.waiting())
        if tier is None:
            return
        entry = self._buffers.take(tier)
        if entry.item is None:
            self._resume_if_room(entry)
            if self._ending is not None:
                # Committing a parked record must not pass an end still being written.
                futures_wait([self._ending[1]])
                self._close_ending()
            if self._redo:
                self._redo.append(entry)
            else:
                self._commit(entry)
            return
        batch = [entry, *self._companions(entry.item)]
        for taken in batch:
            self._resume_if_room(taken)
        jobs = [(taken.item, taken.tier) for taken in batch if taken.item is not None]
        if self._ending is not None and _job_ids(batch) & _job_ids(self._ending[0]):
            # The same job read again: the runner knows it finished only once its end is written.
            futures_wait([self._ending[1]])
            self._close_ending()
        if self._redo:
            self._redo += batch
            return
        self._running = (batch, self._executor.submit(self._runner.start_batch, jobs))

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
            if self._ending is not None and self._ending[1].done():
                self._close_ending()
            found += self._buffers.take_heads(compatible, room - len(found))
        return found

    def _resume_if_room(self, entry: Buffered[Any]) -> None:
        key = (entry.topic, entry.partition)
        if key in self._paused and self._buffers.count(*key) < self._buffers.limit:
            self._consumers[entry.topic].resume([TopicPartition(*key)])
            self._paused.discard(key)

    def _settle(self) -> None:
        """Commits finished ends, hands a batch that has run to the finisher, and reads again
        what must run again once nothing is in flight."""
        if self._ending is not None and self._ending[1].done():
            self._close_ending()
        if self._running is not None and self._running[1].done():
            batch, future = self._running
            self._running = None
            if self._ending is not None:
                futures_wait([self._ending[1]])  # commits keep the order the jobs ran in
                self._close_ending()
            try:
                finish = future.result()
            except Exception:
                _log.exception("a batch stopped before its end; reading its dispatches again")
                self._redo += batch
            else:
                if self._redo:
                    # An earlier end was not written: committing this batch would pass it.
                    self._redo += batch
                else:
                    self._ending = (batch, self._finisher.submit(finish))
        if self._redo and not self._in_flight():
            self._rewind_all(self._redo)
            self._redo = []

    def _close_ending(self) -> None:
        if self._ending is None:
            return
        batch, future = self._ending
        self._ending = None
        try:
            future.result()
        except Exception:
            # A job's end could not be written: run the jobs again rather than lose one.
            _log.exception("a job's end was not written; reading its dispatch again")
            self._redo += batch
            return
        for entry in batch:
            self._commit(entry)

    def _rewind_all(self, batch: Batch) -> None:
        earliest: dict[tuple[str, int], Buffered[Dispatch]] = {}
        for entry in batch:
            key = (entry.topic, entry.partition)
            if key not in earliest or entry.offset < earliest[key].offset:
                earliest[key] = entry
        for entry in earliest.values():
            self._rewind(entry)

    def _commit(self, entry: Buffered[Any]) -> None:
        """Commits past ``entry`` with the others finished within ``_COMMIT_EVERY_S``.

        The job's end is already acknowledged, so a commit lost in a crash or a rebalance
        only lets the next owner read the dispatch again, and job control tells it the job
        has finished.
        """
        if not self._to_commit:
            self._commit_due = time.monotonic() + _COMMIT_EVERY_S
        # Entries of a partition finish in the order they were read.
        self._to_commit[(entry.topic, entry.partition)] = entry.offset + 1

    def _flush_commits(
        self, keys: list[tuple[str, int]] | None = None, *, wait: bool = False
    ) -> None:
        """Commits the pending positions (of ``keys`` only, when given); without ``wait``
        it does not wait for the brokers' answer, which would add a round trip to the loop."""
        pending = self._to_commit
        chosen = list(pending) if keys is None else [key for key in keys if key in pending]
        by_topic: dict[str, list[TopicPartition]] = {}
        for key in chosen:
            topic, partition = key
            by_topic.setdefault(topic, []).append(
                TopicPartition(topic, partition, pending.pop(key))
            )
        for topic, positions in by_topic.items():
            try:
                if wait:
                    self._consumers[topic].commit(offsets=positions, asynchronous=False)
                else:
                    self._consumers[topic].commit(offsets=positions, asynchronous=True)
            except KafkaException as exc:
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


def _commit_failed_note(error: KafkaError | None, partitions: list[TopicPartition]) -> None:
    """Notes an asynchronous commit that failed: the partition most likely moved to another
    worker, which reads the job again and finds it finished; nothing is lost."""
    if error is not None:
        _log.warning("commit after a job failed: %s (%s)", error, _names(partitions))


def batch_key(job: JobQueued) -> tuple[object, ...] | None:
    """What jobs must share to run as one batch; None for a job that runs alone."""
    match job.input:
        case ImageGenerateInput():
            given = job.input
            return (job.job_type, given.width, given.height, given.steps, given.guidance)
    return None


def _job_ids(batch: Batch) -> set[str]:
    return {entry.item.data.job_id for entry in batch if entry.item is not None}


def _keys(partitions: list[TopicPartition]) -> list[tuple[str, int]]:
    return [(tp.topic, tp.partition) for tp in partitions]


def _names(partitions: list[TopicPartition]) -> str:
    return ", ".join(f"{tp.topic}[{tp.partition}]" for tp in partitions) or "none"
