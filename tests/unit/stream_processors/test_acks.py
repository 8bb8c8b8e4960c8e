"""When an agent's inputs are acknowledged: only after what they caused is delivered."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any, cast

import faust
import pytest

from stream_processors.acks import Acknowledger


class _Stream:
    """The part of a faust stream the acknowledger uses: inputs fed by the test, then paused
    (as Faust pauses a stream in a rebalance) until the test closes it."""

    def __init__(self) -> None:
        self.inputs: asyncio.Queue[str | None] = asyncio.Queue()
        self.acked: list[str] = []
        self.manual = False

    def noack(self) -> _Stream:
        self.manual = True
        return self

    async def events(self) -> AsyncIterator[str]:
        while (event := await self.inputs.get()) is not None:
            yield event

    async def ack(self, event: str) -> bool:
        self.acked.append(event)
        return True


async def _until(condition: Callable[[], bool], *, timeout_s: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.001)


def _acknowledger(stream: _Stream, **options: Any) -> Acknowledger:
    return Acknowledger(cast(faust.StreamT[Any], stream), **options)


async def test_inputs_are_acknowledged_in_order_once_all_deliveries_are_done() -> None:
    stream = _Stream()
    acks = _acknowledger(stream, linger_s=0)
    deliveries: list[asyncio.Future[None]] = []

    async def agent() -> None:
        async for _ in acks.events():
            delivery = asyncio.get_running_loop().create_future()
            deliveries.append(delivery)
            acks.caused(delivery)

    running = asyncio.create_task(agent())
    for event in ("a", "b", "c"):
        stream.inputs.put_nowait(event)
    await _until(lambda: len(deliveries) == 3)
    # No further input comes (a paused stream), and the brokers have not answered yet.
    for _ in range(10):
        await asyncio.sleep(0)
    assert stream.acked == []
    deliveries[1].set_result(None)
    deliveries[2].set_result(None)
    for _ in range(10):
        await asyncio.sleep(0)
    assert stream.acked == []
    deliveries[0].set_result(None)
    await _until(lambda: stream.acked == ["a", "b", "c"])
    assert stream.manual
    stream.inputs.put_nowait(None)
    await running


async def test_writes_held_until_the_batch_ends_happen_before_its_inputs_are_acknowledged() -> None:
    stream = _Stream()
    acked_at_batch_end: list[list[str]] = []
    acks = _acknowledger(
        stream, linger_s=0, on_batch_end=lambda: acked_at_batch_end.append(list(stream.acked))
    )

    async def agent() -> None:
        async for _ in acks.events():
            pass

    running = asyncio.create_task(agent())
    stream.inputs.put_nowait("a")
    await _until(lambda: stream.acked == ["a"])
    assert acked_at_batch_end == [[]]
    stream.inputs.put_nowait(None)
    await running


async def test_the_agent_waits_while_a_full_batch_is_unacknowledged() -> None:
    stream = _Stream()
    acks = _acknowledger(stream, batch=2, linger_s=0)
    pending: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    handled: list[str] = []

    async def agent() -> None:
        async for event in acks.events():
            handled.append(event)
            acks.caused(pending)

    running = asyncio.create_task(agent())
    for event in ("a", "b", "c", "d"):
        stream.inputs.put_nowait(event)
    await _until(lambda: len(handled) >= 2)
    for _ in range(10):
        await asyncio.sleep(0)
    # The settled batch is waiting for the brokers; the agent may handle one batch more.
    assert len(handled) <= 4
    pending.set_result(None)
    await _until(lambda: stream.acked == ["a", "b", "c", "d"])
    stream.inputs.put_nowait(None)
    await running


async def test_a_failed_delivery_leaves_its_inputs_unacknowledged_and_stops_the_agent() -> None:
    stream = _Stream()
    acks = _acknowledger(stream, linger_s=0)

    async def agent() -> None:
        async for _ in acks.events():
            failed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            failed.set_exception(OSError("broker unavailable"))
            acks.caused(failed)

    running = asyncio.create_task(agent())
    stream.inputs.put_nowait("a")
    # The agent learns of the failure when it takes an input after it.
    await _until(lambda: running.done() or stream.inputs.put_nowait("more") is not None)
    with pytest.raises(OSError, match="broker"):
        await running
    assert stream.acked == []
