"""One job, one trace: the API, the processors, a worker and the projection, read back from Jaeger.

Every service runs as its own process on this test's topics, schema and groups, exporting OTLP
to a Jaeger of the test's own (the binary ``infra/setup.sh jaeger`` builds) on free ports. The
job's POST carries a ``traceparent``; the trace Jaeger's query API returns for it must hold
spans of all four services, each one's parent in the trace, in causal order.
"""

from __future__ import annotations

import itertools
import json
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from contracts import CreditsGranted, Envelope, Workload
from genstream.kafka import delete_topics, ensure_topics
from genstream.settings import StackSettings
from gpu_consumers.topology import WorkerTopology
from producers import EventProducer
from stream_processors.topology import Topology
from tests.polling import poll_until

ROOT = Path(__file__).resolve().parents[2]
JAEGER = ROOT / ".cache" / "bin" / "jaeger"
SERVICES = {
    "genstream-api",
    "genstream-processors",
    "genstream-worker-synthetic",
    "genstream-projection",
}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _answers(url: str) -> bool:
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

    def stop(self) -> None:
        for child in self._children.values():
            child.terminate()
        for child in self._children.values():
            try:
                child.wait(15)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait(5)


@pytest.fixture
def jaeger(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A private Jaeger: (OTLP/HTTP endpoint, query URL)."""
    if not JAEGER.exists():
        pytest.fail("Jaeger is not built: run infra/setup.sh jaeger (make test does)")
    ports = {
        name: str(_free_port()) for name in ("UI", "QUERY_GRPC", "OTLP_GRPC", "OTLP_HTTP", "HEALTH")
    }
    env = {
        **os.environ,
        **{f"GENSTREAM_JAEGER_{name}_PORT": port for name, port in ports.items()},
        # Jaeger traces its own queries by default, to an endpoint nobody listens on.
        "OTEL_SDK_DISABLED": "true",
        "OTEL_TRACES_SAMPLER": "always_off",
    }
    with (tmp_path / "jaeger.log").open("ab") as log:
        server = subprocess.Popen(
            [str(JAEGER), "--config", str(ROOT / "infra" / "jaeger" / "config.yaml")],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    query = f"http://127.0.0.1:{ports['UI']}"
    try:
        poll_until(
            lambda: _answers(f"{query}/api/services"), timeout_s=20, what="Jaeger's query API"
        )
        yield f"http://127.0.0.1:{ports['OTLP_HTTP']}", query
    finally:
        server.terminate()
        server.wait(15)


def _service_env(otlp: str, **settings: str) -> dict[str, str]:
    return {
        **os.environ,
        "OTEL_EXPORTER_OTLP_ENDPOINT": otlp,
        # Spans leave every 100 ms, so the trace is complete soon after the job.
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        "OTEL_TRACES_SAMPLER": "parentbased_always_on",
        **settings,
    }


def _trace(query: str, trace_id: str) -> dict[str, Any] | None:
    answer = httpx.get(f"{query}/api/traces/{trace_id}", timeout=5)
    if answer.status_code != 200:
        return None
    data = answer.json().get("data") or []
    return data[0] if data else None


def _services(trace: dict[str, Any] | None) -> set[str]:
    if trace is None:
        return set()
    return {process["serviceName"] for process in trace["processes"].values()}


def _complete(trace: dict[str, Any] | None) -> bool:
    if not _services(trace) >= SERVICES:
        return False
    assert trace is not None
    names = {(span["operationName"], _tag(span, "genstream.event")) for span in trace["spans"]}
    return ("projection.write", "genstream.job.completed.v1") in names


def _tag(span: dict[str, Any], key: str) -> Any:
    return next((tag["value"] for tag in span.get("tags", []) if tag["key"] == key), None)


def test_a_job_is_one_trace_across_the_services(
    stack: StackSettings,
    pg_schema: tuple[Any, str],
    unique: str,
    jaeger: tuple[str, str],
    tmp_path: Path,
) -> None:
    otlp, query = jaeger
    prefix = f"test.{unique}."
    processors = Topology(prefix=prefix)
    workers = WorkerTopology(Workload.SYNTHETIC, prefix=prefix)
    topics = list(
        {spec.name: spec for spec in [*processors.all_topics, *workers.all_topics]}.values()
    )
    ensure_topics(stack.kafka, topics)
    api_port = _free_port()
    api = f"http://127.0.0.1:{api_port}"
    children = Processes(tmp_path)
    try:
        with ExitStack() as cleanup:
            cleanup.callback(delete_topics, stack.kafka, [spec.name for spec in topics])
            cleanup.callback(children.stop)
            _start_services(children, otlp, prefix, unique, pg_schema[1], api_port, tmp_path)
            poll_until(lambda: _answers(f"{api}/healthz"), timeout_s=60, what=children.alive)
            trace_id, job_id, answer_trace = _submit(api, stack, processors, children)
            # The caller's trace is honoured, and the answer names the API's span in it.
            assert answer_trace.startswith(f"00-{trace_id}-")

            trace: list[dict[str, Any] | None] = [None]

            def traced() -> bool:
                trace[0] = _trace(query, trace_id)
                return _complete(trace[0])

            poll_until(
                traced,
                timeout_s=45,
                interval_s=0.3,
                what=lambda: f"services {_services(trace[0])}; {children.alive()}",
            )
            _assert_causal(trace[0], trace_id, job_id)
    except AssertionError:
        print(children.logs())
        raise


def _start_services(
    children: Processes, otlp: str, prefix: str, unique: str, schema: str, api_port: int, logs: Path
) -> None:
    python = sys.executable
    children.start(
        "processors",
        [python, "-m", "stream_processors.main"],
        _service_env(
            otlp,
            GENSTREAM_PROCESSORS_APP_ID=f"test-processors-{unique}",
            GENSTREAM_PROCESSORS_TOPIC_PREFIX=prefix,
            GENSTREAM_PROCESSORS_DATA_DIR=str(logs / "processors"),
        ),
    )
    children.start(
        "worker",
        [python, "-m", "gpu_consumers.main"],
        _service_env(
            otlp,
            GENSTREAM_WORKER_WORKLOAD="synthetic",
            GENSTREAM_WORKER_ID=f"w-{unique}",
            GENSTREAM_WORKER_TOPIC_PREFIX=prefix,
            GENSTREAM_WORKER_WORK_DIR=str(logs / "work"),
            GENSTREAM_WORKER_DEVICE="cpu",
            GENSTREAM_WORKER_RUN_RETRY_RELAY="false",
        ),
    )
    children.start(
        "projection",
        [python, "-m", "api.projection.main"],
        _service_env(
            otlp,
            GENSTREAM_PROJECTION_GROUP=f"test-projection-{unique}",
            GENSTREAM_PROJECTION_TOPIC_PREFIX=prefix,
            GENSTREAM_PROJECTION_PG_SCHEMA=schema,
        ),
    )
    children.start(
        "api",
        [python, "-c", "from api.main import main; main()"],
        _service_env(
            otlp,
            # libpq reads it: the API's connections use the test's schema.
            PGOPTIONS=f"-csearch_path={schema}",
            GENSTREAM_API__PORT=str(api_port),
            GENSTREAM_JOBS__REQUESTED_TOPIC=f"{prefix}jobs.requested",
            GENSTREAM_JOBS__SYNTHETIC_ENABLED="true",
        ),
    )


def _submit(
    api: str, stack: StackSettings, topology: Topology, children: Processes
) -> tuple[str, str, str]:
    email = f"trace-{uuid.uuid4().hex[:10]}@example.com"
    password = "a long enough password"
    with httpx.Client(base_url=api, timeout=30) as client:
        assert (
            client.post(
                "/v1/auth/register", json={"email": email, "password": password}
            ).status_code
            == 202
        )
        token = client.post("/v1/auth/token", data={"username": email, "password": password}).json()
        headers = {"Authorization": f"Bearer {token['access_token']}"}
        user_id = client.get("/v1/me", headers=headers).json()["id"]
        # The sign-up grant travels through the outbox relay, which this test does not run.
        producer = EventProducer(settings=stack.kafka)
        try:
            grant = CreditsGranted(amount=100, reason="test", idempotency_key=f"grant:{user_id}")
            producer.send_and_wait(
                topology.ledger, Envelope.wrap(grant, user_id=user_id, source="genstream/tests")
            )
        finally:
            producer.close()
        trace_id = uuid.uuid4().hex
        caller_span = uuid.uuid4().hex[:16]
        submitted = client.post(
            "/v1/jobs",
            headers={**headers, "traceparent": f"00-{trace_id}-{caller_span}-01"},
            json={"type": "synthetic", "input": {"steps": 3, "step_ms": 20}},
        )
        assert submitted.status_code == 202, submitted.text
        job_id = submitted.json()["id"]

        def completed() -> bool:
            return (
                client.get(f"/v1/jobs/{job_id}", headers=headers).json().get("status")
                == "completed"
            )

        poll_until(completed, timeout_s=60, interval_s=0.2, what=children.alive)
        return trace_id, job_id, submitted.headers.get("traceresponse", "")


def _assert_causal(trace: dict[str, Any] | None, trace_id: str, job_id: str) -> None:
    assert trace is not None
    spans = {span["spanID"]: span for span in trace["spans"]}
    service = {key: process["serviceName"] for key, process in trace["processes"].items()}
    assert {span["traceID"] for span in spans.values()} == {trace_id}

    def parent(span: dict[str, Any]) -> dict[str, Any] | None:
        refs = [ref for ref in span.get("references", []) if ref["refType"] == "CHILD_OF"]
        return spans.get(refs[0]["spanID"]) if refs else None

    # One root, the API's request span, whose parent is the caller's span (not in the trace).
    roots = [span for span in spans.values() if parent(span) is None]
    assert [(service[r["processID"]], r["operationName"]) for r in roots] == [
        ("genstream-api", "POST /v1/jobs")
    ], json.dumps([(r["operationName"], r.get("tags"), r.get("references")) for r in roots])[:3000]

    def one(name: str, **tags: str) -> dict[str, Any]:
        found = [
            span
            for span in spans.values()
            if span["operationName"] == name and all(_tag(span, k) == v for k, v in tags.items())
        ]
        assert found, (
            f"no span {name} {tags} among {sorted({s['operationName'] for s in spans.values()})}"
        )
        return found[0]

    submission = one("job.submission.write")
    decided = one("processors.decide", **{"genstream.event": "genstream.job.requested.v1"})
    waited = one("job.queue_wait")
    ran = one("job.run")
    ended = one("job.end")
    projected = one("projection.write", **{"genstream.event": "genstream.job.completed.v1"})
    assert _tag(decided, "genstream.outcome") == "accepted"
    assert _tag(decided, "genstream.tier") == "free"
    assert _tag(ran, "genstream.job_id") == job_id
    assert [event["fields"][0]["value"] for event in ran.get("logs", [])[:1]] == ["step"]
    # Each is caused by the one before it: its parent, and it starts no earlier.
    chain = [submission, decided, ended, projected]
    for cause, effect in itertools.pairwise(chain):
        assert parent(effect) is cause, (effect["operationName"], cause["operationName"])
        assert effect["startTime"] >= cause["startTime"]
    for effect in (waited, ran):
        assert parent(effect) is decided
    assert (
        decided["startTime"] <= waited["startTime"] + waited["duration"] <= ran["startTime"] + 1000
    )
    assert ran["startTime"] <= ended["startTime"]
