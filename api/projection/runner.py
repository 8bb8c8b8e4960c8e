"""Runs a projection: batches of events applied in one database transaction, then committed."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Connection, Engine

from contracts import Envelope, JobEvent
from genstream.db.outages import through_outages
from genstream.kafka import EventConsumer
from genstream.tracing import parent_from, provider_installed, tracer

ApplyBatch = Callable[[Connection, Sequence[Envelope[Any]]], int]

_log = logging.getLogger(__name__)


class ProjectionRunner:
    """Applies event batches to PostgreSQL and only then commits their Kafka offsets.

    A crash between the two redelivers the batch, which the idempotent ``apply`` turns into
    no change; so the read model misses nothing and counts nothing twice.
    """

    def __init__(
        self,
        *,
        engine: Engine,
        consumer: EventConsumer,
        apply: ApplyBatch,
        batch_size: int = 500,
        batch_wait_s: float = 0.05,
    ) -> None:
        self._engine = engine
        self._consumer = consumer
        self._apply = apply
        self._batch_size = batch_size
        self._batch_wait_s = batch_wait_s
        self._tracer = tracer(__name__) if provider_installed() else None

    def step(self, stop: threading.Event | None = None) -> int:
        """One batch; returns how many events changed the read model.

        While PostgreSQL is unreachable the batch is held and applied again until it goes
        in; when ``stop`` is set first, its offsets are not committed and it is read again.
        """
        batch = self._consumer.poll_batch(max_records=self._batch_size, timeout=self._batch_wait_s)
        applied = 0
        if batch.events:
            envelopes = [event.envelope for event in batch.events]
            started_ns = time.time_ns()
            outcome = through_outages(
                lambda: self._apply_in_transaction(envelopes),
                stop=stop or threading.Event(),
                what="the projection",
            )
            if outcome is None:
                return 0
            (applied,) = outcome
            if self._tracer is not None:
                self._traced(envelopes, started_ns)
        self._consumer.commit_offsets(batch.offsets)
        return applied

    def _traced(self, envelopes: Sequence[Envelope[Any]], started_ns: int) -> None:
        """One span per job event, in the job's trace, spanning the batch's transaction."""
        assert self._tracer is not None
        ended_ns = time.time_ns()
        for envelope in envelopes:
            if not isinstance(envelope.data, JobEvent):
                continue
            span = self._tracer.start_span(
                "projection.write",
                context=parent_from(envelope.trace),
                start_time=started_ns,
                attributes={"genstream.job_id": envelope.subject, "genstream.event": envelope.type},
            )
            span.end(end_time=ended_ns)

    def _apply_in_transaction(self, envelopes: Sequence[Envelope[Any]]) -> int:
        with self._engine.begin() as connection:
            return self._apply(connection, envelopes)

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self.step(stop)
        _log.info("projection stopped")

    def drain(self, *, until: Callable[[], bool], timeout_s: float) -> bool:
        """Steps until ``until()`` holds or the deadline passes; returns whether it held."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if until():
                return True
            self.step()
        return until()
