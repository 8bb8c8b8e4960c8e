"""Loaded pipelines kept on one device within a memory budget, least recently used out first."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from contracts import JobType
from genstream.tracing import tracer
from gpu_consumers.pipelines.base import Pipeline, TransientError

_tracer = tracer(__name__)

__all__ = ["CacheStats", "ModelCache", "ModelKey"]

ModelKey = tuple[JobType, str | None]
"""A job type and the model directory (or hub id) that serves it; ``None`` for model-free."""


@dataclass(frozen=True, slots=True)
class CacheStats:
    hits: int
    misses: int
    evictions: int
    used_bytes: int
    budget_bytes: int
    loaded: int


class ModelCache:
    """Pipelines loaded onto ``device``, keyed by (job type, model directory).

    ``get`` loads on a miss and then unloads the least recently used pipelines until what is
    loaded fits ``budget_bytes``. A pipeline larger than the whole budget still loads, alone.
    Room is made twice: before loading, for what the pipeline says it will occupy (often
    nothing is known yet), and after, for what it really occupies. A load that fails with
    ``TransientError`` (out of device memory) is tried once more with nothing else loaded.

    Thread-safe: one lock covers lookups, loads and evictions, so two threads never load the
    same model twice or evict a model while the other loads it. A worker runs one job at a
    time on a device, so a pipeline is never evicted while it runs.
    """

    def __init__(
        self,
        budget_bytes: int,
        device: str,
        factory: Callable[[ModelKey], Pipeline],
    ) -> None:
        if budget_bytes < 0:
            raise ValueError("the memory budget cannot be negative")
        self._budget = budget_bytes
        self._device = device
        self._factory = factory
        self._loaded: OrderedDict[ModelKey, Pipeline] = OrderedDict()
        self._lock = threading.Lock()
        self._hits = 0
        self._misses = 0
        self._evictions = 0

    @property
    def device(self) -> str:
        return self._device

    def get(self, key: ModelKey) -> Pipeline:
        """The pipeline for ``key``, loaded now if it is not held already."""
        with self._lock:
            pipeline = self._loaded.get(key)
            if pipeline is not None:
                self._hits += 1
                self._loaded.move_to_end(key)
                return pipeline
            self._misses += 1
            with _tracer.start_as_current_span("model.load") as span:
                span.set_attribute("genstream.job_type", str(key[0]))
                span.set_attribute("genstream.device", self._device)
                pipeline = self._factory(key)
                self._make_room(pipeline.memory_bytes)
                try:
                    pipeline.load(self._device)
                except TransientError:
                    if not self._loaded:
                        raise
                    # Most likely out of device memory: what the others hold may be all it
                    # needs.
                    self._make_room(self._budget + 1)
                    pipeline.load(self._device)
            self._make_room(pipeline.memory_bytes)
            self._loaded[key] = pipeline
            return pipeline

    def evict(self, key: ModelKey) -> bool:
        """Unloads the pipeline for ``key``; whether one was held."""
        with self._lock:
            pipeline = self._loaded.pop(key, None)
            if pipeline is None:
                return False
            pipeline.unload()
            self._evictions += 1
            return True

    def clear(self) -> None:
        """Unloads everything (at shutdown, or after a device error)."""
        with self._lock:
            while self._loaded:
                _, pipeline = self._loaded.popitem(last=False)
                pipeline.unload()
                self._evictions += 1

    def keys(self) -> list[ModelKey]:
        """The loaded keys, least recently used first."""
        with self._lock:
            return list(self._loaded)

    def stats(self) -> CacheStats:
        with self._lock:
            return CacheStats(
                hits=self._hits,
                misses=self._misses,
                evictions=self._evictions,
                used_bytes=self._used_bytes(),
                budget_bytes=self._budget,
                loaded=len(self._loaded),
            )

    def _used_bytes(self) -> int:
        return sum(pipeline.memory_bytes for pipeline in self._loaded.values())

    def _make_room(self, incoming_bytes: int) -> None:
        while self._loaded and self._used_bytes() + incoming_bytes > self._budget:
            _, oldest = self._loaded.popitem(last=False)
            oldest.unload()
            self._evictions += 1
