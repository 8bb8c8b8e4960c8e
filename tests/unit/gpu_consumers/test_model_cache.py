"""The model cache's budget, LRU order, counters and locking, with pipelines that load nothing."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import pytest

from contracts import JobType
from gpu_consumers.model_cache import ModelCache, ModelKey
from gpu_consumers.pipelines import Pipeline, PipelineResult, RunContext, TransientError

MB = 1024 * 1024


@dataclass
class FakePipeline:
    """Occupies ``size`` bytes once loaded; ``estimate`` before; logs loads and unloads."""

    key: ModelKey
    size: int
    log: list[str]
    estimate: int = 0
    load_delay_s: float = 0.0
    fail_loads: int = 0
    loaded_on: str | None = field(default=None, init=False)

    @property
    def job_type(self) -> JobType:
        return self.key[0]

    @property
    def memory_bytes(self) -> int:
        return self.size if self.loaded_on is not None else self.estimate

    def load(self, device: str) -> None:
        time.sleep(self.load_delay_s)
        if self.fail_loads:
            self.fail_loads -= 1
            raise TransientError("out of memory")
        self.loaded_on = device
        self.log.append(f"load {self.key[1]}")

    def unload(self) -> None:
        self.loaded_on = None
        self.log.append(f"unload {self.key[1]}")

    def run(self, ctx: RunContext) -> PipelineResult:
        raise NotImplementedError


class Factory:
    def __init__(self, sizes: dict[str, int], **options: int | float) -> None:
        self.sizes = sizes
        self.options = options
        self.log: list[str] = []
        self.built: list[FakePipeline] = []

    def __call__(self, key: ModelKey) -> Pipeline:
        assert key[1] is not None
        pipeline = FakePipeline(key, self.sizes[key[1]], self.log, **self.options)  # type: ignore[arg-type]
        self.built.append(pipeline)
        return pipeline


def key(name: str) -> ModelKey:
    return (JobType.IMAGE_GENERATE, name)


def test_a_hit_returns_the_loaded_pipeline_without_loading_again() -> None:
    factory = Factory({"a": 10 * MB})
    cache = ModelCache(100 * MB, "cpu", factory)
    first = cache.get(key("a"))
    assert cache.get(key("a")) is first
    assert factory.log == ["load a"]
    assert isinstance(first, FakePipeline)
    assert first.loaded_on == "cpu"
    stats = cache.stats()
    assert (stats.hits, stats.misses, stats.evictions) == (1, 1, 0)
    assert stats.used_bytes == 10 * MB


def test_the_least_recently_used_pipelines_go_until_the_new_one_fits() -> None:
    factory = Factory({"a": 40 * MB, "b": 40 * MB, "c": 40 * MB, "d": 70 * MB})
    cache = ModelCache(100 * MB, "cpu", factory)
    cache.get(key("a"))
    cache.get(key("b"))
    cache.get(key("a"))  # b is now the least recently used
    cache.get(key("c"))
    assert cache.keys() == [key("a"), key("c")]
    cache.get(key("d"))
    assert cache.keys() == [key("d")]
    assert factory.log == [
        "load a",
        "load b",
        "load c",
        "unload b",
        "load d",
        "unload a",
        "unload c",
    ]
    assert cache.stats().evictions == 3
    assert cache.stats().used_bytes == 70 * MB


def test_a_pipeline_larger_than_the_budget_loads_alone() -> None:
    factory = Factory({"small": 10 * MB, "huge": 500 * MB})
    cache = ModelCache(100 * MB, "cpu", factory)
    cache.get(key("small"))
    huge = cache.get(key("huge"))
    assert cache.keys() == [key("huge")]
    assert huge.memory_bytes == 500 * MB
    cache.get(key("small"))
    assert cache.keys() == [key("small")]


def test_room_is_made_before_loading_when_the_size_is_known() -> None:
    factory = Factory({"a": 60 * MB, "b": 60 * MB}, estimate=60 * MB)
    cache = ModelCache(100 * MB, "cpu", factory)
    cache.get(key("a"))
    cache.get(key("b"))
    assert factory.log == ["load a", "unload a", "load b"]


def test_keys_differ_by_job_type_and_by_model_directory() -> None:
    factory = Factory({"a": MB, "b": MB})
    cache = ModelCache(100 * MB, "cpu", factory)
    cache.get((JobType.IMAGE_GENERATE, "a"))
    cache.get((JobType.IMAGE_EDIT, "a"))
    cache.get((JobType.IMAGE_GENERATE, "b"))
    assert len(cache.keys()) == 3
    assert cache.stats().misses == 3


def test_a_load_out_of_memory_is_retried_once_with_nothing_else_loaded() -> None:
    factory = Factory({"a": 10 * MB, "b": 10 * MB})
    cache = ModelCache(100 * MB, "cpu", factory)
    cache.get(key("a"))
    factory.options["fail_loads"] = 1
    cache.get(key("b"))
    assert cache.keys() == [key("b")]
    assert factory.log == ["load a", "unload a", "load b"]


def test_a_failed_load_is_not_cached_and_raises() -> None:
    factory = Factory({"a": 10 * MB}, fail_loads=2)
    cache = ModelCache(100 * MB, "cpu", factory)
    with pytest.raises(TransientError):
        cache.get(key("a"))
    assert cache.keys() == []
    factory.options["fail_loads"] = 0
    cache.get(key("a"))
    assert cache.keys() == [key("a")]


def test_evict_and_clear_unload() -> None:
    factory = Factory({"a": MB, "b": MB})
    cache = ModelCache(100 * MB, "cpu", factory)
    cache.get(key("a"))
    cache.get(key("b"))
    assert cache.evict(key("a"))
    assert not cache.evict(key("a"))
    cache.clear()
    assert cache.keys() == []
    assert factory.log == ["load a", "load b", "unload a", "unload b"]
    assert cache.stats().evictions == 2


def test_concurrent_misses_on_one_key_load_it_once() -> None:
    factory = Factory({"a": MB}, load_delay_s=0.05)
    cache = ModelCache(100 * MB, "cpu", factory)
    results: list[Pipeline] = []
    threads = [
        threading.Thread(target=lambda: results.append(cache.get(key("a")))) for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert len(results) == 8
    assert all(result is results[0] for result in results)
    assert factory.log == ["load a"]
    stats = cache.stats()
    assert (stats.hits, stats.misses) == (7, 1)


def test_a_negative_budget_is_refused() -> None:
    with pytest.raises(ValueError, match="budget"):
        ModelCache(-1, "cpu", Factory({}))
