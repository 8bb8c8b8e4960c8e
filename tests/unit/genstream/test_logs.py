from __future__ import annotations

import json
import logging

from genstream.logs import JsonFormatter, log_context


def _format(record_msg: str, **extra: object) -> dict[str, object]:
    record = logging.LogRecord("genstream.test", logging.INFO, __file__, 1, record_msg, None, None)
    record.__dict__.update(extra)
    parsed: dict[str, object] = json.loads(JsonFormatter("api").format(record))
    return parsed


def test_records_carry_job_and_trace_inside_a_context() -> None:
    with log_context(job_id="job-1", trace_id="4bf92f3577b34da6a3ce929d0e0e4736"):
        entry = _format("started", attempt=2)
    assert entry["job_id"] == "job-1"
    assert entry["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert entry["attempt"] == 2
    assert entry["service"] == "api"
    assert entry["message"] == "started"


def test_context_is_restored_after_the_block() -> None:
    with log_context(job_id="outer"):
        with log_context(job_id="inner"):
            assert _format("x")["job_id"] == "inner"
        assert _format("x")["job_id"] == "outer"
    assert _format("x")["job_id"] is None
