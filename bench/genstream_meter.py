"""genstream's readers over a benchmark run, named as they are outside the benchmark.

Consumer groups: the processors' (Faust's group, its application id), the workers' of the
workload, the retry relay's inside each worker, and the benchmark's clock; their groups and
topics carry the run's prefix or application id, which the names given here leave out. Job
control, every worker's reader of every lifecycle and command record, commits nothing: its
records are the workers' own count (``genstream_worker_control_records_total``), summed over
the workers. The API's progress feed reads only while an event stream is open (no stream is
in dispatch and pipeline); the projection, webhooks and the outbox relay are not run by the
benchmark.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

from bench.counters import read_counter
from bench.groups import GroupPositions
from bench.meter import KafkaMeter
from bench.reads import CLOCK
from bench.requests import RequestLog
from genstream.kafka import KafkaSettings
from genstream.kafka.principals import PROCESSORS_APP_ID

__all__ = ["CONTROL_COUNTER", "CONTROL_READER", "RunNames", "genstream_meter"]

CONTROL_READER: Final = "genstream-worker-control"
CONTROL_COUNTER: Final = "genstream_worker_control_records_total"
_STEADY_S: Final = 10.0

Workers = Callable[[], Mapping[str, int]]
"""The running workers' metrics ports, by process (``name:pid``)."""


@dataclass(frozen=True, slots=True)
class RunNames:
    """What the run's topics and groups are named with."""

    prefix: str
    """Of the topics, and of the workers' and retry relay's groups."""
    app_id: str
    """The processors' application id: their group, and their changelog topics' start."""
    clock: str
    """The benchmark's clock's group."""

    def group(self, group_id: str) -> str | None:
        if group_id == self.app_id:
            return PROCESSORS_APP_ID
        if group_id == self.clock:
            return CLOCK
        if group_id.startswith(self.prefix):
            return group_id.removeprefix(self.prefix)
        return None

    def topic(self, topic: str) -> str | None:
        if self.prefix in topic:
            return topic.replace(self.prefix, "", 1)
        if topic.startswith(self.app_id):
            return PROCESSORS_APP_ID + topic.removeprefix(self.app_id)
        return None


def genstream_meter(
    kafka: KafkaSettings,
    *,
    names: RunNames,
    workers: Workers,
    requests: RequestLog | None,
    client_tag: str,
) -> KafkaMeter:
    def counted() -> dict[str, dict[str, float]]:
        counts = _steady(lambda: _control_counts(workers()))
        return {CONTROL_READER: counts} if counts else {}

    return KafkaMeter(
        groups=GroupPositions(kafka, group=names.group, topic=names.topic),
        counted=counted,
        requests=requests,
        client_tag=client_tag,
    )


def _control_counts(ports: Mapping[str, int]) -> dict[str, float] | None:
    """Each worker's count; None where one cannot be read (nothing is then measured)."""
    counts = {}
    for process, port in ports.items():
        value = read_counter(port, CONTROL_COUNTER)
        if value is None:
            return None
        counts[process] = value
    return counts


def _steady(read: Callable[[], dict[str, float] | None]) -> dict[str, float] | None:
    """Readings until two in a row agree (job control reads on a thread of its own)."""
    deadline = time.monotonic() + _STEADY_S
    last = read()
    while last is not None and time.monotonic() < deadline:
        time.sleep(0.5)
        now = read()
        if now == last:
            return last
        last = now
    return None
