"""Requests the Kafka brokers answered for a run's clients, counted in the brokers' request log.

With ``BENCH_BROKER_REQUESTS=1`` the run turns the brokers' request logger
(``kafka.request.logger``) to DEBUG with Kafka's own ``kafka-configs`` tool (entity type
``broker-loggers``: the change lives until the broker restarts, and the run puts the level
back), and counts the ``Completed request`` lines whose client id is one of the run's, by
client and by request type. The run's processes get client ids of their own
(``<run tag>.<process kind>.<client id>``, see ``GenstreamSystem``), so requests of others
using the same brokers are not counted. Logging every request costs the brokers CPU: a run
that counts requests has a higher ``cpu_ms_per_job.kafka``. Only the single PLAINTEXT broker
is supported (the secured three would need the admin's credentials).
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Final

from confluent_kafka.admin import AdminClient

from bench.procs import ROOT
from genstream.kafka import KafkaSettings

__all__ = ["RequestLog", "count_requests", "local_request_log", "requests_section"]

_log = logging.getLogger("bench")

LOGGER: Final = "kafka.request.logger"
PREFIX: Final = "broker_requests_per_job"
_HEADER: Final = re.compile(r'"requestHeader":\{([^{}]*)\}')
_CLIENT: Final = re.compile(r'"clientId":"([^"]*)"')
_API: Final = re.compile(r'"requestApiKeyName":"([^"]*)"')
_API_KEY: Final = re.compile(r'"requestApiKey":(\d+)')
_LEVEL: Final = re.compile(rf"{re.escape(LOGGER)}=(\w+)")

Marks = dict[Path, int]
"""How far each broker's log went, in bytes."""


def count_requests(lines: Iterable[str], client_tag: str) -> Counter[tuple[str, str]]:
    """Completed requests per (client, request type) of the clients whose id starts with
    ``client_tag`` and a dot; the client is named without the tag."""
    counted: Counter[tuple[str, str]] = Counter()
    lead = f"{client_tag}."
    for line in lines:
        if "Completed request:" not in line:
            continue
        header = _HEADER.search(line)
        client = _CLIENT.search(header.group(1)) if header else None
        if header is None or client is None or not client.group(1).startswith(lead):
            continue
        api = _API.search(header.group(1))
        key = _API_KEY.search(header.group(1))
        kind = api.group(1) if api else f"api-{key.group(1) if key else '?'}"
        counted[(client.group(1).removeprefix(lead), kind)] += 1
    return counted


def requests_section(counted: Mapping[tuple[str, str], int], jobs: int) -> dict[str, object]:
    """``broker_requests_per_job`` (every client of the run), one figure per client, and
    per request type under ``broker_requests``."""
    if jobs <= 0:
        return {}
    by_client: Counter[str] = Counter()
    by_api: Counter[str] = Counter()
    for (client, api), count in counted.items():
        by_client[client] += count
        by_api[api] += count
    section: dict[str, object] = {PREFIX: round(sum(by_client.values()) / jobs, 3)}
    for client, count in sorted(by_client.items()):
        section[f"{PREFIX}.{client}"] = round(count / jobs, 3)
    section["broker_requests"] = {
        "jobs": jobs,
        "per_job_by_type": {api: round(n / jobs, 3) for api, n in sorted(by_api.items())},
        "per_job_by_client_and_type": {
            f"{client} {api}": round(n / jobs, 3) for (client, api), n in sorted(counted.items())
        },
    }
    return section


class RequestLog:
    """The brokers' request logger, turned on for a run, and the lines it wrote since a mark."""

    def __init__(
        self, *, bootstrap: str, brokers: Sequence[int], logs: Sequence[Path], kafka_libs: Path
    ) -> None:
        self._bootstrap = bootstrap
        self._brokers = list(brokers)
        self._logs = list(logs)
        self._classpath = f"{kafka_libs}/*"
        self._was: dict[int, str] = {}

    def enable(self) -> None:
        for broker in self._brokers:
            described = self._configs(broker, "--describe")
            found = _LEVEL.search(described)
            self._was[broker] = found.group(1) if found else "WARN"
            self._configs(broker, "--alter", "--add-config", f"{LOGGER}=DEBUG")
        _log.info("broker request log on (was %s)", self._was)

    def restore(self) -> None:
        for broker, level in self._was.items():
            self._configs(broker, "--alter", "--add-config", f"{LOGGER}={level}")
        self._was = {}

    def mark(self) -> Marks:
        return {path: path.stat().st_size if path.exists() else 0 for path in self._logs}

    def since(self, mark: Marks, client_tag: str) -> Counter[tuple[str, str]] | None:
        """The run's requests logged after ``mark``; None where a log was cut meanwhile."""
        counted: Counter[tuple[str, str]] = Counter()
        for path, offset in mark.items():
            if not path.exists() or path.stat().st_size < offset:
                return None
            with path.open("rb") as log:
                log.seek(offset)
                text = log.read().decode(errors="replace")
            counted += count_requests(text.splitlines(), client_tag)
        return counted

    def _configs(self, broker: int, *action: str) -> str:
        command = [
            "java",
            "-cp",
            self._classpath,
            "kafka.admin.ConfigCommand",
            "--bootstrap-server",
            self._bootstrap,
            "--entity-type",
            "broker-loggers",
            "--entity-name",
            str(broker),
            *action,
        ]
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)
        return done.stdout


def local_request_log(kafka: KafkaSettings) -> RequestLog | None:
    """The request log of the brokers ``infra/`` runs on this machine; None (with a warning)
    where they are secured or their logs and Kafka's tools are not where ``infra/`` puts
    them."""
    if kafka.security_protocol != "PLAINTEXT":
        _log.warning("broker requests are counted on the single PLAINTEXT broker only")
        return None
    var = Path(os.environ.get("GENSTREAM_VAR_DIR", ROOT / "var"))
    cache = Path(os.environ.get("GENSTREAM_CACHE_DIR", ROOT / ".cache"))
    libs = sorted((cache / "kafka").glob("*/libs"))
    admin = AdminClient(kafka.librdkafka("bench-requests"))
    brokers = sorted(admin.list_topics(timeout=30).brokers)
    logs = [var / "log" / f"kafka-{broker}.log" for broker in brokers]
    if not libs or not all(log.exists() for log in logs):
        _log.warning("broker requests not counted: no Kafka tools in %s or logs %s", cache, logs)
        return None
    return RequestLog(
        bootstrap=kafka.bootstrap_servers, brokers=brokers, logs=logs, kafka_libs=libs[-1]
    )
