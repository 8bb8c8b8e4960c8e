"""The webhook dispatcher on a test's own lifecycle topic and schema, in-process or as a process."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, TopicPartition
from pydantic import SecretStr
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from api.webhooks.dispatcher import Dispatcher
from api.webhooks.intake import Intake, skip_invalid
from api.webhooks.links import Signer
from api.webhooks.secret_box import SecretBox
from api.webhooks.sender import Sender
from api.webhooks.settings import WebhookSettings
from api.webhooks.store import DeliveryStore
from contracts import (
    Envelope,
    JobCompleted,
    JobEvent,
    JobQueued,
    JobStarted,
    OutputFile,
    SyntheticInput,
    Tier,
    TopicSpec,
    new_traceparent,
)
from genstream.db.models import Job, User
from genstream.db.webhooks import WebhookAttempt, WebhookDelivery
from genstream.kafka import EventConsumer
from genstream.settings import StackSettings
from producers import EventProducer

ROOT = Path(__file__).resolve().parents[3]


def webhook_settings(
    *, key: str, topic: TopicSpec, schema: str, unique: str, **overrides: Any
) -> WebhookSettings:
    """Fast retries and short timeouts, loopback allowed, everything on the test's own names."""
    values: dict[str, Any] = {
        "encryption_key": SecretStr(key),
        "lifecycle_topic": topic.name,
        "group_id": f"test-webhooks-{unique}",
        "start_from": "earliest",
        "pg_schema": schema,
        "workers": 4,
        "per_host_limit": 4,
        "connect_timeout_s": 1.0,
        "request_timeout_s": 2.0,
        "lease_s": 6.0,
        "backoff_base_s": 0.05,
        "backoff_max_s": 0.2,
        "poll_interval_s": 0.05,
        "session_timeout_s": 6.0,
        "allow_loopback": True,
        # The real progress topic is nobody's test's: a test that needs one gives its own.
        "progress_topic": None,
        **overrides,
    }
    return WebhookSettings(**values)


@contextmanager
def dispatcher_parts(
    stack: StackSettings,
    engine: Engine,
    settings: WebhookSettings,
    wake: threading.Event,
    signer: Signer | None = None,
) -> Iterator[tuple[Intake, Dispatcher]]:
    """The two halves of ``genstream-webhooks``, to step or drain; closed on exit."""
    store = DeliveryStore(
        engine=engine, box=SecretBox.from_text(settings.encryption_key.get_secret_value())
    )
    consumer = EventConsumer(
        settings=stack.kafka,
        group_id=settings.group_id,
        topics=[settings.lifecycle_topic, *filter(None, [settings.progress_topic])],
        on_invalid=skip_invalid,
        auto_offset_reset=settings.start_from,
        extra={"session.timeout.ms": int(settings.session_timeout_s * 1000)},
    )
    intake = Intake(consumer=consumer, store=store, on_recorded=wake.set, signer=signer)
    dispatcher = Dispatcher(
        store=store,
        sender=Sender(settings=settings, https_only=False),
        settings=settings,
        wake=wake,
    )
    try:
        yield intake, dispatcher
    finally:
        dispatcher.close()
        consumer.close()


@contextmanager
def dispatcher_running(
    stack: StackSettings, engine: Engine, settings: WebhookSettings
) -> Iterator[None]:
    """Intake and delivery threads, as ``genstream-webhooks`` runs them; stopped on exit."""
    wake = threading.Event()
    stop = threading.Event()
    with dispatcher_parts(stack, engine, settings, wake) as (intake, dispatcher):
        threads = [
            threading.Thread(target=intake.run, args=(stop,)),
            threading.Thread(target=dispatcher.run, args=(stop,)),
        ]
        for thread in threads:
            thread.start()
        try:
            yield
        finally:
            stop.set()
            wake.set()
            for thread in threads:
                thread.join(30)


