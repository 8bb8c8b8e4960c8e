"""The peer's Celery application and its one task, the synthetic job.

As Celery's documentation has it: the app is a module attribute that ``celery -A`` finds;
the broker comes from Celery's own ``CELERY_BROKER_URL``; per-process resources (the Redis
connection for progress, the S3 client) are made in ``worker_process_init``. Priority is a
queue per tier (created on first use), read in the order given
(``queue_order_strategy: priority``); ``acks_late`` with a prefetch multiplier of 1 keeps a
worker from holding jobs it has not started.

The task runs genstream's own synthetic pipeline and stores its preview and output in the
same S3 server, so both systems do the same work and differ in how it reaches the worker.
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery
from celery.signals import worker_process_init

__all__ = ["CHANNEL", "TIERS", "app"]

TIERS = ("pro", "creator", "free")
CHANNEL = "bench:events"

app = Celery("genstream-bench-peer")
app.conf.update(
    task_default_queue="free",
    broker_transport_options={"queue_order_strategy": "priority"},
    task_acks_late=True,
    worker_prefetch_multiplier=1,
    task_ignore_result=True,
    task_serializer="json",
    accept_content=["json"],
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)

# Per worker process, as Celery recommends for connections; filled by worker_process_init.
_resources: dict[str, Any] = {}


def _open_resources(**_: Any) -> None:
    import redis

    from genstream.settings import StackSettings
    from gpu_consumers.pipelines.synthetic import SyntheticPipeline
    from gpu_consumers.storage import ObjectStore

    _resources["redis"] = redis.Redis.from_url(os.environ["CELERY_BROKER_URL"])
    _resources["store"] = ObjectStore(StackSettings().s3)
    _resources["pipeline"] = SyntheticPipeline()


def _synthetic(self: Any, user_id: str, job_input: dict[str, Any]) -> None:
    from contracts.inputs import SyntheticInput
    from gpu_consumers.pipelines.base import Preview, RunContext
    from gpu_consumers.storage import output_key

    job_id: str = self.request.id
    publish = _resources["redis"].publish
    store = _resources["store"]
    publish(CHANNEL, f"started {job_id}")

    def progress(step: int, total: int, message: str | None) -> None:
        publish(CHANNEL, f"progress {job_id} {step}/{total}")

    def preview(shot: Preview) -> None:
        key = output_key(user_id, job_id, f"preview-1-{shot.step}")
        store.put_output(key, shot.data, shot.content_type)
        publish(CHANNEL, f"preview {job_id} {shot.step}")

    context = RunContext(
        job_id=job_id,
        input=SyntheticInput.model_validate(job_input),
        progress=progress,
        preview=preview,
    )
    result = _resources["pipeline"].run(context)
    for artifact in result.outputs:
        store.put_output(
            output_key(user_id, job_id, artifact.name), artifact.data, artifact.content_type
        )
    publish(CHANNEL, f"completed {job_id}")


worker_process_init.connect(_open_resources)
synthetic = app.task(name="bench.synthetic", bind=True)(_synthetic)
