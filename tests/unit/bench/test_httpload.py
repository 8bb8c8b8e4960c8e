"""The load generator's byte-level HTTP pieces and the benchmark catalog."""

from __future__ import annotations

import tomllib

from bench.genstream_system import bench_catalog
from bench.httpload import build_request, parse_head
from contracts import Catalog, Plan, load_catalog


def test_request_is_a_complete_http11_post() -> None:
    raw = build_request("127.0.0.1", 8000, "/v1/jobs", b'{"a": 1}', "gsk_x")
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"POST /v1/jobs HTTP/1.1\r\n")
    assert b"\r\nAuthorization: Bearer gsk_x" in head
    assert b"\r\nContent-Length: 8" in head
    assert body == b'{"a": 1}'


def test_response_head_gives_status_and_length() -> None:
    head = b"HTTP/1.1 202 Accepted\r\ndate: x\r\ncontent-length: 123\r\ncontent-type: a/b"
    assert parse_head(head) == (202, 123)
    assert parse_head(b"HTTP/1.1 204 No Content\r\nserver: u") == (204, 0)


def test_bench_catalog_lifts_only_the_concurrency_caps() -> None:
    from importlib import resources

    shipped_text = resources.files("contracts").joinpath("catalog.toml").read_text()
    lifted = Catalog.model_validate(tomllib.loads(bench_catalog(shipped_text)))
    shipped = load_catalog()
    for plan in Plan:
        assert lifted.limits(plan).max_concurrent_jobs == 1_000_000
        assert lifted.limits(plan).tier == shipped.limits(plan).tier
        assert lifted.limits(plan).queue_ttl_s == shipped.limits(plan).queue_ttl_s
    assert lifted.prices == shipped.prices
