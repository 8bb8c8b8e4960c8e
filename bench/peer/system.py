"""The Celery peer under test: a Redis of its own (``infra/redis.sh``), Celery workers and
the FastAPI endpoint as processes; job events arrive on a Redis pub/sub channel."""

from __future__ import annotations

import time
import urllib.request
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import redis

from bench.peer.celery_app import CHANNEL, TIERS, app, synthetic
from bench.procs import Processes, wait_until
from bench.system import Endpoint, JobSpec
from bench.watch import EventClock

__all__ = ["PeerSystem", "RedisClock"]

BODY = '{"type": "synthetic", "input": {"steps": 0, "step_ms": 0, "output_bytes": 0}}'


class RedisClock(EventClock):
    """Notes ``<kind> <job id>`` messages of the peer's channel as they arrive."""

    def __init__(self, url: str) -> None:
        super().__init__()
        client: Any = redis.Redis.from_url(url)
        self._pubsub: Any = client.pubsub(ignore_subscribe_messages=True)
        self._pubsub.subscribe(CHANNEL)

    def _run(self) -> None:
        try:
            while not self._stopping.is_set():
                message = self._pubsub.get_message(timeout=0.05)
                if message is None:
                    continue
                at = time.time()
                kind, _, job_id = message["data"].decode().partition(" ")
                self.note(kind, job_id.split(" ")[0], at)
        finally:
            self._pubsub.close()


class PeerSystem:
    name = "celery"

    def __init__(
        self, *, broker_url: str, run_dir: Path, users: int, api_port: int, api_workers: int
    ) -> None:
        self.broker_url = broker_url
        self.run_dir = run_dir / "celery"
        self.api_port = api_port
        self.api_workers = api_workers
        self.processes = Processes(self.run_dir / "logs")
        self.users = [f"peer-{uuid.uuid4().hex}" for _ in range(users)]
        self.clock = RedisClock(broker_url)
        self._env = {"CELERY_BROKER_URL": broker_url}
        app.conf.broker_url = broker_url

    def setup(self) -> None:
        redis.Redis.from_url(self.broker_url).flushdb()
        self.clock.start()

    def close(self) -> None:
        self.processes.stop()
        self.purge()
        self.clock.stop()

    def purge(self) -> None:
        """Empties every tier's queue (and its priority sub-queues) and the unacked set.

        ``app.control.purge`` only knows the queues this process declared; the endpoint's
        processes declared the ones the submit runs filled.
        """
        client: Any = redis.Redis.from_url(self.broker_url)
        keys = [key for tier in TIERS for key in client.scan_iter(match=f"{tier}*")]
        keys += list(client.scan_iter(match="unacked*"))
        if keys:
            client.delete(*keys)
        client.close()

    # -- the endpoint ----------------------------------------------------------------------------
    def start_api(self, *, purpose: Literal["submit", "dispatch"]) -> Endpoint:
        del purpose  # the queue is the same; during submit no worker takes from it
        self.processes.python(
            "api",
            [
                "-m",
                "uvicorn",
                "bench.peer.api:create",
                "--factory",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.api_port),
                "--workers",
                str(self.api_workers),
                "--no-access-log",
                "--log-level",
                "warning",
            ],
            self._env,
        )
        wait_until("the peer's endpoint answers", self._api_ready, timeout_s=60)
        return Endpoint(
            "127.0.0.1", self.api_port, "/v1/jobs", BODY, tuple(self.users), self.api_workers
        )

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
        if not any(p.name == "worker" for p in self.processes.running):
            self.purge()  # what the submit runs queued, with nobody to run it

    # -- workers ---------------------------------------------------------------------------------
    def start_workers(self, count: int) -> None:
        self.stop_workers()
        self.processes.python(
            "worker",
            [
                "-m",
                "celery",
                "-A",
                "bench.peer.celery_app",
                "worker",
                "-Q",
                ",".join(TIERS),
                "--pool",
                "prefork",
                "--concurrency",
                str(count),
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "--loglevel",
                "WARNING",
                "-n",
                f"bench-{uuid.uuid4().hex[:6]}@%h",
            ],
            self._env,
        )
        probes = [JobSpec(f"job_probe{uuid.uuid4().hex}", i, "pro", 0, 0) for i in range(count * 4)]
        self.enqueue(probes)
        done = self.clock.wait_for("completed", [p.job_id for p in probes], timeout_s=120)
        self.processes.check()
        if len(done) < len(probes):
            raise TimeoutError(f"only {len(done)} of {len(probes)} peer probe jobs completed")

    def stop_workers(self) -> None:
        self.processes.stop(["worker"], grace_s=60)

    def enqueue(self, jobs: Sequence[JobSpec]) -> None:
        for job in jobs:
            synthetic.apply_async(
                args=(
                    self.users[job.user % len(self.users)],
                    {"steps": job.steps, "step_ms": job.step_ms, "output_bytes": 0},
                ),
                task_id=job.job_id,
                queue=job.tier,
            )

    def admitted(self, job_ids: Sequence[str], *, timeout_s: float) -> int:
        del timeout_s  # apply_async returned: the jobs are in their queues
        return len(job_ids)

    def pids(self) -> dict[str, int]:
        return {p.name: p.pid for p in self.processes.running}

    def kafka_meter(self) -> None:
        """Redis has no consumer groups: no records read per job."""
        return None
