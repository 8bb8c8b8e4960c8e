"""genstream's services as child processes on a test's own topics, schema and groups.

The processors, a synthetic worker, the projection and the API run as ``make up`` runs them,
each a process of its own, against the real stack; only the names they use are the test's.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from contracts import CreditsGranted, Envelope, Workload
from genstream.kafka import delete_topics, ensure_topics
from genstream.settings import StackSettings
from gpu_consumers.topology import WorkerTopology
from producers import EventProducer
from stream_processors.topology import Topology

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


class Processes:
    """Child processes with their logs; all are stopped at the end, their logs shown on failure."""

    def __init__(self, log_dir: Path) -> None:
        self._log_dir = log_dir
        self._children: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, args: list[str], env: dict[str, str]) -> None:
        log = (self._log_dir / f"{name}.log").open("ab")
        self._children[name] = subprocess.Popen(
            args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()

    def alive(self) -> str:
        gone = [name for name, child in self._children.items() if child.poll() is not None]
        return f"exited: {gone}" if gone else "all running"

    def logs(self) -> str:
        return "\n".join(
            f"--- {path.name} ---\n{path.read_text(errors='replace')[-2000:]}"
            for path in sorted(self._log_dir.glob("*.log"))
        )

    def stop(self, *names: str) -> None:
        """Stops ``names`` (all when none is given) and waits for them to exit."""
        chosen = [self._children.pop(n) for n in names] if names else list(self._children.values())
        for child in chosen:
            child.terminate()
        for child in chosen:
            try:
                child.wait(15)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait(5)
        if not names:
            self._children.clear()


@dataclass(frozen=True, slots=True)
class Namespace:
    """What a test's services share: topic prefix, names, schema, the API's port, logs."""

    prefix: str
    unique: str
    schema: str
    api_port: int
    logs: Path

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"


@contextmanager
def namespace_topics(
    stack: StackSettings, prefix: str
) -> Iterator[tuple[Topology, WorkerTopology]]:
    """The processors' and the synthetic workers' topics under ``prefix``, created for the
    block and deleted after it."""
    processors = Topology(prefix=prefix)
    workers = WorkerTopology(Workload.SYNTHETIC, prefix=prefix)
    topics = list(
        {spec.name: spec for spec in [*processors.all_topics, *workers.all_topics]}.values()
    )
    ensure_topics(stack.kafka, topics)
    try:
        yield processors, workers
    finally:
        delete_topics(stack.kafka, [spec.name for spec in topics])


def start_worker(
    children: Processes, space: Namespace, env: Mapping[str, str], **settings: str
) -> None:
    children.start(
        "worker",
        [sys.executable, "-m", "gpu_consumers.main"],
        {
            **env,
            "GENSTREAM_WORKER_WORKLOAD": "synthetic",
            "GENSTREAM_WORKER_ID": f"w-{space.unique}",
            "GENSTREAM_WORKER_TOPIC_PREFIX": space.prefix,
            "GENSTREAM_WORKER_WORK_DIR": str(space.logs / "work"),
            "GENSTREAM_WORKER_DEVICE": "cpu",
            "GENSTREAM_WORKER_RUN_RETRY_RELAY": "false",
            **settings,
        },
    )


def start_services(
    children: Processes,
    space: Namespace,
    env: Mapping[str, str] | None = None,
    *,
    worker: Mapping[str, str] | None = None,
) -> None:
    """Starts the processors, a synthetic worker (with ``worker``'s settings), the projection
    and the API, each with ``env`` (default: this process's environment)."""
    base = dict(env if env is not None else os.environ)
    python = sys.executable
    children.start(
        "processors",
        [python, "-m", "stream_processors.main"],
        {
            **base,
            "GENSTREAM_PROCESSORS_APP_ID": f"test-processors-{space.unique}",
            "GENSTREAM_PROCESSORS_TOPIC_PREFIX": space.prefix,
            "GENSTREAM_PROCESSORS_DATA_DIR": str(space.logs / "processors"),
        },
    )
    start_worker(children, space, base, **dict(worker or {}))
    children.start(
        "projection",
        [python, "-m", "api.projection.main"],
        {
            **base,
            "GENSTREAM_PROJECTION_GROUP": f"test-projection-{space.unique}",
            "GENSTREAM_PROJECTION_TOPIC_PREFIX": space.prefix,
            "GENSTREAM_PROJECTION_PG_SCHEMA": space.schema,
        },
    )
    children.start(
        "api",
        [python, "-c", "from api.main import main; main()"],
        {
            **base,
            # libpq reads it: the API's connections use the test's schema.
            "PGOPTIONS": f"-csearch_path={space.schema}",
            "GENSTREAM_API__PORT": str(space.api_port),
            "GENSTREAM_JOBS__REQUESTED_TOPIC": f"{space.prefix}jobs.requested",
            "GENSTREAM_JOBS__SYNTHETIC_ENABLED": "true",
        },
    )


def signed_up(
    client: httpx.Client, stack: StackSettings, topology: Topology, *, credits: int
) -> tuple[dict[str, str], str]:
    """A new user's authorization headers and id, granted ``credits`` on the ledger."""
    email = f"user-{uuid.uuid4().hex[:10]}@example.com"
    password = "a long enough password"
    registered = client.post("/v1/auth/register", json={"email": email, "password": password})
    assert registered.status_code == 202, registered.text
    token = client.post("/v1/auth/token", data={"username": email, "password": password}).json()
    headers = {"Authorization": f"Bearer {token['access_token']}"}
    user_id: str = client.get("/v1/me", headers=headers).json()["id"]
    # The sign-up grant travels through the outbox relay, which these tests do not run.
    producer = EventProducer(settings=stack.kafka)
    try:
        grant = CreditsGranted(amount=credits, reason="test", idempotency_key=f"grant:{user_id}")
        producer.send_and_wait(
            topology.ledger, Envelope.wrap(grant, user_id=user_id, source="genstream/tests")
        )
    finally:
        producer.close()
    return headers, user_id
