"""The real app served by uvicorn on a loopback port, from a thread of the test process.

Tests that need a real HTTP server (endless event streams, clients that are not asyncio)
without a process of its own: the app keeps the collaborators the test built for it (its
producer, its settings), and its logs go through the test process's logging.
"""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from fastapi import FastAPI
from pydantic import SecretStr

from api.settings import ApiSettings
from api.webhooks.settings import WebhookSettings
from contracts import TopicSpec

_START_TIMEOUT_S = 30.0
_STOP_TIMEOUT_S = 30.0


def isolated_settings(
    settings: ApiSettings, *, requested: TopicSpec, progress: TopicSpec | None = None
) -> ApiSettings:
    """``settings`` on the test's own topics, synthetic jobs on, webhook secrets sealable.

    Without ``progress`` the app must open no event stream: it would read the real topic.
    """
    jobs = {"requested_topic": requested.name, "synthetic_enabled": True}
    reads: dict[str, object] = {"sse_heartbeat_s": 1.0, "sse_poll_s": 1.0}
    if progress is not None:
        reads["progress_topic"] = progress.name
    key = base64.b64encode(os.urandom(32)).decode()
    return settings.model_copy(
        update={
            "jobs": settings.jobs.model_copy(update=jobs),
            "reads": settings.reads.model_copy(update=reads),
            "webhooks": WebhookSettings(encryption_key=SecretStr(key)),
        }
    )


@contextmanager
def serve(app: FastAPI) -> Iterator[str]:
    """Serves ``app`` until the block ends; yields its base URL.

    The app's engine is used only by the server's own event loop, so the app should own
    it (``dispose_engine=True``).
    """
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    config = uvicorn.Config(
        app, log_config=None, access_log=False, lifespan="on", timeout_graceful_shutdown=2
    )
    server = uvicorn.Server(config)
    failure: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(server.serve(sockets=[listener]))
        except BaseException as error:  # reported by the waiting test, not lost in the thread
            failure.append(error)

    thread = threading.Thread(target=run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not server.started:
            if failure or not thread.is_alive() or time.monotonic() > deadline:
                raise AssertionError(f"the API did not start on port {port}: {failure}")
            thread.join(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(_STOP_TIMEOUT_S)
        listener.close()
    assert not thread.is_alive(), "the API did not stop"
    assert not failure, failure
