"""The fetch filter handed to aiokafka: live, and selecting nothing when nothing is active."""

from __future__ import annotations

from aiokafka.structs import TopicPartition

from stream_processors import faust_recovery
from stream_processors.faust_recovery import _ActivePartitions


def test_an_empty_active_set_selects_no_partition() -> None:
    live: set[TopicPartition] = set()
    view = _ActivePartitions(live)
    # aiokafka reads a falsy filter as "every partition"; this one never is.
    assert bool(view)
    assert TopicPartition("jobs.requested", 0) not in view


def test_the_view_follows_the_live_set() -> None:
    tp = TopicPartition("jobs.requested", 3)
    live = {tp}
    view = _ActivePartitions(live)
    assert tp in view
    live.discard(tp)
    assert tp not in view


def test_install_patches_once() -> None:
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    faust_recovery.install()
    patched = AIOKafkaConsumerThread._fetch_records
    faust_recovery.install()
    assert AIOKafkaConsumerThread._fetch_records is patched
    assert patched.__wrapped__ is not None  # type: ignore[attr-defined]
