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
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from genstream.settings import StackSettings
from stream_processors.topology import Topology
from tests.integration.running_services import (
    Namespace,
    Processes,
    answers,
    free_port,
    namespace_topics,
    signed_up,
    start_services,
)
from tests.polling import poll_until

ROOT = Path(__file__).resolve().parents[2]
JAEGER = ROOT / ".cache" / "bin" / "jaeger"
SERVICES = {
    "genstream-api",
    "genstream-processors",
    "genstream-worker-synthetic",
    "genstream-projection",
}


@pytest.fixture
def jaeger(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A private Jaeger: (OTLP/HTTP endpoint, query URL)."""
    if not JAEGER.exists():
        pytest.fail("Jaeger is not built: run infra/setup.sh jaeger (make test does)")
    ports = {
        name: str(free_port()) for name in ("UI", "QUERY_GRPC", "OTLP_GRPC", "OTLP_HTTP", "HEALTH")
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
            lambda: answers(f"{query}/api/services"), timeout_s=20, what="Jaeger's query API"
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
    api_port = free_port()
    api = f"http://127.0.0.1:{api_port}"
    children = Processes(tmp_path)
    try:
        with ExitStack() as cleanup:
            processors, _ = cleanup.enter_context(namespace_topics(stack, prefix))
            cleanup.callback(children.stop)
            space = Namespace(prefix, unique, pg_schema[1], api_port, tmp_path)
            start_services(children, space, _service_env(otlp))
            poll_until(lambda: answers(f"{api}/healthz"), timeout_s=60, what=children.alive)
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


def _submit(
    api: str, stack: StackSettings, topology: Topology, children: Processes
) -> tuple[str, str, str]:
    with httpx.Client(base_url=api, timeout=30) as client:
        headers, _ = signed_up(client, stack, topology, credits=100)
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
