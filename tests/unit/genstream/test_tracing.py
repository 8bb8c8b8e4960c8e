"""The tracing kit: spans continue the trace an event names, and events name the span."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from contracts import TraceParent
from genstream.logs import JsonFormatter
from genstream.tracing import (
    event_trace,
    parent_from,
    span_from,
    tracing_enabled,
    tracing_setting,
)

CAUSE = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture
def recorded() -> tuple[TracerProvider, InMemorySpanExporter]:
    # A provider of the test's own: the process's global one stays untouched.
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def test_a_span_from_an_event_is_the_child_of_the_span_it_names(
    recorded: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, exporter = recorded
    queued_at = datetime.now(UTC) - timedelta(seconds=3)
    with span_from(provider.get_tracer("t"), "job.queue_wait", CAUSE, start=queued_at) as span:
        written = event_trace(CAUSE)
    (finished,) = exporter.get_finished_spans()
    assert finished.parent is not None
    assert f"{finished.parent.trace_id:032x}" == "0af7651916cd43dd8448eb211c80319c"
    assert f"{finished.parent.span_id:016x}" == "b7ad6b7169203331"
    assert finished.start_time == int(queued_at.timestamp() * 1e9)
    # The event written inside names this span, so the next service's span is its child.
    context = span.get_span_context()
    assert written == f"00-{context.trace_id:032x}-{context.span_id:016x}-01"


def test_outside_any_span_an_event_gets_a_new_id_in_the_same_trace() -> None:
    written = TraceParent.parse(event_trace(CAUSE))
    cause = TraceParent.parse(CAUSE)
    assert written.trace_id == cause.trace_id
    assert written.parent_id != cause.parent_id


def test_an_unsampled_cause_stays_unsampled(
    recorded: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, exporter = recorded
    unsampled = CAUSE[:-2] + "00"
    with span_from(provider.get_tracer("t"), "processors.decide", unsampled):
        written = event_trace(unsampled)
    assert exporter.get_finished_spans() == ()
    assert written.endswith("-00")
    assert written.split("-")[1] == CAUSE.split("-")[1]


@pytest.mark.parametrize(
    "value", ["", "garbage", "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
              "00-00000000000000000000000000000000-b7ad6b7169203331-01",
              "00-0af7651916cd43dd8448eb211c80319c-zzad6b7169203331-01"],
)  # fmt: skip
def test_a_traceparent_that_is_not_one_names_no_parent(value: str) -> None:
    assert parent_from(value) is None


def test_tracing_needs_an_endpoint_and_can_be_switched_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
    monkeypatch.delenv("OTEL_SDK_DISABLED", raising=False)
    assert not tracing_enabled()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    assert tracing_enabled()
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert not tracing_enabled()


def test_the_setting_names_the_sampler_in_effect(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_SDK_DISABLED", raising=False)
    monkeypatch.delenv("OTEL_TRACES_SAMPLER", raising=False)
    monkeypatch.delenv("OTEL_TRACES_SAMPLER_ARG", raising=False)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    assert tracing_setting() == "parentbased_always_on"
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0.1")
    assert tracing_setting() == "parentbased_traceidratio:0.1"
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert tracing_setting() == "off"


def test_logs_inside_a_span_carry_its_trace_and_span_ids(
    recorded: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, _ = recorded
    record = logging.makeLogRecord({"msg": "job started", "levelname": "INFO"})
    with span_from(provider.get_tracer("t"), "job.run", CAUSE) as span:
        entry = json.loads(JsonFormatter("worker").format(record))
    context = span.get_span_context()
    assert entry["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
    assert entry["span_id"] == f"{context.span_id:016x}"
    outside = json.loads(JsonFormatter("worker").format(record))
    assert outside["span_id"] is None
