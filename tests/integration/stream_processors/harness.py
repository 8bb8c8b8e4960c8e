"""Runs the real stream processors as a process on per-test topics, and reads what they write."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from confluent_kafka import Consumer, TopicPartition

from contracts import (
    CreditsGranted,
    Envelope,
    Event,
    JobRequested,
    JobType,
    SyntheticInput,
    decode,
)
from genstream.kafka import delete_topics, ensure_topics
from genstream.settings import StackSettings
from producers import EventProducer
from stream_processors.topology import Topology

ROOT = Path(__file__).resolve().parents[3]


class Processors:
    """One processors app (its own id and topics) that tests start, kill and restart."""

    def __init__(self, stack: StackSettings, unique: str, log_dir: Path) -> None:
        self.stack = stack
        self.app_id = f"test-processors-{unique}"
        self.topology = Topology(prefix=f"test.{unique}.")
        self.log_dir = log_dir
        self.process: subprocess.Popen[bytes] | None = None
        self._accounts: dict[str, dict[str, Any]] = {}
        self._changelog = Consumer(stack.kafka.librdkafka(**{"group.id": f"changelog-{unique}"}))
        changelog = f"{self.app_id}-accounts-changelog"
        # The processors create it on start; reading it from the start needs it to exist.
        ensure_topics(stack.kafka, [dataclasses.replace(self.topology.plans, name=changelog)])
        self._changelog.assign([TopicPartition(changelog, p, 0) for p in range(12)])
        self._log: BinaryIO | None = None
        self.producer = EventProducer(settings=stack.kafka)
        self._seen: list[Envelope[Any]] = []
        ensure_topics(stack.kafka, self.topology.all_topics)
        self._reader = Consumer(stack.kafka.librdkafka(**{"group.id": f"reader-{unique}"}))
        watched = [self.topology.lifecycle, self.topology.ledger, *self.topology.tiers.values()]
        self._reader.assign(
            [TopicPartition(spec.name, p, 0) for spec in watched for p in range(spec.partitions)]
        )

    def start(self) -> None:
        env = {
            **os.environ,
            "GENSTREAM_PROCESSORS_APP_ID": self.app_id,
            "GENSTREAM_PROCESSORS_TOPIC_PREFIX": self.topology.prefix,
            "GENSTREAM_PROCESSORS_DATA_DIR": str(self.log_dir / "data"),
            "GENSTREAM_KAFKA__BOOTSTRAP_SERVERS": self.stack.kafka.bootstrap_servers,
            "GENSTREAM_PROCESSORS_EXPIRY_INTERVAL_S": "1",
            "GENSTREAM_PROCESSORS_GUARANTEE": os.environ.get(
                "GENSTREAM_PROCESSORS_GUARANTEE", "at_least_once"
            ),
        }
        if self._log is None:
            self._log = (self.log_dir / "processors.log").open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "stream_processors.main"],
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.kill()

    def close(self) -> None:
        self.stop()
        if self._log is not None:
            self._log.close()
        self.producer.close()
        self._reader.close()
        self._changelog.close()
        # Faust's own: the table's changelog and the topic its assignor elects a leader on.
        changelogs = [f"{self.app_id}-accounts-changelog", f"{self.app_id}-__assignor-__leader"]
        delete_topics(self.stack.kafka, [s.name for s in self.topology.all_topics] + changelogs)

    # -- input -------------------------------------------------------------------------------
    def send(
        self, data: Event, *, user_id: str, wait: bool = True, event_id: str | None = None
    ) -> Envelope[Any]:
        envelope = Envelope.wrap(data, user_id=user_id, source="genstream/tests", event_id=event_id)
        # As the system does: commands to jobs.requested, worker outcomes to the lifecycle.
        t = self.topology
        candidates = (t.requested, t.ledger, t.plans, t.lifecycle)
        spec = next(s for s in candidates if s.accepts(envelope.type))
        if wait:
            self.producer.send_and_wait(spec, envelope)
        else:
            self.producer.produce(spec, envelope)
        return envelope

    def grant(self, user_id: str, amount: int) -> None:
        """Grants credits and waits until the processors have counted them.

        Grants (ledger) and requests (commands) travel on different topics, whose relative
        order no consumer promises; tests that need the credits first wait for them.
        """
        key = f"grant:{user_id}:{amount}:{time.monotonic_ns()}"
        grant = CreditsGranted(amount=amount, reason="test", idempotency_key=key)
        self.send(grant, user_id=user_id)
        self.wait_for_account(user_id, lambda account: key in account.get("ledger_keys", {}))

    def wait_for_account(
        self, user_id: str, predicate: Callable[[dict[str, Any]], bool], *, timeout_s: float = 90
    ) -> dict[str, Any]:
        """Reads the processors' own state for a user, from their table's changelog."""
        deadline = time.monotonic() + timeout_s
        wanted = json.dumps(user_id).encode()
        while time.monotonic() < deadline:
            message = self._changelog.poll(0.2)
            if message is not None and message.error() is None and message.key() == wanted:
                self._accounts[user_id] = json.loads(message.value())
            if user_id in self._accounts and predicate(self._accounts[user_id]):
                return self._accounts[user_id]
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"the processors exited; see {self.log_dir}/processors.log")
        raise AssertionError(f"timed out waiting for the account of {user_id}")

    def request(
        self, user_id: str, job_id: str, *, key: str | None = None, wait: bool = True, **job: Any
    ) -> Envelope[Any]:
        data = JobRequested(
            job_id=job_id,
            job_type=JobType.SYNTHETIC,
            input=job.get("input", SyntheticInput(kind="synthetic", steps=1, step_ms=0)),
            idempotency_key=key,
            requested_at=job.get("requested_at", datetime.now(UTC)),
        )
        return self.send(data, user_id=user_id, wait=wait)

    # -- output ------------------------------------------------------------------------------
    def seen(self, *, budget_s: float = 0.5) -> list[Envelope[Any]]:
        """Everything read so far, after reading for at most ``budget_s`` more."""
        deadline = time.monotonic() + budget_s
        while time.monotonic() < deadline:
            message = self._reader.poll(0.2)
            if message is None:
                break
            if message.error() is None:
                self._seen.append(decode(message.value(), message.headers()))
        return self._seen

    def wait_for(
        self, predicate: Callable[[list[Envelope[Any]]], bool], *, timeout_s: float = 90
    ) -> list[Envelope[Any]]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if predicate(self.seen()):
                return self._seen
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"the processors exited; see {self.log_dir}/processors.log")
        raise AssertionError("timed out waiting for the processors' output")

    def of_job(self, job_id: str) -> list[Envelope[Any]]:
        """The job's events read so far (``seen``, ``wait_for`` read more), deduplicated by id."""
        return distinct([e for e in self._seen if getattr(e.data, "job_id", None) == job_id])


def distinct(envelopes: list[Envelope[Any]]) -> list[Envelope[Any]]:
    """One copy per event id, as every reader keeps; the copies must be the same event."""
    first: dict[str, Envelope[Any]] = {}
    for envelope in envelopes:
        kept = first.setdefault(envelope.id, envelope)
        assert kept.data == envelope.data, f"two different events share the id {envelope.id}"
    return list(first.values())


def types(envelopes: list[Envelope[Any]]) -> list[str]:
    return [type(e.data).__name__ for e in envelopes]


@contextmanager
def running_processors(stack: StackSettings, unique: str, log_dir: Path) -> Iterator[Processors]:
    processors = Processors(stack, unique, log_dir)
    processors.start()
    try:
        yield processors
    finally:
        processors.close()
