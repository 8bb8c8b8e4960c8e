"""genstream under test: its real services as processes, on the benchmark's own topics
(``bench.<run>.``), PostgreSQL schema and consumer groups, next to whatever else runs.

The API is uvicorn with several workers (``bench.api_app``); the stream processors and the
synthetic workers are the shipped entry points with a topic prefix. Each process names its
Kafka clients ``bench-<run>.<process kind>.<client id>`` (``api``, ``processors``,
``worker``, and ``bench`` for the benchmark's own), so the brokers can tell the run's
requests from anyone else's; the workers export their metrics on ports of their own, which
the benchmark reads job control's count of records from (``kafka_meter``). ``BENCH_API_APP``,
``BENCH_PROCESSORS_MODULE`` and ``BENCH_WORKER_MODULE`` name other entry points, to measure
a proposed change against the same workloads before it is made. Users are PostgreSQL
rows with API keys (pro users, who submit over HTTP) and accounts in the processors, given
their plan and credits through the plans and ledger topics as the outbox would.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
import tomllib
import urllib.request
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from confluent_kafka import Consumer, TopicPartition
from sqlalchemy import insert, text

from api.auth.tokens import digest
from bench.genstream_meter import RunNames, genstream_meter
from bench.meter import KafkaMeter
from bench.procs import Processes, free_port, wait_until
from bench.requests import RequestLog, local_request_log
from bench.system import Endpoint, JobSpec
from bench.watch import LifecycleClock
from contracts import (
    CreditsGranted,
    Envelope,
    Event,
    JobRequested,
    JobType,
    Plan,
    PlanChanged,
    SyntheticInput,
    TopicSpec,
    Workload,
)
from genstream.db import sync_engine, upgrade
from genstream.db.models import ApiKey, User
from genstream.kafka import KafkaSettings, delete_groups, delete_topics, ensure_topics
from genstream.kafka.admin import admin_client
from genstream.settings import StackSettings
from gpu_consumers.topology import WorkerTopology
from producers import EventProducer
from stream_processors.topology import Topology

__all__ = ["GenstreamSystem", "bench_catalog"]

SOURCE = "genstream/bench"
GRANT = 10_000_000
BODY = json.dumps({"type": "synthetic", "input": {"steps": 0, "step_ms": 0, "output_bytes": 0}})


def bench_catalog(shipped: str) -> str:
    """The shipped catalog with concurrency and waiting caps lifted: a benchmark queues
    thousands of jobs per user, which the plans' caps (2 to 20 queued or running, 20 to 1,000
    waiting) would hold back or refuse. Each user's dispatch window is left as shipped."""
    catalog = tomllib.loads(shipped)
    lines = []
    for plan, limits in catalog["plans"].items():
        limits = {**limits, "max_concurrent_jobs": 1_000_000, "max_waiting_jobs": 1_000_000}
        lines.append(f"[plans.{plan}]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in limits.items()]
    for job_type, price in catalog["prices"].items():
        lines.append(f'[prices."{job_type}"]')
        lines += [f"{key} = {json.dumps(value)}" for key, value in price.items()]
    return "\n".join(lines) + "\n"


class GenstreamSystem:
    name = "genstream"

    def __init__(
        self,
        *,
        stack: StackSettings,
        run_id: str,
        run_dir: Path,
        users: int,
        api_port: int,
        api_workers: int,
        count_requests: bool = False,
    ) -> None:
        self.stack = stack
        self.prefix = f"bench.{run_id}."
        self.schema = f"bench_{run_id}"
        self.app_id = f"bench-processors-{run_id}"
        self.run_dir = run_dir / "genstream"
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.api_port = api_port
        self.api_workers = api_workers
        self.topology = Topology(prefix=self.prefix)
        self.workers_topology = WorkerTopology(Workload.SYNTHETIC, prefix=self.prefix)
        self.sink = self.topology.requested.prefixed("sink.")
        self.processes = Processes(self.run_dir / "logs")
        self.client_tag = f"bench-{run_id}"
        self.kafka = self.clients("bench")
        self.producer = EventProducer(settings=self.kafka)
        self.clock = LifecycleClock(self.kafka, self.topology.lifecycle, f"bench-clock-{run_id}")
        self.count_requests = count_requests
        self._request_log: RequestLog | None = None
        self._meter: KafkaMeter | None = None
        self._metrics_ports: dict[str, int] = {}
        self.pro_users = [str(uuid.uuid4()) for _ in range(users)]
        self.free_users = [str(uuid.uuid4()) for _ in range(users)]
        self.tokens: list[str] = []
        self._worker_names: list[str] = []

    # -- the stack -------------------------------------------------------------------------------
    @property
    def topics(self) -> list[TopicSpec]:
        specs = {s.name: s for s in (*self.topology.all_topics, *self.workers_topology.all_topics)}
        specs[self.sink.name] = self.sink
        return list(specs.values())

    def setup(self, *, services: bool = True) -> None:
        """Topics, schema and users; with ``services``, the processors and the users' accounts
        in them too (which the workloads that only stream events or replay do without)."""
        ensure_topics(self.stack.kafka, self.topics)
        upgrade(self.stack.pg, schema=self.schema)
        self.tokens = self.add_api_users(self.pro_users)
        if self.count_requests:
            self._request_log = local_request_log(self.stack.kafka)
            if self._request_log is not None:
                self._request_log.enable()
        if services:
            self._start_services()

    def _start_services(self) -> None:
        catalog = self.run_dir / "catalog.toml"
        shipped = (Path(__file__).resolve().parents[1] / "contracts" / "catalog.toml").read_text()
        catalog.write_text(bench_catalog(shipped))
        changelog = f"{self.app_id}-accounts-changelog"
        ensure_topics(self.stack.kafka, [dataclasses.replace(self.topology.plans, name=changelog)])
        self.processes.python(
            "processors",
            ["-m", os.environ.get("BENCH_PROCESSORS_MODULE", "stream_processors.main")],
            {
                "GENSTREAM_PROCESSORS_APP_ID": self.app_id,
                "GENSTREAM_PROCESSORS_TOPIC_PREFIX": self.prefix,
                "GENSTREAM_PROCESSORS_DATA_DIR": str(self.run_dir / "processors"),
                "GENSTREAM_CATALOG": str(catalog),
                "GENSTREAM_KAFKA__CLIENT_ID": self.clients("processors").client_id,
            },
        )
        self.clock.start()
        self._open_accounts(changelog)

    def add_api_users(self, user_ids: Sequence[str]) -> list[str]:
        """Pro users with an API key each, in the run's schema; returns their keys."""
        engine = sync_engine(self.stack.pg, schema=self.schema)
        now = datetime.now(UTC)
        users, keys, tokens = [], [], []
        for user_id in user_ids:
            secret = f"gsk_bench{uuid.uuid4().hex}"
            tokens.append(secret)
            uid = uuid.UUID(user_id)
            users.append({"id": uid, "email": f"bench-{user_id}@example.com", "plan": "PRO"})
            keys.append(
                {
                    "id": uuid.uuid4(),
                    "user_id": uid,
                    "name": "bench",
                    "prefix": secret[:12],
                    "key_hash": digest(secret),
                    "created_at": now,
                    # Recently used, so that no request of the run writes last_used_at.
                    "last_used_at": now,
                }
            )
        with engine.begin() as connection:
            connection.execute(insert(User), users)
            connection.execute(insert(ApiKey), keys)
        engine.dispose()
        return tokens

    def _open_accounts(self, changelog: str) -> None:
        """Plans and credits for every user, then waits until the processors hold them."""
        now = datetime.now(UTC)
        expected: dict[str, tuple[str, str]] = {}
        for plan, users in ((Plan.PRO, self.pro_users), (Plan.FREE, self.free_users)):
            for user_id in users:
                key = f"bench-grant-{user_id}"
                changed = PlanChanged(
                    plan=plan, effective_at=now, idempotency_key=f"plan-{user_id}"
                )
                self._send(self.topology.plans, changed, user_id)
                self._send(
                    self.topology.ledger,
                    CreditsGranted(amount=GRANT, reason="benchmark", idempotency_key=key),
                    user_id,
                )
                expected[user_id] = (plan.value, key)
        self.producer.flush()
        reader = Consumer(self.kafka.librdkafka(**{"group.id": f"{self.app_id}-reader"}))
        reader.assign(
            [TopicPartition(changelog, p, 0) for p in range(self.topology.plans.partitions)]
        )
        deadline = time.monotonic() + 180
        try:
            while expected:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the processors did not open {len(expected)} accounts")
                self.processes.check()
                message = reader.poll(0.2)
                if message is None or message.error() is not None:
                    continue
                raw_key, raw_value = message.key(), message.value()
                if raw_key is None or raw_value is None:
                    continue
                user_id, account = json.loads(raw_key), json.loads(raw_value)
                want = expected.get(user_id)
                if (
                    want
                    and account.get("plan") == want[0]
                    and want[1] in account.get("ledger_keys", {})
                ):
                    del expected[user_id]
        finally:
            reader.close()

    def _send(self, spec: TopicSpec, data: Event, user_id: str) -> None:
        self.producer.produce(spec, Envelope.wrap(data, user_id=user_id, source=SOURCE))

    def close(self) -> None:
        self.processes.stop()
        self.clock.stop()
        self.producer.close()
        if self._request_log is not None:
            self._request_log.restore()
        client = admin_client(self.stack.kafka)
        ours = (self.prefix, self.app_id, self.sink.name)
        delete_topics(
            self.stack.kafka,
            [name for name in client.list_topics(timeout=30).topics if name.startswith(ours)],
        )
        groups = client.list_consumer_groups(request_timeout=30).result().valid
        delete_groups(
            self.stack.kafka,
            [g.group_id for g in groups if g.group_id.startswith((*ours, self.clock.group))],
        )
        engine = sync_engine(self.stack.pg)
        with engine.begin() as connection:
            connection.execute(text(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE'))
        engine.dispose()
        purge_outputs(self.stack, [*self.pro_users, *self.free_users])

    # -- the API ---------------------------------------------------------------------------------
    def start_api(self, *, purpose: Literal["submit", "dispatch", "events"]) -> Endpoint:
        """The API; for ``events`` one process only, its streams fed from the run's topics."""
        topic = self.sink if purpose == "submit" else self.topology.requested
        workers = 1 if purpose == "events" else self.api_workers
        self.processes.python(
            "api",
            [
                "-m",
                "uvicorn",
                "bench.api_app:create",
                "--factory",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.api_port),
                "--workers",
                str(workers),
                # Streams are opened by the thousand: the kernel caps this at somaxconn.
                "--backlog",
                "4096",
                "--no-access-log",
                "--log-level",
                "warning",
            ],
            {
                "GENSTREAM_JOBS__SYNTHETIC_ENABLED": "true",
                "GENSTREAM_JOBS__REQUESTED_TOPIC": topic.name,
                "GENSTREAM_READS__PROGRESS_TOPIC": self.workers_topology.progress.name,
                "GENSTREAM_KAFKA__CLIENT_ID": self.clients("api").client_id,
                "GENSTREAM_CATALOG": str(self.run_dir / "catalog.toml"),
                "BENCH_PG_SCHEMA": self.schema,
            },
        )
        wait_until("the API answers /healthz", self._api_ready, timeout_s=60)
        return Endpoint("127.0.0.1", self.api_port, "/v1/jobs", BODY, tuple(self.tokens), workers)

    def api_pid(self) -> int:
        """The API's process; with one worker, uvicorn serves in the process it started as."""
        return next(p.pid for p in self.processes.running if p.name == "api")

    def _api_ready(self) -> bool:
        self.processes.check()
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.api_port}/healthz", timeout=2
            ) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def stop_api(self) -> None:
        self.processes.stop(["api"])

    # -- workers ---------------------------------------------------------------------------------
    def start_workers(self, count: int) -> None:
        self.stop_workers()
        for index in range(count):
            name = f"worker-{index}"
            self._metrics_ports[name] = free_port()
            self.processes.python(
                name,
                ["-m", os.environ.get("BENCH_WORKER_MODULE", "gpu_consumers.main")],
                {
                    "GENSTREAM_WORKER_WORKLOAD": "synthetic",
                    "GENSTREAM_WORKER_ID": f"bench-{index}",
                    "GENSTREAM_WORKER_TOPIC_PREFIX": self.prefix,
                    "GENSTREAM_WORKER_WORK_DIR": str(self.run_dir / f"work-{index}"),
                    "GENSTREAM_WORKER_DEVICE": "cpu",
                    "GENSTREAM_WORKER_METRICS_PORT": str(self._metrics_ports[name]),
                    "GENSTREAM_KAFKA__CLIENT_ID": self.clients("worker").client_id,
                },
            )
            self._worker_names.append(name)
        logs = [self.processes.log_dir / f"{name}.log" for name in self._worker_names]
        wait_until(
            f"{count} worker(s) own partitions",
            lambda: self._check() and all(_assigned(log) for log in logs),
            timeout_s=120,
        )
        probes = [JobSpec(f"job_probe{uuid.uuid4().hex}", i, "pro", 0, 0) for i in range(count * 4)]
        self.enqueue(probes)
        done = self.clock.wait_for("completed", [p.job_id for p in probes], timeout_s=120)
        if len(done) < len(probes):
            raise TimeoutError(f"only {len(done)} of {len(probes)} probe jobs completed")

    def _check(self) -> bool:
        self.processes.check()
        return True

    def stop_workers(self) -> None:
        self.processes.stop(self._worker_names)
        self._worker_names = []
        self._metrics_ports = {}

    # -- jobs ------------------------------------------------------------------------------------
    def enqueue(self, jobs: Sequence[JobSpec]) -> None:
        now = datetime.now(UTC)
        for job in jobs:
            users = self.pro_users if job.tier == "pro" else self.free_users
            data = JobRequested(
                job_id=job.job_id,
                job_type=JobType.SYNTHETIC,
                input=SyntheticInput(steps=job.steps, step_ms=job.step_ms, output_bytes=0),
                requested_at=now,
            )
            self._send(self.topology.requested, data, users[job.user % len(users)])
        if len(jobs) > 1:
            self.producer.flush()

    def admitted(self, job_ids: Sequence[str], *, timeout_s: float) -> int:
        # Accepted, not queued: a user's jobs enter the tier topic a few at a time.
        return len(self.clock.wait_for("accepted", job_ids, timeout_s=timeout_s))

    def rejected(self, job_ids: Sequence[str]) -> int:
        return self.clock.count("rejected", job_ids)

    def pids(self) -> dict[str, int]:
        return {p.name: p.pid for p in self.processes.running}

    # -- what the Kafka clients did ----------------------------------------------------------------
    def clients(self, kind: str) -> KafkaSettings:
        """The Kafka settings of one kind of the run's processes: the stack's, with a client
        id that tells the brokers it is this run's and which kind of process it is."""
        client_id = f"{self.client_tag}.{kind}.{self.stack.kafka.client_id}"
        return self.stack.kafka.model_copy(update={"client_id": client_id})

    def kafka_meter(self) -> KafkaMeter:
        if self._meter is None:
            self._meter = genstream_meter(
                # Not the run's client id: the meter's own requests are not the run's.
                self.stack.kafka,
                names=RunNames(prefix=self.prefix, app_id=self.app_id, clock=self.clock.group),
                workers=lambda: {
                    f"{p.name}:{p.pid}": self._metrics_ports[p.name]
                    for p in self.processes.running
                    if p.name in self._metrics_ports
                },
                requests=self._request_log,
                client_tag=self.client_tag,
            )
        return self._meter


def _assigned(log: Path) -> bool:
    return log.exists() and "partitions assigned: bench." in log.read_text(errors="replace")


def purge_outputs(stack: StackSettings, user_ids: Sequence[str]) -> None:
    """Deletes what the benchmark's jobs stored (outputs and previews of its users)."""
    import botocore.session

    s3 = stack.s3
    client: Any = botocore.session.get_session().create_client(
        "s3",
        endpoint_url=s3.endpoint_url,
        region_name=s3.region,
        aws_access_key_id=s3.access_key.get_secret_value(),
        aws_secret_access_key=s3.secret_key.get_secret_value(),
    )
    try:
        paginator = client.get_paginator("list_objects_v2")
        for user_id in user_ids:
            for page in paginator.paginate(Bucket=s3.outputs_bucket, Prefix=f"outputs/{user_id}/"):
                keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
                if keys:
                    client.delete_objects(Bucket=s3.outputs_bucket, Delete={"Objects": keys})
    finally:
        client.close()
