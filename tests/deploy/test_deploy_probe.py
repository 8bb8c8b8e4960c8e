"""The container probe (infra/deploy/docker/probe.py) against real sockets on loopback."""

from __future__ import annotations

import http.server
import importlib.util
import socket
import threading
from collections.abc import Iterator
from types import ModuleType

import pytest

from tests.deploy.chart import ROOT


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "probe", ROOT / "infra" / "deploy" / "docker" / "probe.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


probe = _load()


@pytest.fixture
def listening() -> Iterator[int]:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield server.getsockname()[1]


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as spare:
        spare.bind(("127.0.0.1", 0))
        port: int = spare.getsockname()[1]
    return port


class _Metrics(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/metrics" else 500)
        self.end_headers()
        self.wfile.write(b"up 1\n")

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def metrics() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Metrics)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_addresses_come_from_the_services_settings() -> None:
    env = {
        "GENSTREAM_KAFKA__BOOTSTRAP_SERVERS": "a:9092, [::1]:9094,b",
        "GENSTREAM_PG__HOST": "db",
        "GENSTREAM_PG__PORT": "5432",
        "GENSTREAM_S3__ENDPOINT_URL": "https://s3.example.com",
    }
    assert probe.kafka_endpoints(env) == [("a", 9092), ("::1", 9094), ("b", 9092)]
    assert probe.postgres_endpoints(env) == [("db", 5432)]
    assert probe.s3_endpoints(env) == [("s3.example.com", 443)]
    assert probe.s3_endpoints({}) == [("127.0.0.1", 9000)]


def test_a_dependency_is_ready_when_one_of_its_addresses_accepts(
    listening: int, closed_port: int
) -> None:
    env = {"GENSTREAM_KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{closed_port},127.0.0.1:{listening}"}
    assert probe.run(["kafka"], env) == []


def test_a_dependency_that_refuses_fails_and_says_where(closed_port: int) -> None:
    env = {"GENSTREAM_PG__HOST": "127.0.0.1", "GENSTREAM_PG__PORT": str(closed_port)}
    (failure,) = probe.run(["postgres"], env)
    assert failure.startswith(f"postgres: 127.0.0.1:{closed_port}:")


def test_metrics_answer_or_not(metrics: int, closed_port: int) -> None:
    assert probe.run(["http", f"http://127.0.0.1:{metrics}/metrics"], {}) == []
    (failure,) = probe.run(["http", f"http://127.0.0.1:{metrics}/other"], {})
    assert "500" in failure
    assert probe.run(["http", f"http://127.0.0.1:{closed_port}/metrics"], {}) != []
    local_file = "file:///etc/passwd"
    assert probe.run(["http", local_file], {}) == [f"{local_file}: not an http(s) URL"]


def test_unknown_checks_are_usage_errors() -> None:
    with pytest.raises(ValueError, match="unknown check"):
        probe.run(["redis"], {})
    assert probe.main([]) == 2
    assert probe.main(["http"]) == 2
