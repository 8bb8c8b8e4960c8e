"""Entry point of a GPU worker (``genstream-worker``): one process serves one workload."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

from prometheus_client import start_http_server

from genstream.kafka.deadletter import DeadLetters
from genstream.logs import configure_logging
from genstream.signals import stop_on_signals
from genstream.tracing import configure_tracing
from gpu_consumers.control import JobControl
from gpu_consumers.gpu_stats import GpuStats
from gpu_consumers.hosting import worker_pipelines
from gpu_consumers.retry_relay import RETRY_RELAY_GROUP, RetryRelay
from gpu_consumers.runner import JobRunner
from gpu_consumers.settings import WorkerSettings
from gpu_consumers.storage import ObjectStore
from gpu_consumers.topology import WorkerTopology
from gpu_consumers.worker import Worker
from producers import EventProducer

_log = logging.getLogger("genstream.worker")


def main(argv: Sequence[str] | None = None) -> int:
    del argv
    settings = WorkerSettings()
    configure_logging("worker", settings.log_level)
    # botocore's calls are the workers' downloads of uploads; outputs have their own span.
    configure_tracing(
        f"genstream-worker-{settings.worker_workload.value}", instrument_botocore=True
    )
    if settings.worker_metrics_port is not None:
        start_http_server(settings.worker_metrics_port, addr="127.0.0.1")
    topology = WorkerTopology(settings.worker_workload, prefix=settings.worker_topic_prefix)
    stop = threading.Event()

    stop_on_signals(stop, log=_log, message="stopping; the running job is let finish")

    pipelines = worker_pipelines(settings)
    control = JobControl(
        settings.kafka,
        lifecycle=topology.lifecycle,
        requested=topology.requested,
        lookback_s=settings.worker_control_lookback_s,
    )
    control.start()
    if not control.wait_caught_up(120):
        _log.warning("job control not caught up after 120 s; starting anyway")
    producer = EventProducer(settings=settings.kafka)
    store = ObjectStore(settings.s3)
    dead_letters = DeadLetters(
        settings=settings.kafka, consumer_name=settings.group_id, topic=topology.deadletter
    )
    runner = JobRunner(
        settings,
        topology=topology,
        producer=producer,
        store=store,
        control=control,
        pipelines=pipelines.provider,
    )
    helpers: list[threading.Thread] = []
    if settings.worker_run_retry_relay:
        relay = RetryRelay(
            settings.kafka,
            topology=topology,
            producer=producer,
            dead_letters=dead_letters,
            group_id=f"{settings.worker_topic_prefix}{RETRY_RELAY_GROUP}",
        )
        helpers.append(threading.Thread(target=relay.run, args=(stop,), name="retry-relay"))
    gpu_stats = GpuStats(pipelines.device)
    helpers.append(threading.Thread(target=gpu_stats.run, args=(stop,), name="gpu-stats"))
    for thread in helpers:
        thread.start()
    _log.info(
        "worker %s serving %s on %s",
        settings.worker_id,
        settings.worker_workload.value,
        pipelines.device,
    )
    try:
        Worker(settings, topology=topology, runner=runner, dead_letters=dead_letters).run(stop)
    finally:
        stop.set()
        for thread in helpers:
            thread.join(10)
        control.stop()
        producer.close()
        dead_letters.close()
        store.close()
        pipelines.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
