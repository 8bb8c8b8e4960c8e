"""Container probes for the services that serve no HTTP health of their own.

The API answers ``/healthz`` and ``/readyz``; the other services are Kafka consumers and
relays without a listener that a kubelet can reach (the processors' and workers' metrics
listen on loopback only). This script, run inside their container, checks from there:

- ``kafka``, ``postgres``, ``s3``: a TCP connection to that dependency opens, taking its
  address from the same ``GENSTREAM_*`` variables the service reads (readiness);
- ``http URL``: a GET of URL answers 2xx, for a process's own loopback metrics (liveness).

Only the standard library, so that a probe costs an interpreter start and nothing more.
Exit 0 when every check passes, 1 otherwise, with what failed on stderr.
"""

from __future__ import annotations

import os
import socket
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from urllib.parse import urlsplit

TIMEOUT_S = 3.0

Endpoint = tuple[str, int]


def _split(address: str, default_port: int) -> Endpoint:
    """``host:port``, ``[v6]:port`` or a bare host."""
    address = address.strip()
    if address.startswith("["):
        host, _, rest = address[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else default_port
    host, sep, port = address.rpartition(":")
    return (host, int(port)) if sep else (address, default_port)


def kafka_endpoints(env: Mapping[str, str]) -> list[Endpoint]:
    servers = env.get("GENSTREAM_KAFKA__BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    return [_split(server, 9092) for server in servers.split(",") if server.strip()]


def postgres_endpoints(env: Mapping[str, str]) -> list[Endpoint]:
    host = env.get("GENSTREAM_PG__HOST", "127.0.0.1")
    return [(host, int(env.get("GENSTREAM_PG__PORT", "55432")))]


def s3_endpoints(env: Mapping[str, str]) -> list[Endpoint]:
    url = urlsplit(env.get("GENSTREAM_S3__ENDPOINT_URL", "http://127.0.0.1:9000"))
    port = url.port or (443 if url.scheme == "https" else 80)
    return [(url.hostname or "127.0.0.1", port)]


DEPENDENCIES = {"kafka": kafka_endpoints, "postgres": postgres_endpoints, "s3": s3_endpoints}


def any_reachable(endpoints: Sequence[Endpoint], timeout_s: float = TIMEOUT_S) -> str | None:
    """None when one endpoint accepts a connection (a client needs one bootstrap server),
    else what the last attempt said."""
    error = "no endpoint configured"
    for host, port in endpoints:
        try:
            with socket.create_connection((host, port), timeout=timeout_s):
                return None
        except OSError as failure:
            error = f"{host}:{port}: {failure}"
    return error


def http_ok(url: str, timeout_s: float = TIMEOUT_S) -> str | None:
    if urlsplit(url).scheme not in {"http", "https"}:
        return f"{url}: not an http(s) URL"
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as answer:  # noqa: S310 - scheme checked
            status = int(answer.status)
    except (OSError, urllib.error.URLError) as failure:
        return f"{url}: {failure}"
    return None if 200 <= status < 300 else f"{url}: HTTP {status}"


def run(argv: Sequence[str], env: Mapping[str, str]) -> list[str]:
    """The failures of the checks ``argv`` names; raises ``ValueError`` on a bad check."""
    failures: list[str] = []
    args = list(argv)
    while args:
        check = args.pop(0)
        if check == "http":
            if not args:
                raise ValueError("http needs a URL")
            outcome = http_ok(args.pop(0))
        elif check in DEPENDENCIES:
            outcome = any_reachable(DEPENDENCIES[check](env))
            outcome = None if outcome is None else f"{check}: {outcome}"
        else:
            raise ValueError(f"unknown check {check!r}; known: http, {', '.join(DEPENDENCIES)}")
        if outcome is not None:
            failures.append(outcome)
    return failures


def main(argv: Sequence[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    if not args:
        print(f"usage: probe.py CHECK... (http URL, {', '.join(DEPENDENCIES)})", file=sys.stderr)
        return 2
    try:
        failures = run(args, os.environ)
    except ValueError as bad:
        print(f"probe: {bad}", file=sys.stderr)
        return 2
    for failure in failures:
        print(f"probe failed: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
