"""A failed job re-run from the dead-letter topic: a new job, its own id, charged once.

The services run as processes on this test's topics and schema. A synthetic job fails its
only attempt and is parked. A plain redrive sends nothing back (a worker would skip the ended
job as a duplicate) and reports it. After the cause is fixed (the worker gets a second
attempt), the job is re-run: once, however often that is asked, as a new job that completes,
with one reservation and one settlement of its own, while the failed job's hold was released.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from genstream.cli import main
from genstream.db import sync_engine
from genstream.db.models import Job
from genstream.kafka.parked import read_parked
from genstream.redrive import redrive
from genstream.rerun import rerun_failed, rerun_key
from genstream.settings import StackSettings
from gpu_consumers.topology import WorkerTopology
from producers import EventProducer
from stream_processors.topology import Topology
from tests.integration.running_services import (
    Namespace,
    Processes,
    answers,
    free_port,
    namespace_topics,
    signed_up,
    start_services,
    start_worker,
)
from tests.polling import poll_until

FAILING_ONCE = {"steps": 2, "step_ms": 10, "fail_at": 1, "fail_attempts": 1}


@pytest.fixture
def services(
    stack: StackSettings, pg_schema: tuple[Any, str], unique: str, tmp_path: Path
) -> Iterator[tuple[Namespace, Processes, Topology, WorkerTopology]]:
    prefix = f"test.{unique}."
    space = Namespace(prefix, unique, pg_schema[1], free_port(), tmp_path)
    children = Processes(tmp_path)
    with ExitStack() as cleanup:
        processors, workers = cleanup.enter_context(namespace_topics(stack, prefix))
        cleanup.callback(children.stop)
        start_services(children, space, _quiet(), worker={"GENSTREAM_WORKER_MAX_ATTEMPTS": "1"})
        poll_until(lambda: answers(f"{space.api}/healthz"), timeout_s=60, what=children.alive)
        try:
            yield space, children, processors, workers
        except BaseException:
            print(children.logs())
            raise


def _quiet() -> dict[str, str]:
    return {**os.environ, "OTEL_SDK_DISABLED": "true"}


def _job(client: httpx.Client, headers: dict[str, str], job_id: str) -> dict[str, Any]:
    body: dict[str, Any] = client.get(f"/v1/jobs/{job_id}", headers=headers).json()
    return body


def test_a_failed_job_is_re_run_once_as_a_new_job_charged_once(
    stack: StackSettings,
    services: tuple[Namespace, Processes, Topology, WorkerTopology],
    unique: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    space, children, processors, workers = services
    with httpx.Client(base_url=space.api, timeout=30) as client:
        headers, _ = signed_up(client, stack, processors, credits=100)
        poll_until(
            lambda: client.get("/v1/credits", headers=headers).json()["balance"] == 100,
            timeout_s=30,
            what="the grant projected",
        )
        submitted = client.post(
            "/v1/jobs", headers=headers, json={"type": "synthetic", "input": FAILING_ONCE}
        )
        assert submitted.status_code == 202, submitted.text
        failed_id = submitted.json()["id"]
        poll_until(
            lambda: _job(client, headers, failed_id).get("status") == "failed",
            timeout_s=60,
            what=children.alive,
        )

        def parked() -> list[Any]:
            return [
                record
                for record in read_parked(stack.kafka, workers.deadletter.name)
                if record.key == failed_id.encode()
            ]

        poll_until(lambda: bool(parked()), timeout_s=20, what="the failed job parked")
        assert [record.failed_job for record in parked()] == [True]
        assert parked()[0].origin.startswith(f"{space.prefix}jobs.synthetic.")

        # Sending an ended job's dispatch back would run nothing: a redrive leaves it parked.
        group = f"redrive-{unique}"
        plain = redrive(stack.kafka, deadletter=workers.deadletter, group_id=group, idle_s=2)
        assert (plain.failed_jobs, sum(plain.redriven.values()), plain.reruns) == (1, 0, [])

        # The cause is fixed: the worker now gives a job a second attempt.
        children.stop("worker")
        start_worker(
            children,
            space,
            _quiet(),
            GENSTREAM_WORKER_MAX_ATTEMPTS="2",
            GENSTREAM_WORKER_RETRY_BASE_MS="0",
            GENSTREAM_WORKER_RUN_RETRY_RELAY="true",
        )
        engine = sync_engine(stack.pg, schema=space.schema)
        producer = EventProducer(settings=stack.kafka, linger_ms=0)
        try:

            def rerun(job_id: str) -> Any:
                return rerun_failed(engine, producer, job_id, topic=processors.requested)

            # The operator's command re-runs it: a new job, sent once.
            monkeypatch.setenv("PGOPTIONS", f"-csearch_path={space.schema}")
            command = ["deadletter", "rerun", "--topic-prefix", space.prefix, "--job", failed_id]
            assert main(command) == 0
            printed = capsys.readouterr().out.splitlines()
            assert printed[-1] == "1 re-run(s) made, 0 not made again or not failed"
            original, how, arrow, rerun_id = printed[0].split()
            assert (original, how, arrow) == (f"{failed_id}:", "created", "->")
            assert rerun_id != failed_id
            # Asked again, by a redrive or by hand: the same re-run, no second job.
            again = redrive(
                stack.kafka,
                deadletter=workers.deadletter,
                group_id=f"rerun-{unique}",
                idle_s=2,
                rerun=rerun,
            )
            [made] = again.reruns
            assert (made.how, made.job_id) == ("existing", rerun_id)
            assert rerun(failed_id).job_id == rerun_id
            assert rerun("job_unknown").how == "unknown"
            with engine.connect() as connection:
                keyed = connection.execute(
                    select(Job.id).where(Job.idempotency_key == rerun_key(failed_id))
                ).scalars()
                assert list(keyed) == [rerun_id]
        finally:
            producer.close()
            engine.dispose()

        poll_until(
            lambda: _job(client, headers, rerun_id).get("status") == "completed",
            timeout_s=60,
            what=children.alive,
        )
        completed = _job(client, headers, rerun_id)
        cost = completed["credits_charged"]
        assert cost > 0
        assert completed["attempt"] == 2
        original = _job(client, headers, failed_id)
        assert (original["status"], original["credits_charged"]) == ("failed", 0)
        assert completed["input"] == original["input"]
        listed = client.get("/v1/jobs", headers=headers).json()["jobs"]
        assert sorted(job["id"] for job in listed) == sorted([failed_id, rerun_id])

        def ledger() -> dict[str, Any]:
            body: dict[str, Any] = client.get("/v1/credits", headers=headers).json()
            return body

        poll_until(
            lambda: ledger()["balance"] == 100 - cost and ledger()["reserved"] == 0,
            timeout_s=30,
            what="the re-run settled",
        )
        moves = [(entry["job_id"], entry["kind"]) for entry in ledger()["ledger"]]
        assert sorted(kind for job, kind in moves if job == failed_id) == ["released", "reserved"]
        assert sorted(kind for job, kind in moves if job == rerun_id) == ["reserved", "settled"]