def dispatcher_process(
    stack: StackSettings, settings: WebhookSettings, log: Path, *arguments: str
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "GENSTREAM_KAFKA__BOOTSTRAP_SERVERS": stack.kafka.bootstrap_servers,
        "GENSTREAM_PG__HOST": stack.pg.host,
        "GENSTREAM_PG__PORT": str(stack.pg.port),
        "GENSTREAM_PG__USER": stack.pg.user,
        "GENSTREAM_PG__PASSWORD": stack.pg.password.get_secret_value(),
        "GENSTREAM_PG__DATABASE": stack.pg.database,
        "GENSTREAM_ENVIRONMENT": "test",
    }
    for name, value in settings.model_dump().items():
        if value is not None:
            env[f"GENSTREAM_WEBHOOKS__{name.upper()}"] = _env_value(value)
    with log.open("ab") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "api.webhooks.main", *arguments],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )


def _env_value(value: object) -> str:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# -- the job and its events ---------------------------------------------------------------------
def add_user(engine: Engine) -> uuid.UUID:
    user_id = uuid.uuid4()
    with Session(engine) as session, session.begin():
        session.add(User(id=user_id, email=f"{user_id.hex}@example.com"))
    return user_id


def add_job(engine: Engine, user_id: uuid.UUID, webhook_url: str | None) -> str:
    """A submitted job row, as the API writes it, with the webhook URL the user gave."""
    job_id = f"job_{uuid.uuid4().hex}"
    with Session(engine) as session, session.begin():
        session.add(
            Job(
                id=job_id,
                user_id=user_id,
                type="synthetic",
                status="pending",
                input={"kind": "synthetic"},
                webhook_url=webhook_url,
                request_hash="0" * 64,
                event_id=str(uuid.uuid4()),
                event_trace=new_traceparent(),
            )
        )
    return job_id


def queued(job_id: str, topic: str = "jobs.synthetic.free") -> JobQueued:
    return JobQueued(
        job_id=job_id,
        job_type="synthetic",
        tier=Tier.FREE,
        input=SyntheticInput(),
        attempt=1,
        topic=topic,
    )


def started(job_id: str) -> JobStarted:
    return JobStarted(job_id=job_id, worker_id="worker-1", attempt=1)


def completed(job_id: str) -> JobCompleted:
    return JobCompleted(
        job_id=job_id,
        attempt=1,
        worker_id="worker-1",
        outputs=(
            OutputFile(key=f"outputs/u/{job_id}/output.bin", size=3, content_type="image/png"),
        ),
        run_ms=12,
        usage_units=1,
    )


@dataclass
class Lifecycle:
    """Writes a test's lifecycle events, acknowledged by the broker."""

    producer: EventProducer
    topic: TopicSpec

    def send(self, data: JobEvent, user_id: uuid.UUID | str) -> Envelope[Any]:
        envelope = Envelope.wrap(data, user_id=str(user_id), source="genstream/tests")
        self.producer.send_and_wait(self.topic, envelope)
        return envelope

    def resend(self, envelope: Envelope[Any]) -> None:
        """The same event again, as a writer repeats it after a crash."""
        self.producer.send_and_wait(self.topic, envelope)


# -- what happened ------------------------------------------------------------------------------
def deliveries(engine: Engine, job_id: str) -> list[WebhookDelivery]:
    with Session(engine) as session:
        query = select(WebhookDelivery).where(WebhookDelivery.job_id == job_id)
        return list(session.scalars(query.order_by(WebhookDelivery.id)))


def status_of(engine: Engine, job_id: str) -> str | None:
    """The status of the job's one delivery; ``None`` while none is recorded."""
    found = deliveries(engine, job_id)
    return found[0].status if found else None


def attempts(engine: Engine, delivery_id: int) -> list[WebhookAttempt]:
    with Session(engine) as session:
        query = select(WebhookAttempt).where(WebhookAttempt.delivery_id == delivery_id)
        return list(session.scalars(query.order_by(WebhookAttempt.attempt)))


def caught_up(stack: StackSettings, group_id: str, topic: TopicSpec) -> bool:
    """Whether ``group_id`` has committed every record of ``topic`` written so far."""
    consumer = Consumer(stack.kafka.librdkafka(**{"group.id": group_id}))
    try:
        partitions = [TopicPartition(topic.name, p) for p in range(topic.partitions)]
        committed = {tp.partition: tp.offset for tp in consumer.committed(partitions, timeout=10)}
        for tp in partitions:
            _, high = consumer.get_watermark_offsets(tp, timeout=10, cached=False)
            if high > 0 and committed[tp.partition] < high:
                return False
        return True
    finally:
        consumer.close()
