"""Structured JSON logs; every record carries the current job_id, trace_id and span_id, when
known."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime

from genstream.tracing import current_ids

_job_id: ContextVar[str | None] = ContextVar("genstream_job_id", default=None)
_trace_id: ContextVar[str | None] = ContextVar("genstream_trace_id", default=None)

_RESERVED = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self._service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": self._service,
            "logger": record.name,
            "message": record.getMessage(),
            "job_id": _job_id.get(),
        }
        # Inside a span its ids; otherwise the trace the job's events carry, when known.
        ids = current_ids()
        entry["trace_id"], entry["span_id"] = ids if ids is not None else (_trace_id.get(), None)
        entry.update({k: v for k, v in record.__dict__.items() if k not in _RESERVED})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(service: str, level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


@contextmanager
def log_context(*, job_id: str | None = None, trace_id: str | None = None) -> Iterator[None]:
    """Tags every log record inside the block with the job and trace it belongs to."""
    job_token = _job_id.set(job_id) if job_id is not None else None
    trace_token = _trace_id.set(trace_id) if trace_id is not None else None
    try:
        yield
    finally:
        if trace_token is not None:
            _trace_id.reset(trace_token)
        if job_token is not None:
            _job_id.reset(job_token)
