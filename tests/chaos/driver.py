"""A whole private genstream (three brokers, every service) under load while parts of it die.

``ChaosStack`` starts the stack and the services with the project's own scripts in a private
data directory on their own ports; ``run_chaos`` submits synthetic jobs from many users
through the REST API, killing and restarting one part after another, then waits for every
acknowledged job to end and counts what the guarantees forbid: lost jobs, jobs with two
ends, double charges, ledgers that do not add up, and a read model that differs from a
rebuild.

The stack has three brokers, so it is the secured one: every service connects as its own
Kafka principal (``infra/services.sh``), the tools run as the ``replay`` principal, and the
run's own readers and its poison writer connect as the brokers' super user, as an observer
outside genstream would.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from api.projection.ledger import movement
from contracts import CREDITS_LEDGER, DEADLETTER, JOBS_LIFECYCLE, ContractError, decode
from genstream.kafka import KafkaSettings
from genstream.kafka.acls import MECHANISM, PROTOCOL, as_principal, stack_credentials
from genstream.kafka.config import LibrdkafkaConfig
from genstream.kafka.principals import ADMIN

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
TERMINAL = frozenset({"JobCompleted", "JobFailed", "JobCancelled", "JobExpired", "JobRejected"})
CATALOG = """
[plans.FREE]
tier = "free"
max_video_duration_s = 30
max_video_height = 720
max_concurrent_jobs = 2
max_waiting_jobs = 100000
queue_ttl_s = 86400

[plans.CREATOR]
tier = "creator"
max_video_duration_s = 120
max_video_height = 1080
max_concurrent_jobs = 100000
max_waiting_jobs = 100000
queue_ttl_s = 86400

[plans.PRO]
tier = "pro"
max_video_duration_s = 300
max_video_height = 1080
max_concurrent_jobs = 100000
max_waiting_jobs = 100000
queue_ttl_s = 86400

[prices."image.generate"]
credits = 2
per = "job"

[prices."image.edit"]
credits = 3
per = "job"

[prices."video.generate"]
credits = 1
per = "second"

[prices."video.enhance"]
credits = 10
per = "minute"

[prices."audio.speech"]
credits = 1
per = "character"
unit = 500

