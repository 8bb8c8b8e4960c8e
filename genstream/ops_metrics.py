"""Gauges of the whole system, measured when Prometheus scrapes: consumer-group lag per group
and partition, group members, the dead-letter topic's end, and each tier's oldest wait.

One process registers the collector (the projection, which reaches both the brokers and the
read model), so each series has one source. Lag is Kafka's own measure (``kafka-consumer-groups
--describe``): the log end offset minus the group's committed offset, per partition it
committed. The figures come from ``genstream.system_status``, as ``genstream status`` shows them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import UTC, datetime

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine

from contracts.catalog import Catalog
from genstream.kafka import KafkaSettings
from genstream.system_status import (
    StatusScope,
    dead_letter_end,
    read_kafka,
    read_model_facts,
    tier_ttls,
)

__all__ = ["SystemCollector"]

_log = logging.getLogger(__name__)


class SystemCollector(Collector):
    def __init__(
        self, *, kafka: KafkaSettings, engine: Engine, catalog: Catalog, scope: StatusScope
    ) -> None:
        self._kafka = kafka
        self._engine = engine
        self._ttls = tier_ttls(catalog)
        self._scope = scope

    def collect(self) -> Iterable[GaugeMetricFamily]:
        lag = GaugeMetricFamily(
            "genstream_consumer_group_lag",
            "Log end offset minus the group's committed offset",
            labels=["group", "topic", "partition"],
        )
        members = GaugeMetricFamily(
            "genstream_consumer_group_members", "Members of the consumer group", labels=["group"]
        )
        dead_end = GaugeMetricFamily(
            "genstream_deadletter_records",
            "End offsets of the dead-letter topic, summed over its partitions: records ever parked",
        )
        wait = GaugeMetricFamily(
            "genstream_tier_oldest_wait_seconds",
            "How long the oldest job still queued in the tier has waited (read model)",
            labels=["workload", "tier"],
        )
        ttl = GaugeMetricFamily(
            "genstream_tier_queue_ttl_seconds",
            "The tier's queue lifetime: a job waiting longer expires",
            labels=["tier"],
        )
        try:
            facts = read_kafka(self._kafka, self._scope, dead_letters=False)
            for group in facts.groups:
                members.add_metric([group.group], group.members)
                for part in group.partitions:
                    lag.add_metric([group.group, part.topic, str(part.partition)], part.lag)
            parked = dead_letter_end(self._kafka, self._scope)
            if parked is not None:
                dead_end.add_metric([], parked)
        except Exception:  # a scrape must answer whatever the brokers do
            _log.warning("measuring consumer groups failed", exc_info=True)
        try:
            with self._engine.connect() as connection:
                # A scrape reads the queued waits alone, not the status page's activity.
                model = read_model_facts(connection, failures_shown=0, activity=False)
            now = datetime.now(UTC)
            for key, since in model.oldest_queued.items():
                workload, _, tier = key.partition("/")
                wait.add_metric([workload, tier], max(0.0, (now - since).total_seconds()))
        except Exception:
            _log.warning("reading queued jobs failed", exc_info=True)
        for tier, seconds in self._ttls.items():
            if seconds is not None:
                ttl.add_metric([tier], seconds)
        return [lag, members, dead_end, wait, ttl]
