"""What a system's Kafka clients did over a window of a workload: the records each reader
read (``bench.reads``) and, where counted, the requests the brokers answered for them
(``bench.requests``), both per job.

A window's edges are marks taken once the consumer groups have settled, so a workload marks
before its first job and after its last one has completed: the figures cover the whole
workload's run, its repetitions together.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

from bench.groups import GroupPositions
from bench.reads import Reads, records_section
from bench.requests import Marks, RequestLog, requests_section

__all__ = ["KafkaMeter", "Mark"]

_QUIET_S: Final = 6.0
"""Longer than any of the run's groups takes between commits (librdkafka's automatic
commit, which the benchmark's clock uses, comes every 5 s)."""
_SETTLE_TIMEOUT_S: Final = 60.0

Counted = Callable[[], Mapping[str, Mapping[str, float]]]
"""Reads the counts of the readers that commit nothing (see ``Reads.counted``)."""


@dataclass(frozen=True, slots=True)
class Mark:
    reads: Reads
    requests: Marks | None


class KafkaMeter:
    def __init__(
        self,
        *,
        groups: GroupPositions,
        counted: Counted,
        requests: RequestLog | None = None,
        client_tag: str = "",
    ) -> None:
        self._groups = groups
        self._counted = counted
        self._requests = requests
        self._client_tag = client_tag

    def mark(self) -> Mark:
        positions, settled = self._groups.settle(quiet_s=_QUIET_S, timeout_s=_SETTLE_TIMEOUT_S)
        reads = Reads(positions=positions, counted=self._counted(), settled=settled)
        return Mark(reads, self._requests.mark() if self._requests is not None else None)

    def figures(self, since: Mark, jobs: int) -> dict[str, object]:
        """Per job over the window from ``since`` to now (marked once settled)."""
        now = self.mark()
        section = records_section(since.reads, now.reads, jobs)
        if self._requests is not None and since.requests is not None:
            counted = self._requests.since(since.requests, self._client_tag)
            if counted is not None:
                section.update(requests_section(counted, jobs))
        return section
