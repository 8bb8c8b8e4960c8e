"""The pipeline host: jobs run in a child process that the worker stops when they overrun."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest

from contracts import JobType
from contracts.inputs import SyntheticInput
from gpu_consumers.isolation import ChildSpec, JobLimits, PipelineError, PipelineHost
from gpu_consumers.pipelines import (
    Artifact,
    JobStopped,
    LimitExceededError,
    PermanentError,
    Pipeline,
    PipelineResult,
    RunContext,
    TransientError,
)

_MB = 1024 * 1024
_CEILING = 200 * _MB


class _Scripted:
    """A pipeline whose behaviour in a job is the job's id."""

    job_type = JobType.SYNTHETIC
    memory_bytes = 0

    def __init__(self) -> None:
        self._loads = 0

    def load(self, device: str) -> None:
        del device
        self._loads += 1

    def unload(self) -> None:
        return None

    def run(self, ctx: RunContext) -> PipelineResult:
        hoard: list[bytes] = []
        behaviour = ctx.job_id
        if behaviour == "raise":
            raise KeyError("no such thing")
        for step in range(1, 1_000_000):
            if behaviour == "sleep":
                time.sleep(60)  # one long forward pass that never reaches a check
            elif behaviour == "hog":
                hoard.append(b"\x01" * (16 * _MB))  # written: every page is resident
            elif behaviour == "crash":
                os._exit(3)
            elif behaviour == "checks":
                time.sleep(0.01)
                ctx.check()
            else:
                ctx.progress(1, 1, None)
                break
            del step
        data = f"{os.getpid()} {self._loads}".encode()
        return PipelineResult(
            outputs=(Artifact(name="out", data=data, content_type="text/plain"),), usage_units=1
        )


def _factory(job_type: JobType, model_dir: str | None) -> Pipeline:
    del job_type, model_dir
    return _Scripted()


def _host() -> PipelineHost:
    spec = ChildSpec(device="cpu", budget_bytes=1, models={}, factory=_factory)
    return PipelineHost(spec, JobLimits(memory_bytes=_CEILING, stop_grace_s=0.5))


@pytest.fixture
def host() -> Iterator[PipelineHost]:
    made = _host()
    yield made
    made.close()


def _context(
    behaviour: str = "echo", deadline_s: float | None = None
) -> tuple[RunContext, list[tuple[int, int]]]:
    seen: list[tuple[int, int]] = []
    ends = None if deadline_s is None else time.monotonic() + deadline_s

    def check() -> None:
        if ends is not None and time.monotonic() > ends:
            raise JobStopped("timeout")

    ctx = RunContext(
        job_id=behaviour,
        input=SyntheticInput(steps=1),
        progress=lambda step, total, _: seen.append((step, total)),
        check=check,
    )
    return ctx, seen


def _run(host: PipelineHost, behaviour: str, deadline_s: float | None = None) -> PipelineResult:
    ctx, _ = _context(behaviour, deadline_s)
    return host.pipeline(JobType.SYNTHETIC).run(ctx)


def test_a_job_runs_in_a_child_that_keeps_its_model_loaded(host: PipelineHost) -> None:
    ctx, progress = _context()
    first = host.pipeline(JobType.SYNTHETIC).run(ctx)
    second = host.pipeline(JobType.SYNTHETIC).run(_context()[0])
    pid, loads = first.outputs[0].data.decode().split()
    assert int(pid) == host.child_pid() != os.getpid()
    assert loads == "1"
    assert second.outputs[0].data == first.outputs[0].data  # same child, loaded once
    assert progress == [(1, 1)]


def test_a_long_forward_pass_past_its_time_is_killed_and_the_next_job_runs() -> None:
    host = _host()
    try:
        started = time.monotonic()
        with pytest.raises(JobStopped, match="timeout"):
            _run(host, "sleep", deadline_s=0.3)
        assert time.monotonic() - started < 10  # well before the 60 s pass would end
        assert host.child_pid() is None
        assert _run(host, "echo").outputs[0].data.endswith(b" 1")
    finally:
        host.close()


def test_a_job_past_the_memory_ceiling_is_killed_with_a_clear_code(host: PipelineHost) -> None:
    with pytest.raises(LimitExceededError, match="memory ceiling") as caught:
        _run(host, "hog")
    assert caught.value.code == "memory_limit"
    assert _run(host, "echo").outputs[0].content_type == "text/plain"


def test_a_job_that_checks_stops_without_losing_its_child(host: PipelineHost) -> None:
    _run(host, "echo")
    pid = host.child_pid()
    with pytest.raises(JobStopped, match="timeout"):
        _run(host, "checks", deadline_s=0.2)
    assert host.child_pid() == pid


def test_a_child_that_dies_is_a_transient_failure_and_is_replaced(host: PipelineHost) -> None:
    with pytest.raises(TransientError, match="exit code 3"):
        _run(host, "crash")
    assert _run(host, "echo").outputs


def test_an_unclassified_error_keeps_its_name(host: PipelineHost) -> None:
    with pytest.raises(PipelineError, match="KeyError"):
        _run(host, "raise")


def test_an_address_space_limit_fails_the_allocation_with_memory_limit() -> None:
    limit = 2048 * _MB
    spec = ChildSpec(
        device="cpu", budget_bytes=1, models={}, factory=_factory, address_space_bytes=limit
    )
    host = PipelineHost(spec, JobLimits(memory_bytes=None, address_space_bytes=limit))
    try:
        with pytest.raises(PermanentError) as caught:
            _run(host, "hog")
        assert caught.value.code == "memory_limit"
        assert _run(host, "echo").outputs  # a fresh child after the failed allocation
    finally:
        host.close()
