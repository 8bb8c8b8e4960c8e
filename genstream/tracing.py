"""OpenTelemetry for every service: one setup, and spans that follow a job through its events.

Each service's ``main`` calls ``configure_tracing(name)`` once. It is configured by the
standard variables, read by the SDK itself:

- ``OTEL_SDK_DISABLED=true`` turns tracing off: no provider is installed, spans are the API's
  no-op ones and events carry ``child_traceparent``s as they always did;
- ``OTEL_TRACES_SAMPLER`` / ``OTEL_TRACES_SAMPLER_ARG`` (default ``parentbased_always_on``;
  ``parentbased_traceidratio`` with ``0.1`` keeps one trace in ten, decided at the API and
  followed by every service through the events' ``traceparent`` flags);
- ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``): where spans go,
  OTLP over HTTP. Unset, tracing is off too: a process with nowhere to send spans records
  none (tests, tools), rather than retrying an export that cannot succeed. ``infra/stack.sh
  up`` writes it into ``var/stack.env`` for the local Jaeger, so ``make up`` traces;
- ``OTEL_SERVICE_NAME`` (default: the name the service passes).

A job's context travels in its events' ``traceparent``: ``span_from`` starts a span whose
parent is the one an event names, and ``event_trace`` gives the ``traceparent`` for an event
written inside the current span. Spans are batched (``BatchSpanProcessor``) and exported from
a thread of the SDK's, so a traced hot path pays for the span it records and nothing more.
"""

from __future__ import annotations

import atexit
import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import Final

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import (
    INVALID_SPAN,
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    TraceFlags,
    Tracer,
)
from opentelemetry.util.types import AttributeValue

from contracts.traceparent import child_traceparent

__all__ = [
    "configure_tracing",
    "current_ids",
    "event_trace",
    "parent_from",
    "provider_installed",
    "span_from",
    "tracer",
    "tracing_enabled",
    "tracing_setting",
]

_INVALID: Final = trace.INVALID_SPAN_CONTEXT
_TRACEPARENT: Final = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_ENDPOINTS: Final = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


def tracing_enabled() -> bool:
    """True unless ``OTEL_SDK_DISABLED`` says so or no OTLP endpoint is set."""
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    return any(os.environ.get(name) for name in _ENDPOINTS)


def tracing_setting() -> str:
    """What this environment's services do with spans, in a few words: ``off``, or the
    sampler (and its argument) that ``OTEL_TRACES_SAMPLER`` names, the SDK's default when
    unset. Benchmarks record it, since tracing at 100 % costs each job CPU."""
    if not tracing_enabled():
        return "off"
    sampler = os.environ.get("OTEL_TRACES_SAMPLER", "").strip() or "parentbased_always_on"
    argument = os.environ.get("OTEL_TRACES_SAMPLER_ARG", "").strip()
    return f"{sampler}:{argument}" if argument else sampler


def configure_tracing(service_name: str, *, instrument_botocore: bool = False) -> bool:
    """Installs the SDK's tracer provider, exporting OTLP in batches; True when tracing is on.

    Safe to call more than once in a process (the first call wins, as the API's global
    provider does). ``instrument_botocore`` adds spans around botocore's calls.
    """
    if not tracing_enabled():
        return False
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    if isinstance(trace.get_tracer_provider(), TracerProvider):
        return True
    # Resource.create reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES; ours is the default.
    resource = Resource.create({SERVICE_NAME: os.environ.get("OTEL_SERVICE_NAME") or service_name})
    provider = TracerProvider(resource=resource)  # the sampler comes from OTEL_TRACES_SAMPLER
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    # Spans still queued at exit are sent, for at most the exporter's timeout.
    atexit.register(provider.shutdown)
    if instrument_botocore:
        from opentelemetry.instrumentation.botocore import BotocoreInstrumentor

        BotocoreInstrumentor().instrument()  # type: ignore[no-untyped-call]
    return True


def tracer(name: str) -> Tracer:
    return trace.get_tracer(name)


def provider_installed() -> bool:
    """Whether ``configure_tracing`` installed a provider in this process: code that would
    build a span per record asks once, and builds none when it did not."""
    return not isinstance(
        trace.get_tracer_provider(), trace.ProxyTracerProvider | trace.NoOpTracerProvider
    )


def parent_from(traceparent: str) -> Context | None:
    """The context whose span is the one a ``traceparent`` names (remote); None if invalid."""
    match = _TRACEPARENT.fullmatch(traceparent)
    if match is None:
        return None
    trace_id, span_id, flags = (int(part, 16) for part in match.groups())
    if not trace_id or not span_id:
        return None
    context = SpanContext(trace_id, span_id, is_remote=True, trace_flags=TraceFlags(flags))
    return trace.set_span_in_context(NonRecordingSpan(context))


def _off(tracer_: Tracer) -> bool:
    """Whether ``tracer_`` records nothing: the API's no-op one, or a proxy with no provider."""
    if isinstance(tracer_, trace.NoOpTracer):
        return True
    return isinstance(tracer_, trace.ProxyTracer) and not provider_installed()


@contextmanager
def span_from(
    tracer_: Tracer,
    name: str,
    traceparent: str,
    *,
    attributes: Mapping[str, AttributeValue] | None = None,
    kind: SpanKind = SpanKind.INTERNAL,
    start: datetime | None = None,
) -> Iterator[Span]:
    """A span, current inside the block, child of the span the event's ``traceparent`` names.

    ``start`` backdates it (a queue wait starts when the job was queued).
    """
    if _off(tracer_):
        # Tracing off: not even the API's no-op span (parsing the parent alone costs more).
        yield INVALID_SPAN
        return
    start_ns = int(start.timestamp() * 1e9) if start is not None else None
    with tracer_.start_as_current_span(
        name,
        context=parent_from(traceparent),
        kind=kind,
        attributes=attributes,
        start_time=start_ns,
    ) as span:
        yield span


def event_trace(cause: str) -> str:
    """The ``traceparent`` of an event written now, caused by the event that carried ``cause``.

    Inside a span (sampled or not) it names that span, so the next service's span is its
    child; with tracing off it is ``child_traceparent(cause)``, a new id in the same trace.
    """
    context = trace.get_current_span().get_span_context()
    if context is _INVALID or not context.is_valid:
        return child_traceparent(cause)
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


def current_ids() -> tuple[str, str] | None:
    """The current span's trace and span ids as hex, for logs; None outside any span."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return f"{context.trace_id:032x}", f"{context.span_id:016x}"
