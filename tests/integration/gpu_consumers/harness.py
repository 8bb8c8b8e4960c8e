"""Runs real worker processes on per-test topics, dispatches jobs to them, reads what they write."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

from confluent_kafka import Consumer, ConsumerGroupState, KafkaException, TopicPartition

from contracts import (
    Envelope,
    JobQueued,
    JobType,
    Tier,
    Workload,
    decode,
    tier_topic,
    worker_group,
)
from contracts.inputs import input_model_for
from genstream.kafka import delete_topics, ensure_topics
from genstream.kafka.admin import admin_client
from genstream.settings import StackSettings
from gpu_consumers.topology import WorkerTopology
from producers import EventProducer
from tests.polling import poll_until

ROOT = Path(__file__).resolve().parents[3]


class Workers:
    """Worker processes of one workload on topics under ``test.<unique>.``."""

    def __init__(
        self,
        stack: StackSettings,
        unique: str,
        log_dir: Path,
        workload: Workload,
        *,
        env: dict[str, str] | None = None,
    ) -> None:
        self.stack = stack
        self.unique = unique
        self.workload = workload
        self.topology = WorkerTopology(workload, prefix=f"test.{unique}.")
        self.log_dir = log_dir
        self.env = env or {}
        self.processes: list[subprocess.Popen[bytes]] = []
        self._logs: list[BinaryIO] = []
        ensure_topics(stack.kafka, self.topology.all_topics)
        self.producer = EventProducer(settings=stack.kafka)
        self._reader = Consumer(stack.kafka.librdkafka(**{"group.id": f"reader-{unique}"}))
        watched = (self.topology.lifecycle, self.topology.progress)
        self._reader.assign(
            [TopicPartition(spec.name, p, 0) for spec in watched for p in range(spec.partitions)]
        )
        self._parked = Consumer(stack.kafka.librdkafka(**{"group.id": f"parked-{unique}"}))
        dlq = self.topology.deadletter
        self._parked.assign([TopicPartition(dlq.name, p, 0) for p in range(dlq.partitions)])
        self._seen: list[Envelope[Any]] = []
        self._dead: list[tuple[bytes | None, dict[str, bytes]]] = []

    # -- processes -----------------------------------------------------------------------------
    def start(self, count: int = 1) -> None:
        for _ in range(count):
            index = len(self.processes)
            env = {
                **os.environ,
                "GENSTREAM_WORKER_WORKLOAD": self.workload.value,
                "GENSTREAM_WORKER_ID": f"w{index}-{self.unique}",
                "GENSTREAM_WORKER_TOPIC_PREFIX": self.topology.prefix,
                "GENSTREAM_WORKER_WORK_DIR": str(self.log_dir / f"work{index}"),
                "GENSTREAM_WORKER_SESSION_TIMEOUT_S": "6",
                "GENSTREAM_WORKER_RETRY_BASE_MS": "200",
                "GENSTREAM_WORKER_RETRY_MAX_MS": "1000",
                "GENSTREAM_WORKER_DEVICE": "cpu",
                "GENSTREAM_KAFKA__BOOTSTRAP_SERVERS": self.stack.kafka.bootstrap_servers,
                **self.env,
            }
            log = (self.log_dir / f"worker{index}.log").open("ab")
            self._logs.append(log)
            self.processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "gpu_consumers.main"],
                    cwd=ROOT,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )

    def wait_joined(self, *, timeout_s: float = 90) -> None:
        """Waits until the group is stable with every started worker holding tier partitions.

        A worker that joins after a job started takes some of the first worker's partitions,
        the running job's among them, and would run that job again from its uncommitted
        offset; tests that place jobs on particular workers wait for this first.
        """
        group = f"{self.topology.prefix}{worker_group(self.workload)}"
        tiers = {spec.name: spec.partitions for spec in self.topology.tiers.values()}
        members_expected = len(self.processes) * len(tiers)
        admin = admin_client(self.stack.kafka)
        state = ["not described yet"]

        def settled() -> bool:
            try:
                described = admin.describe_consumer_groups([group])[group].result(timeout=5)
            except KafkaException as exc:
                state[0] = str(exc)
                return False
            held = [m.assignment.topic_partitions or [] for m in described.members]
            covered = {(tp.topic, tp.partition) for parts in held for tp in parts}
            state[0] = f"{described.state}, {len(held)} members, {len(covered)} partitions held"
            return (
                described.state == ConsumerGroupState.STABLE
                and len(held) == members_expected
                and all(held)
                and len(covered) == sum(tiers.values())
            )

        poll_until(
            settled,
            timeout_s=timeout_s,
            interval_s=0.2,
            what=lambda: f"group {group} settled with {len(self.processes)} workers ({state[0]})",
        )

    def kill(self, index: int) -> None:
        process = self.processes[index]
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait(30)

    def stop(self, index: int = 0) -> None:
        """Stops a worker the clean way (SIGTERM) and waits for it to exit."""
        process = self.processes[index]
        if process.poll() is None:
            process.terminate()
            process.wait(60)

    def close(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for index, process in enumerate(self.processes):
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill(index)
        for log in self._logs:
            log.close()
        self.producer.close()
        self._reader.close()
        self._parked.close()
        delete_topics(self.stack.kafka, [spec.name for spec in self.topology.all_topics])

    def log(self, index: int = 0) -> str:
        return (self.log_dir / f"worker{index}.log").read_text(errors="replace")

    # -- input ---------------------------------------------------------------------------------
    def dispatch(
        self,
        job_id: str,
        job_input: dict[str, Any],
        *,
        user_id: str = "user-1",
        tier: Tier = Tier.PRO,
        deadline: datetime | None = None,
        wait: bool = True,
    ) -> Envelope[JobQueued]:
        """Writes a ``job.queued`` to the tier topic as the processors do."""
        job_type = JobType(job_input["kind"])
        queued = JobQueued(
            job_id=job_id,
            job_type=job_type,
            tier=tier,
            input=input_model_for(job_type).model_validate(job_input),
            attempt=1,
            topic=tier_topic(job_type, tier),
            deadline=deadline,
        )
        envelope = Envelope.wrap(queued, user_id=user_id, source="genstream/tests")
        spec = self.topology.tiers[tier]
        if wait:
            self.producer.send_and_wait(spec, envelope)
        else:
            self.producer.produce(spec, envelope)
        return envelope

    # -- output --------------------------------------------------------------------------------
    def seen(self, *, budget_s: float = 0.5) -> list[Envelope[Any]]:
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
        raise AssertionError(
            f"timed out waiting for the workers; logs under {self.log_dir}:\n{self.log()[-3000:]}"
        )

    def of_job(self, job_id: str) -> list[Envelope[Any]]:
        """The job's events read so far, one copy per event id."""
        first: dict[str, Envelope[Any]] = {}
        for envelope in self._seen:
            if getattr(envelope.data, "job_id", None) == job_id:
                first.setdefault(envelope.id, envelope)
        return list(first.values())

    def ended(self, job_id: str) -> bool:
        terminal = {"JobCompleted", "JobFailed", "JobCancelled", "JobExpired"}
        return any(type(e.data).__name__ in terminal for e in self.of_job(job_id))

    def parked(self, *, budget_s: float = 0.5) -> list[tuple[bytes | None, dict[str, bytes]]]:
        deadline = time.monotonic() + budget_s
        while time.monotonic() < deadline:
            message = self._parked.poll(0.2)
            if message is None:
                break
            if message.error() is None:
                headers = {name: value or b"" for name, value in message.headers() or []}
                self._dead.append((message.value(), headers))
        return self._dead


def types(envelopes: list[Envelope[Any]]) -> list[str]:
    return [type(e.data).__name__ for e in envelopes]


def of_type(envelopes: list[Envelope[Any]], name: str) -> list[Any]:
    return [e.data for e in envelopes if type(e.data).__name__ == name]


@contextmanager
def running_workers(
    stack: StackSettings,
    unique: str,
    log_dir: Path,
    workload: Workload,
    *,
    count: int = 1,
    env: dict[str, str] | None = None,
    start: bool = True,
) -> Iterator[Workers]:
    workers = Workers(stack, unique, log_dir, workload, env=env)
    try:
        if start:
            workers.start(count)
            if count > 1:
                workers.wait_joined()
        yield workers
    finally:
        workers.close()


def models_env(models: dict[str, Path]) -> dict[str, str]:
    return {"GENSTREAM_WORKER_MODELS": json.dumps({k: str(v) for k, v in models.items()})}
