"""Sends due deliveries with a small pool of workers and records what came of each attempt.

The schedule lives in PostgreSQL (``next_attempt_at``), so retries survive restarts and
several dispatchers share the work. A slow or failing endpoint holds at most
``per_host_limit`` workers, each for at most one request's timeout, and its retries are
pushed back by the backoff, so deliveries to everyone else keep flowing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime

import prometheus_client
from opentelemetry.trace import INVALID_SPAN, Span
from opentelemetry.util.types import AttributeValue

from api.webhooks.policy import RetryPolicy, Verdict, verdict_for
from api.webhooks.redaction import redacted_url
from api.webhooks.sender import Attempt, Outgoing, Sender
from api.webhooks.settings import WebhookSettings
from api.webhooks.store import Claimed, DeliveryStore, host_of
from genstream.db.outages import through_outages
from genstream.logs import log_context
from genstream.tracing import provider_installed, span_from, tracer

__all__ = ["Dispatcher", "policy_of"]

_log = logging.getLogger(__name__)
_tracer = tracer(__name__)

ATTEMPTS = prometheus_client.Counter(
    "genstream_webhook_attempts_total",
    "Webhook delivery attempts, by what became of the delivery",
    ["status"],
)


def policy_of(settings: WebhookSettings) -> RetryPolicy:
    return RetryPolicy(
        max_attempts=settings.max_attempts,
        base_s=settings.backoff_base_s,
        max_s=settings.backoff_max_s,
        retry_after_cap_s=settings.retry_after_cap_s,
    )


class Dispatcher:
    def __init__(
        self,
        *,
        store: DeliveryStore,
        sender: Sender,
        settings: WebhookSettings,
        wake: threading.Event | None = None,
    ) -> None:
        self._store = store
        self._sender = sender
        self._settings = settings
        self._policy = policy_of(settings)
        self._wake = wake or threading.Event()
        self._traced = provider_installed()
        self._pool = ThreadPoolExecutor(settings.workers, thread_name_prefix="webhook")
        self._lock = threading.Lock()
        self._busy: Counter[str] = Counter()
        """Requests in flight per host."""

    def step(self) -> int:
        """Hands as many due deliveries to free workers as the limits allow; returns how many."""
        with self._lock:
            free = self._settings.workers - sum(self._busy.values())
            busy = dict(self._busy)
        claimed = self._store.claim(
            limit=free,
            busy_hosts=busy,
            per_host=self._settings.per_host_limit,
            lease_s=self._settings.lease_s,
        )
        for delivery in claimed:
            with self._lock:
                self._busy[host_of(delivery.url)] += 1
            self._pool.submit(self._deliver, delivery)
        return len(claimed)

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self._wake.clear()
            claimed = through_outages(self.step, stop=stop, what="the webhook delivery")
            if claimed is None:
                break
            if claimed == (0,):
                # New deliveries and finished workers set the event; the poll is the fallback.
                self._wake.wait(self._settings.poll_interval_s)

    def drain(self, *, until: Callable[[], bool], timeout_s: float) -> bool:
        """Runs until ``until()`` holds or the deadline passes; returns whether it held."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if until():
                return True
            self._wake.clear()
            if self.step() == 0:
                self._wake.wait(min(self._settings.poll_interval_s, 0.05))
        return until()

    def close(self) -> None:
        """Waits for the attempts under way and records them: nothing finished is forgotten."""
        self._pool.shutdown(wait=True)

    def _deliver(self, claimed: Claimed) -> None:
        host = host_of(claimed.url)
        try:
            with log_context(job_id=claimed.job_id):
                self._attempt(claimed, host)
        except Exception:
            # The claim lapses after its lease and the delivery is tried again then.
            _log.exception("webhook attempt not recorded", extra={"delivery_id": claimed.id})
        finally:
            with self._lock:
                self._busy[host] -= 1
                if self._busy[host] <= 0:
                    del self._busy[host]
            self._wake.set()

    def _attempt(self, claimed: Claimed, host: str) -> None:
        secrets = self._store.signing_secrets(claimed.user_id)
        number = claimed.attempts + 1
        with self._span(claimed, number) as span:
            attempt = self._sender.post(
                Outgoing(message_id=claimed.event_id, url=claimed.url, body=claimed.payload),
                secrets=secrets.valid(datetime.now(UTC)),
            )
            status, retry_in_s = self._outcome(attempt, number)
            ATTEMPTS.labels(status).inc()
            span.set_attribute("genstream.webhook.status", status)
            if attempt.status_code is not None:
                span.set_attribute("http.response.status_code", attempt.status_code)
        if not self._store.finish(claimed, attempt, status=status, retry_in_s=retry_in_s):
            _log.warning("webhook claim lost before the attempt was recorded")
            return
        _log.log(
            logging.WARNING if status == "failed" else logging.INFO,
            "webhook %s",
            "will be retried" if status == "pending" else status,
            extra={
                "delivery_id": claimed.id,
                "event_id": claimed.event_id,
                "host": host,
                "url": redacted_url(claimed.url),
                "attempt": number,
                "status_code": attempt.status_code,
                "error": attempt.detail,
                "duration_ms": attempt.duration_ms,
                "retry_in_s": retry_in_s,
            },
        )

    def _span(self, claimed: Claimed, number: int) -> AbstractContextManager[Span]:
        """A span in the job's trace (child of its submission) for one delivery attempt."""
        if not self._traced:
            return nullcontext(INVALID_SPAN)
        attributes: dict[str, AttributeValue] = {
            "genstream.job_id": claimed.job_id,
            "genstream.webhook.attempt": number,
            "server.address": host_of(claimed.url),
        }
        parent = self._store.job_trace(claimed.job_id) or ""
        return span_from(_tracer, "webhook.deliver", parent, attributes=attributes)

    def _outcome(self, attempt: Attempt, number: int) -> tuple[str, float | None]:
        verdict = Verdict.FAILED if attempt.refused else verdict_for(attempt.status_code)
        if verdict is Verdict.DELIVERED:
            return "delivered", None
        if verdict is Verdict.RETRY and not self._policy.gives_up_after(number):
            return "pending", self._policy.delay_s(number, retry_after_s=attempt.retry_after_s)
        return "failed", None
