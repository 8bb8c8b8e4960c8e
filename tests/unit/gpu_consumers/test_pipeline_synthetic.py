"""The synthetic pipeline: steps, progress, a preview, failures on request, a set output."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from contracts import JobType
from contracts.inputs import SyntheticInput
from gpu_consumers import blurhash
from gpu_consumers.pipelines import JobStopped, TransientError, build_pipeline
from tests.unit.gpu_consumers.pipeline_harness import Recorder


def test_runs_every_step_and_returns_the_asked_bytes() -> None:
    pipeline = build_pipeline(JobType.SYNTHETIC, None)
    pipeline.load("cpu")
    recorder = Recorder()
    result = pipeline.run(recorder.context(SyntheticInput(steps=8, step_ms=1, output_bytes=1000)))
    assert recorder.progress == [(step, 8) for step in range(1, 9)]
    recorder.assert_complete()
    assert result.usage_units == 8
    (output,) = result.outputs
    assert output.name == "output.bin"
    assert output.content_type == "application/octet-stream"
    assert len(output.data) == 1000
    again = pipeline.run(Recorder().context(SyntheticInput(steps=1, step_ms=0, output_bytes=1000)))
    assert again.outputs[0].data == output.data
    assert pipeline.memory_bytes == 0


def test_a_preview_a_quarter_of_the_way_in() -> None:
    pipeline = build_pipeline(JobType.SYNTHETIC, None)
    recorder = Recorder()
    pipeline.run(recorder.context(SyntheticInput(steps=8, step_ms=0)))
    (preview,) = recorder.previews
    assert preview.step == 2
    assert preview.content_type == "image/png"
    assert preview.blurhash is not None
    assert blurhash.is_valid(preview.blurhash)
    assert Image.open(io.BytesIO(preview.data)).size == (16, 16)


def test_no_steps_no_preview() -> None:
    pipeline = build_pipeline(JobType.SYNTHETIC, None)
    recorder = Recorder()
    result = pipeline.run(recorder.context(SyntheticInput(steps=0, output_bytes=0)))
    assert (recorder.progress, recorder.previews) == ([], [])
    assert result.outputs[0].data == b""
    assert result.usage_units == 0


@pytest.mark.parametrize("fail_at", [0, 3, 5])
def test_fails_transiently_after_fail_at_steps(fail_at: int) -> None:
    pipeline = build_pipeline(JobType.SYNTHETIC, None)
    recorder = Recorder()
    with pytest.raises(TransientError, match=f"after {fail_at} of 5"):
        pipeline.run(recorder.context(SyntheticInput(steps=5, step_ms=0, fail_at=fail_at)))
    assert [step for step, _ in recorder.progress] == list(range(1, fail_at + 1))


def test_a_stop_ends_the_run_within_one_step() -> None:
    pipeline = build_pipeline(JobType.SYNTHETIC, None)
    recorder = Recorder(stop_after=3)
    with pytest.raises(JobStopped):
        pipeline.run(recorder.context(SyntheticInput(steps=100, step_ms=1)))
    assert len(recorder.progress) == 3


def test_a_long_step_is_checked_in_slices() -> None:
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    pipeline = build_pipeline(
        JobType.SYNTHETIC, None, slice_s=0.5, sleep=sleep, clock=lambda: now[0]
    )
    recorder = Recorder()
    pipeline.run(recorder.context(SyntheticInput(steps=2, step_ms=10_000)))
    assert now[0] == pytest.approx(20.0)
    # Two checks per second of sleep, plus one before each step.
    assert recorder.checks == 2 * 20 + 2
