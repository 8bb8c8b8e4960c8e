"""The whole pipeline behind one browser: the API serving the web app, the stream processors,
image and synthetic workers with tiny models, and the projection, each a real process on the
running stack with topics (``test.<unique>.``), a database schema and consumer groups of
its own, like ``tests/chaos/driver.py``'s stack but on the shared brokers.

The sign-up grant is written to the outbox of the run's schema, which no relay publishes to the
run's topics; credits reach the processors and the projection through the run's ledger topic
instead, as the relay would put them there (``grant``).
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import BinaryIO

import httpx
from sqlalchemy import select, text, update

from contracts import Workload, worker_group
from genstream.db import sync_engine, upgrade
from genstream.db.models import User
from genstream.settings import StackSettings
from genstream.system_status import StatusScope
from gpu_consumers.tiny_models import build_tiny_models
from tests.integration.gpu_consumers.harness import Workers, models_env
from tests.integration.stream_processors.harness import Processors
from tests.polling import poll_until

ROOT = Path(__file__).resolve().parents[2]


class Pipeline:
    """Every service a user's job passes through, started together, stopped together."""

    def __init__(self, stack: StackSettings, unique: str, run_dir: Path) -> None:
        self.stack = stack
        self.unique = unique
        self.prefix = f"test.{unique}."
        self.schema = f"test_{unique}"
        self.run_dir = run_dir
        self._cleanup = ExitStack()
        self._logs: list[BinaryIO] = []
        self._processes: list[subprocess.Popen[bytes]] = []
        self.api_url = ""
        self.processors: Processors | None = None
        self.workers: list[Workers] = []
        self.engine = sync_engine(stack.pg, schema=self.schema)

    def start(self) -> None:
        upgrade(self.stack.pg, schema=self.schema)
        self._cleanup.callback(self._drop_schema)
        models = build_tiny_models(ROOT / ".cache" / "tiny-models")
        self.processors = Processors(self.stack, self.unique, self._dir("processors"))
        self._cleanup.callback(self.processors.close)
        self.processors.start()
        # Model-free jobs need no child process of their own to be watched in.
        inline = {"GENSTREAM_WORKER_ISOLATION": "inline"}
        isolation: dict[Workload, dict[str, str]] = {Workload.IMAGE: {}, Workload.SYNTHETIC: inline}
        for workload in isolation:
            workers = Workers(
                self.stack,
                self.unique,
                self._dir(f"worker-{workload.value}"),
                workload,
                env={**models_env(dict(models)), "OMP_NUM_THREADS": "1", **isolation[workload]},
            )
            self._cleanup.callback(workers.close)
            workers.start()
            self.workers.append(workers)
        self._process(
            "projection",
            ["-m", "api.projection.main"],
            {
                "GENSTREAM_PROJECTION_GROUP": f"projection-{self.unique}",
                "GENSTREAM_PROJECTION_TOPIC_PREFIX": self.prefix,
                "GENSTREAM_PROJECTION_PG_SCHEMA": self.schema,
                "GENSTREAM_PROJECTION_SESSION_TIMEOUT_S": "6",
            },
        )
        self._bind_api()
        self._api_env = {
            "GENSTREAM_ENVIRONMENT": "test",
            "GENSTREAM_AUTH__JWT_SECRET": secrets.token_urlsafe(48),
            "GENSTREAM_TEST_PG_SCHEMA": self.schema,
            "GENSTREAM_JOBS__REQUESTED_TOPIC": f"{self.prefix}jobs.requested",
            "GENSTREAM_JOBS__SYNTHETIC_ENABLED": "true",
            "GENSTREAM_READS__PROGRESS_TOPIC": f"{self.prefix}jobs.progress",
            "GENSTREAM_READS__SSE_HEARTBEAT_S": "1",
            "GENSTREAM_READS__SSE_POLL_S": "1",
            "GENSTREAM_TEST_STATUS": self._status_scope().model_dump_json(),
        }
        self._start_api()
        for workers in self.workers:
            workers.wait_joined(timeout_s=60)

    def _status_scope(self) -> StatusScope:
        assert self.processors is not None
        app_id = self.processors.app_id
        groups = [app_id, f"projection-{self.unique}"]
        groups += [f"{self.prefix}{worker_group(w.workload)}" for w in self.workers]
        return StatusScope(
            topic_prefix=self.prefix,
            processors_group=app_id,
            groups=tuple(groups),
            # The API is the one service of the run with an address to ask.
            services={"api": f"{self.api_url}/healthz"},
        )

    def make_admin(self, email: str) -> None:
        """What ``genstream admin grant`` does, in the run's schema."""
        with self.engine.begin() as connection:
            connection.execute(update(User).where(User.email == email).values(role="admin"))

    @property
    def url(self) -> str:
        return self.api_url

    def user_id(self, email: str) -> str:
        with self.engine.connect() as connection:
            found = connection.scalar(select(User.id).where(User.email == email))
        assert found is not None, f"no account for {email}"
        return str(found)

    def grant(self, user_id: str, amount: int) -> None:
        """Credits on the run's ledger, once the processors have counted them."""
        assert self.processors is not None
        self.processors.grant(user_id, amount)

    def logs(self) -> str:
        """The tails of every service's log, for a failure's message."""
        tails = []
        for log in sorted(self.run_dir.rglob("*.log")):
            tail = log.read_text(errors="replace")[-1500:]
            tails.append(f"--- {log.relative_to(self.run_dir)}\n{tail}")
        return "\n".join(tails)

    def stop(self) -> None:
        # Nothing of the run outlives it (its topics, groups and schema go too), so nothing
        # needs a graceful end.
        if self.processors is not None:
            self.processors.kill()
        for workers in self.workers:
            for index in range(len(workers.processes)):
                workers.kill(index)
        for process in self._processes:
            if process.poll() is None:
                process.kill()
        for process in self._processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        self._cleanup.close()
        for log in self._logs:
            log.close()
        self.engine.dispose()

    def _dir(self, name: str) -> Path:
        path = self.run_dir / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _process(
        self, name: str, args: list[str], env: dict[str, str], *, pass_fds: tuple[int, ...] = ()
    ) -> subprocess.Popen[bytes]:
        log = (self.run_dir / f"{name}.log").open("ab")
        self._logs.append(log)
        process = subprocess.Popen(
            [sys.executable, *args],
            cwd=ROOT,
            env={
                **os.environ,
                "GENSTREAM_KAFKA__BOOTSTRAP_SERVERS": self.stack.kafka.bootstrap_servers,
                **env,
            },
            stdout=log,
            stderr=subprocess.STDOUT,
            pass_fds=pass_fds,
        )
        self._processes.append(process)
        return process

    def _bind_api(self) -> None:
        """The API's loopback port, bound here and handed to each API process started.

        The test keeps the socket, so that a restarted API serves the same address and
        connections made meanwhile wait in its backlog instead of being refused.
        """
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", 0))
        listener.listen(128)
        self._cleanup.callback(listener.close)
        self._listener = listener
        self.api_url = f"http://127.0.0.1:{listener.getsockname()[1]}"

    def _start_api(self) -> None:
        fd = self._listener.fileno()
        args = ["-m", "uvicorn", "--factory", "tests.browser.served:app"]
        args += ["--fd", str(fd), "--log-level", "warning"]
        api = self._process("api", args, self._api_env, pass_fds=(fd,))
        self._api = api

        def answers() -> bool:
            assert api.poll() is None, f"the API exited:\n{self.logs()}"
            try:
                return httpx.get(f"{self.api_url}/healthz", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        # Importing the app takes a few CPU seconds, far longer on a loaded machine.
        poll_until(answers, timeout_s=120, interval_s=0.1, what="the API to answer /healthz")

    def restart_api(self) -> None:
        """Kills the API (every open connection drops) and starts it again on the same port."""
        self._api.kill()
        self._api.wait(30)
        self._start_api()

    def _drop_schema(self) -> None:
        with self.engine.begin() as connection:
            connection.execute(text(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE'))