[prices.synthetic]
credits = 1
per = "job"
"""


def _run(args: list[str], env: dict[str, str], timeout: float = 300) -> str:
    done = subprocess.run(
        args, env=env, capture_output=True, text=True, timeout=timeout, check=False, cwd=ROOT
    )
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return done.stdout


class ChaosStack:
    """The stack and every service, private to one run."""

    def __init__(self, name: str, *, api_port: int = 18100, kafka_port: int = 28092) -> None:
        # Ports below the kernel's ephemeral range (32768-60999), so a node restarted mid-run
        # never finds its port taken by some client connection's local end.
        # Inside the checkout: PostgreSQL's own user must be able to reach the directory.
        self.var_dir = ROOT / "var" / "chaos" / name
        self.var_dir.mkdir(parents=True, exist_ok=True)
        catalog = self.var_dir / "catalog.toml"
        catalog.write_text(CATALOG)
        self.api_url = f"http://127.0.0.1:{api_port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("GENSTREAM_")}
        self.env = {
            **env,
            "GENSTREAM_VAR_DIR": str(self.var_dir),
            "GENSTREAM_KAFKA_BROKERS": "3",
            "GENSTREAM_KAFKA_PORT": str(kafka_port),
            "GENSTREAM_KAFKA_HEAP": "384m",
            "GENSTREAM_PG_PORT": "25462",
            "GENSTREAM_S3_PORT": "19200",
            "GENSTREAM_S3_CONSOLE_PORT": "19201",
            "GENSTREAM_API_PORT": str(api_port),
            "GENSTREAM_METRICS_PORT_BASE": "19400",
            "GENSTREAM_JAEGER_UI_PORT": "26786",
            "GENSTREAM_JAEGER_QUERY_GRPC_PORT": "26785",
            "GENSTREAM_JAEGER_OTLP_GRPC_PORT": "24417",
            "GENSTREAM_JAEGER_OTLP_HTTP_PORT": "24418",
            "GENSTREAM_JAEGER_HEALTH_PORT": "23233",
            "GENSTREAM_JOBS__SYNTHETIC_ENABLED": "true",
            "GENSTREAM_RATE_LIMITS__AUTH_PER_IP": "1000000",
            "GENSTREAM_RATE_LIMITS__AUTH_PER_ACCOUNT": "1000000",
            "GENSTREAM_CATALOG": str(catalog),
            "GENSTREAM_PROCESSORS_DATA_DIR": str(self.var_dir / "processors"),
            "GENSTREAM_PROCESSORS_SESSION_TIMEOUT_S": "6",
            "GENSTREAM_WORKER_SESSION_TIMEOUT_S": "6",
            "GENSTREAM_WORKER_RETRY_BASE_MS": "200",
            "GENSTREAM_WORKER_RETRY_MAX_MS": "2000",
            "GENSTREAM_WORKER_MAX_ATTEMPTS": "10",
            "GENSTREAM_WORKER_WORK_DIR": str(self.var_dir / "worker"),
        }
        self.bootstrap = ",".join(f"127.0.0.1:{kafka_port + 2 * n}" for n in range(3))

    def up(self) -> None:
        _run([str(INFRA / "stack.sh"), "up"], self.env, timeout=600)
        _run([str(INFRA / "services.sh"), "up"], self.env, timeout=300)

    def down(self, *, remove: bool = True) -> None:
        subprocess.run(
            [str(INFRA / "services.sh"), "down"], env=self.env, capture_output=True, check=False
        )
        subprocess.run(
            [str(INFRA / "stack.sh"), "down"], env=self.env, capture_output=True, check=False
        )
        if remove:
            shutil.rmtree(self.var_dir, ignore_errors=True)

    def kill_service(self, name: str) -> None:
        pidfile = self.var_dir / "run" / f"{name}.pid"
        pid = int(pidfile.read_text().strip())
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.05)  # a process's exit, not a result: nothing to poll but /proc

    def stopped_services(self) -> list[str]:
        """Services whose process is gone (none should be, after every fault)."""
        gone = []
        for pidfile in sorted((self.var_dir / "run").glob("*.pid")):
            if not Path(f"/proc/{pidfile.read_text().strip()}").exists():
                gone.append(pidfile.stem)
        return gone

    def restart_services(self) -> None:
        _run([str(INFRA / "services.sh"), "up"], self.env, timeout=300)

    def kafka(self, action: str, node: int) -> None:
        _run([str(INFRA / "kafka.sh"), action, str(node)], self.env, timeout=300)

    def server(self, name: str, action: str) -> None:
        _run([str(INFRA / f"{name}.sh"), action], self.env, timeout=300)

    def kafka_settings(self, principal: str = ADMIN) -> KafkaSettings:
        """How ``principal`` reaches this stack's brokers (once they have started)."""
        return as_principal(
            KafkaSettings(bootstrap_servers=self.bootstrap, client_id="chaos"),
            principal,
            stack_credentials(self.var_dir),
        )

    def client(self, **overrides: str | int | float | bool) -> LibrdkafkaConfig:
        """A librdkafka configuration of the run's own readers and writers."""
        return self.kafka_settings().librdkafka(**overrides)

    def cli(
        self, *args: str, principal: str = "replay", timeout: float = 600
    ) -> subprocess.CompletedProcess[str]:
        env = {**self.env}
        for line in (self.var_dir / "stack.env").read_text().splitlines():
            if "=" in line and not line.startswith("#"):
                key, value = line.split("=", 1)
                env[key] = value
        # The tools' own principal, as an operator would run them.
        env |= {
            "GENSTREAM_KAFKA__SECURITY_PROTOCOL": PROTOCOL,
            "GENSTREAM_KAFKA__SASL_MECHANISM": MECHANISM,
            "GENSTREAM_KAFKA__SASL_USERNAME": principal,
            "GENSTREAM_KAFKA__SASL_PASSWORD": (
                stack_credentials(self.var_dir)[principal].get_secret_value()
            ),
        }
        return subprocess.run(
            [str(ROOT / ".venv" / "bin" / "genstream"), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd=ROOT,
        )


@dataclass
class Fault:
    name: str
    at_s: float
    act: Callable[[ChaosStack], None]


POISONED_TOPICS = (
    "jobs.requested",
    "credits.ledger",
    "users.plans",
    "jobs.lifecycle",
    "jobs.outcomes",
    "jobs.progress",
    "jobs.retry",
    "jobs.synthetic.pro",
    "jobs.synthetic.free",
)
"""Every topic a service reads, given records that are not events."""


def poison(stack: ChaosStack) -> None:
    producer = Producer(stack.client(acks="all"))
    for topic in POISONED_TOPICS:
        producer.produce(topic, value=b"\x00not an event " + topic.encode(), key=b"chaos")
        producer.produce(
            topic,
            value=b'{"specversion": "1.0", "type": "genstream.job.started.v1", "data": 42}',
            key=b"chaos",
            headers=[("ce_type", b"genstream.job.started.v1")],
        )
    if producer.flush(30) != 0:
        raise RuntimeError("the poison was not acknowledged")


def parked_topics(stack: ChaosStack) -> dict[str, int]:
    """Records parked on the dead-letter topic, by the topic they came from."""
    consumer = Consumer(
        stack.client(
            **{"group.id": f"chaos-parked-{uuid.uuid4().hex}"},
            **{"enable.partition.eof": True, "enable.auto.commit": False},
        )
    )
    consumer.assign([TopicPartition(DEADLETTER.name, p, 0) for p in range(DEADLETTER.partitions)])
    counts: dict[str, int] = defaultdict(int)
    at_end: set[int] = set()
    deadline = time.monotonic() + 60
    while len(at_end) < DEADLETTER.partitions and time.monotonic() < deadline:
        message = consumer.poll(1)
        if message is None:
            continue
        error = message.error()
        if error is not None:
            if error.code() == KafkaError._PARTITION_EOF:
                at_end.add(message.partition())
            continue
        headers = dict(message.headers() or [])
        counts[(headers.get("dlq.topic") or b"?").decode()] += 1
    consumer.close()
    return dict(counts)


def default_faults() -> list[Fault]:
    def broker(stack: ChaosStack) -> None:
        stack.kafka("kill", 2)
        stack.kafka("start", 2)

    def service(name: str) -> Callable[[ChaosStack], None]:
        def act(stack: ChaosStack) -> None:
            stack.kill_service(name)
            stack.restart_services()

        return act

    def restart(name: str) -> Callable[[ChaosStack], None]:
        def act(stack: ChaosStack) -> None:
            stack.server(name, "stop")
            stack.server(name, "start")

        return act

    return [
        Fault("garbage into every input topic", 2, poison),
        Fault("kafka broker 2", 4, broker),
        Fault("stream processors", 10, service("processors")),
        Fault("gpu worker (synthetic)", 16, service("worker-synthetic")),
        Fault("projection", 22, service("projection")),
        Fault("api", 28, service("api")),
        Fault("postgresql restart", 34, restart("postgres")),
        Fault("s3 restart", 40, restart("s3")),
    ]


@dataclass
class Submissions:
    acknowledged: dict[str, str] = field(default_factory=dict)
    """job id -> user id, for every submission the API acknowledged."""
    unacknowledged: int = 0
    attempts: int = 0
    waited: int = 0
    """Submissions sent with ``Prefer: wait`` (every fifth)."""
    answered_finished: int = 0
    """Of those, the ones answered 201 with the job already ended."""


async def _user(client: httpx.AsyncClient, index: int, run: str) -> tuple[str, dict[str, str]]:
    email, password = f"chaos-{run}-{index}@example.com", "chaos-password-123"
    registered = await client.post("/v1/auth/register", json={"email": email, "password": password})
    registered.raise_for_status()
    token = await client.post("/v1/auth/token", data={"username": email, "password": password})
    token.raise_for_status()
    headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
    # Sign-up answers alike whether or not the address was new: the id comes from /v1/me.
    me = await client.get("/v1/me", headers=headers)
    me.raise_for_status()
    return str(me.json()["id"]), headers


async def _accounts(api_url: str, users: int, run: str) -> list[tuple[str, dict[str, str]]]:
    """The run's users, signed up before any fault begins."""
    gate = asyncio.Semaphore(8)  # sign-ups hash passwords: a few at a time, as real ones come

    async def one(client: httpx.AsyncClient, index: int) -> tuple[str, dict[str, str]]:
        async with gate:
            return await _user(client, index, run)

    async with httpx.AsyncClient(base_url=api_url, timeout=60) as client:
        return list(await asyncio.gather(*(one(client, n) for n in range(users))))


async def _submit_all(
    api_url: str,
    *,
    accounts: list[tuple[str, dict[str, str]]],
    jobs: int,
    rate_per_s: float,
    deadline_s: float,
    run: str,
) -> Submissions:
    result = Submissions()
    users = len(accounts)
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    # Requests in flight are bounded below the connection pool: when the API slows down (a
    # part of it restarting), arrivals wait here instead of timing out in the pool while
    # the API still works through the ones they abandoned.
    in_flight = asyncio.Semaphore(48)
    async with httpx.AsyncClient(base_url=api_url, timeout=60, limits=limits) as client:
        started = time.monotonic()
        give_up = started + deadline_s

        async def submit(index: int) -> None:
            await asyncio.sleep(max(0.0, started + index / rate_per_s - time.monotonic()))
            user_id, headers = accounts[index % users]
            key = f"chaos-{run}-{index}"
            body = {"type": "synthetic", "input": {"steps": 0, "step_ms": 0}}
            # Every fifth client waits for its job in the request, as Replicate's clients do.
            prefer = {"Prefer": "wait=5"} if index % 5 == 0 else {}
            result.waited += bool(prefer)
            while time.monotonic() < give_up:
                result.attempts += 1
                try:
                    async with in_flight:
                        response = await client.post(
                            "/v1/jobs",
                            json=body,
                            headers={**headers, **prefer, "Idempotency-Key": key},
                        )
                except httpx.HTTPError:
                    await asyncio.sleep(0.5)
                    continue
                if response.status_code in (200, 201, 202):
                    result.acknowledged[response.json()["id"]] = user_id
                    result.answered_finished += response.status_code == 201
                    return
                if response.status_code == 401:
                    # The access token expired during the run: sign in again.
                    with contextlib.suppress(httpx.HTTPError):
                        _, fresh = await _user_token(client, index % users, run)
                        headers.update(fresh)
                await asyncio.sleep(0.5)
            result.unacknowledged += 1

        await asyncio.gather(*(submit(index) for index in range(jobs)))
    return result


async def _user_token(
    client: httpx.AsyncClient, index: int, run: str
) -> tuple[str, dict[str, str]]:
    email, password = f"chaos-{run}-{index}@example.com", "chaos-password-123"
    token = await client.post("/v1/auth/token", data={"username": email, "password": password})
    token.raise_for_status()
    return email, {"Authorization": f"Bearer {token.json()['access_token']}"}


def _read_topic(stack: ChaosStack, topic: str, partitions: int) -> list[Any]:
    consumer = Consumer(
        stack.client(
            **{"group.id": f"chaos-reader-{uuid.uuid4().hex}"},
            **{"enable.partition.eof": True, "enable.auto.commit": False},
        )
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    envelopes, at_end = [], set()
    deadline = time.monotonic() + 120
    while len(at_end) < partitions and time.monotonic() < deadline:
        message = consumer.poll(1)
        if message is None:
            continue
        error = message.error()
        if error is not None:
            if error.code() == KafkaError._PARTITION_EOF:
                at_end.add(message.partition())
            continue
        at_end.discard(message.partition())
        try:
            envelopes.append(decode(message.value(), message.headers()))
        except ContractError:
            continue  # the poison this run wrote on purpose

    consumer.close()
    return envelopes


def _ends(stack: ChaosStack) -> dict[str, set[str]]:
    """Distinct terminal event kinds per job, copies of one event counted once."""
    ends: dict[str, set[str]] = defaultdict(set)
    for envelope in _read_topic(stack, JOBS_LIFECYCLE.name, JOBS_LIFECYCLE.partitions):
        kind = type(envelope.data).__name__
        if kind in TERMINAL:
            ends[envelope.data.job_id].add(kind)
    return ends


def _ledger(stack: ChaosStack) -> tuple[dict[str, tuple[int, int]], dict[str, int]]:
    """Per user (available, reserved) from the ledger, and per job its distinct settlements."""
    seen: set[str] = set()
    sums: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    settlements: dict[str, int] = defaultdict(int)
    for envelope in _read_topic(stack, CREDITS_LEDGER.name, CREDITS_LEDGER.partitions):
        if envelope.id in seen:
            continue
        seen.add(envelope.id)
        moved = movement(envelope.data)
        sums[envelope.user_id][0] += moved.available
        sums[envelope.user_id][1] += moved.reserved
        if moved.kind == "settled" and moved.job_id is not None:
            settlements[moved.job_id] += 1
    return {user: (s[0], s[1]) for user, s in sums.items()}, settlements


def run_chaos(
    stack: ChaosStack,
    *,
    jobs: int,
    users: int,
    rate_per_s: float,
    faults: list[Fault],
    settle_s: float = 600,
) -> dict[str, Any]:
    run = uuid.uuid4().hex[:8]
    done_faults: list[dict[str, Any]] = []
    fault_errors: list[str] = []
    accounts = asyncio.run(_accounts(stack.api_url, users, run))
    start = time.monotonic()

    halt = threading.Event()

    def inject() -> None:
        for fault in faults:
            # The schedule of the faults itself, not a wait for a result.
            if halt.wait(max(0.0, start + fault.at_s - time.monotonic())):
                return
            began = time.monotonic() - start
            try:
                fault.act(stack)
            except Exception as exc:
                fault_errors.append(f"{fault.name}: {exc}")
            done_faults.append(
                {
                    "fault": fault.name,
                    "at_s": round(began, 1),
                    "recovered_s": round(time.monotonic() - start - began, 1),
                }
            )

    injector = threading.Thread(target=inject, name="chaos-faults")
    injector.start()
    try:
        submissions = asyncio.run(
            _submit_all(
                stack.api_url,
                accounts=accounts,
                jobs=jobs,
                rate_per_s=rate_per_s,
                deadline_s=settle_s,
                run=run,
            )
        )
    except BaseException:
        # A failed run must not leave a fault acting on the stack while it is torn down.
        halt.set()
        raise
    finally:
        injector.join()

    acknowledged = submissions.acknowledged
    deadline = time.monotonic() + settle_s
    ends = _ends(stack)
    while any(job not in ends for job in acknowledged) and time.monotonic() < deadline:
        ends = _ends(stack)
    lost = sorted(job for job in acknowledged if job not in ends)
    multiple = sorted(job for job in acknowledged if len(ends.get(job, ())) > 1)

    mismatches, settlements = _ledger_mismatches(stack, run, users, time.monotonic() + 180)
    double_charged = sorted(job for job, count in settlements.items() if count > 1)
    rebuild = stack.cli("replay", "rebuild")
    stopped = stack.stopped_services()
    return {
        "acknowledged": len(acknowledged),
        "unacknowledged": submissions.unacknowledged,
        "submission_attempts": submissions.attempts,
        "waited_in_request": submissions.waited,
        "answered_finished": submissions.answered_finished,
        # FREE runs two jobs of a user at once here: the rest of each user's wait their turn.
        "free_max_concurrent_jobs": 2,
        "terminal": sum(1 for job in acknowledged if job in ends),
        "lost": len(lost),
        "lost_jobs": lost[:20],
        "multiple_ends": len(multiple),
        "double_charged": len(double_charged),
        "ledger_mismatches": mismatches,
        "rebuild_equal": rebuild.returncode == 0,
        "rebuild_report": (rebuild.stdout + rebuild.stderr)[-2000:],
        "ends": dict(
            sorted(
                {
                    kind: sum(1 for job in acknowledged if kind in ends.get(job, ()))
                    for kind in TERMINAL
                }.items()
            )
        ),
        "parked_by_topic": parked_topics(stack),
        "stopped_services": stopped,
        "faults": done_faults,
        "fault_errors": fault_errors,
        "duration_s": round(time.monotonic() - start, 1),
    }


def _ledger_mismatches(
    stack: ChaosStack,
    run: str,
    users: int,
    deadline: float,
) -> tuple[int, dict[str, int]]:
    """Users whose read-model balance differs from their ledger's sum once the projection
    has caught up (or the deadline passed), and each job's distinct settlements."""

    async def read_all() -> dict[str, tuple[int, int]]:
        async with httpx.AsyncClient(base_url=stack.api_url, timeout=20) as client:
            found = {}
            for index in range(users):
                _, headers = await _user_token(client, index, run)
                me = (await client.get("/v1/me", headers=headers)).json()
                credits = (await client.get("/v1/credits", headers=headers)).json()
                found[str(me["id"])] = (credits["balance"], credits["reserved"])
            return found

    while True:
        # Settlements follow the jobs' ends: the ledger is read again each time, as is the
        # read model, until both agree or the deadline passes.
        balances, settlements = _ledger(stack)
        read = asyncio.run(read_all())
        wrong = [user for user, figures in read.items() if balances.get(user, (0, 0)) != figures]
        if not wrong or time.monotonic() > deadline:
            return len(wrong), settlements


def write_report(report: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
