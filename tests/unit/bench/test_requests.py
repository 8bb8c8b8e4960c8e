"""Broker requests counted in the brokers' request log, per client of the run."""

from __future__ import annotations

from collections import Counter

from bench.requests import count_requests, requests_section


def _line(client: str, api: str, key: int) -> str:
    header = (
        f'{{"requestApiKey":{key},"requestApiVersion":13,"correlationId":7,'
        f'"clientId":"{client}","requestApiKeyName":"{api}"}}'
    )
    return (
        f'[2026-12-07 13:22:04,826] DEBUG Completed request:{{"isForwarded":false,'
        f'"requestHeader":{header},"request":{{"topics":[]}},"connection":"127.0.0.1:9092-'
        f'127.0.0.1:5000-1","totalTimeMs":0.5}} (kafka.request.logger)'
    )


def test_only_the_runs_clients_are_counted_by_client_and_type() -> None:
    lines = [
        _line("bench-x1.worker.genstream-worker-tier", "FETCH", 1),
        _line("bench-x1.worker.genstream-worker-tier", "FETCH", 1),
        _line("bench-x1.api.genstream", "PRODUCE", 0),
        _line("genstream-worker-tier", "FETCH", 1),  # someone else's
        _line("bench-x12.api.genstream", "PRODUCE", 0),  # another run's
        "[2026-12-07 13:22:04,827] INFO Deleted log (kafka.log.LogManager)",
    ]
    assert count_requests(lines, "bench-x1") == Counter(
        {("worker.genstream-worker-tier", "FETCH"): 2, ("api.genstream", "PRODUCE"): 1}
    )


def test_a_header_without_the_type_name_is_counted_by_its_key() -> None:
    line = _line("bench-x1.api.genstream", "PRODUCE", 0)
    line = line.replace(',"requestApiKeyName":"PRODUCE"', "")
    assert count_requests([line], "bench-x1") == Counter({("api.genstream", "api-0"): 1})


def test_a_section_has_the_total_each_client_and_the_types() -> None:
    counted = Counter(
        {
            ("worker.genstream-worker-tier", "FETCH"): 300,
            ("worker.genstream", "PRODUCE"): 200,
            ("bench.genstream-bench-watch", "FETCH"): 100,
        }
    )
    section = requests_section(counted, 100)
    assert section["broker_requests_per_job"] == 6.0
    assert section["broker_requests_per_job.worker.genstream-worker-tier"] == 3.0
    assert section["broker_requests_per_job.bench.genstream-bench-watch"] == 1.0
    assert section["broker_requests"] == {
        "jobs": 100,
        "per_job_by_type": {"FETCH": 4.0, "PRODUCE": 2.0},
        "per_job_by_client_and_type": {
            "bench.genstream-bench-watch FETCH": 1.0,
            "worker.genstream PRODUCE": 2.0,
            "worker.genstream-worker-tier FETCH": 3.0,
        },
    }
    assert requests_section(counted, 0) == {}
