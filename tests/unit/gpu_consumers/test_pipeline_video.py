"""Video generation and enhancement: real models, real H.264 MP4s written and read by PyAV."""

from __future__ import annotations

import io
from pathlib import Path

import av
import pytest
from PIL import Image

from contracts import JobType
from contracts.inputs import VideoEnhanceInput, VideoGenerateInput
from gpu_consumers import blurhash
from gpu_consumers.pipelines import JobStopped, PermanentError, Pipeline, build_pipeline
from gpu_consumers.pipelines.video_generate import VideoGeneratePipeline
from tests.unit.gpu_consumers.pipeline_harness import Recorder, tiny_models, write_video

__all__ = ["tiny_models"]


@pytest.fixture(scope="module")
def generate(tiny_models: dict[str, Path]) -> Pipeline:
    pipeline = build_pipeline(
        JobType.VIDEO_GENERATE, str(tiny_models["video.generate"]), steps=2, segment_frames=3
    )
    pipeline.load("cpu")
    return pipeline


@pytest.fixture(scope="module")
def enhance(tiny_models: dict[str, Path]) -> Pipeline:
    pipeline = build_pipeline(
        JobType.VIDEO_ENHANCE, str(tiny_models["video.enhance"]), batch_size=4
    )
    pipeline.load("cpu")
    return pipeline


def probe(data: bytes) -> tuple[list[av.VideoFrame], dict[str, str], float]:
    """Decoded frames, codec per stream type, and the duration in seconds."""
    with av.open(io.BytesIO(data)) as container:
        codecs = {stream.type: stream.codec_context.name for stream in container.streams}
        video = container.streams.video[0]
        assert video.codec_context.pix_fmt == "yuv420p"
        frames = list(container.decode(video=0))
        duration = (container.duration or 0) / av.time_base
    return frames, codecs, duration


def test_generates_an_h264_mp4_with_a_frame_per_tick_and_silent_audio(generate: Pipeline) -> None:
    recorder = Recorder()
    job = VideoGenerateInput(prompt="waves", duration_s=1.2, fps=4, width=64, height=80, seed=5)
    result = generate.run(recorder.context(job))
    (video,) = result.outputs
    assert (video.name, video.content_type) == ("video.mp4", "video/mp4")
    frames, codecs, duration = probe(video.data)
    assert len(frames) == 5  # ceil(1.2 * 4)
    assert (frames[0].width, frames[0].height) == (64, 80) == (video.width, video.height)
    assert codecs == {"video": "h264", "audio": "aac"}
    assert video.duration_s == pytest.approx(1.25)
    assert duration == pytest.approx(1.25, abs=0.1)
    assert result.usage_units == 2  # ceil(1.2) seconds
    # Two segments (3 frames and 2) of two denoising steps each.
    assert recorder.progress == [(step, 4) for step in range(1, 5)]
    recorder.assert_complete()
    (preview,) = recorder.previews
    assert Image.open(io.BytesIO(preview.data)).size == (64, 80)
    assert video.blurhash is not None
    assert blurhash.is_valid(video.blurhash)
    assert video.blurhash == preview.blurhash


def test_the_fps_defaults_to_eight(generate: Pipeline, tmp_path: Path) -> None:
    job = VideoGenerateInput(prompt="rain", duration_s=1, width=64, height=64)
    result = generate.run(Recorder().context(job, work_dir=tmp_path))
    frames, _, _ = probe(result.outputs[0].data)
    assert len(frames) == 8


def test_a_stop_ends_video_generation_at_once(generate: Pipeline) -> None:
    recorder = Recorder(stop_after=2)
    job = VideoGenerateInput(prompt="fire", duration_s=10, fps=8, width=64, height=64)
    with pytest.raises(JobStopped):
        generate.run(recorder.context(job))
    # 27 segments of 3 frames, two steps each: the stop lands in the second segment.
    assert recorder.progress == [(1, 54), (2, 54)]


def test_video_generation_runs_animatediff(generate: Pipeline) -> None:
    assert isinstance(generate, VideoGeneratePipeline)
    assert generate.pipeline_class_name == "AnimateDiffPipeline"


def test_upscales_by_two_and_copies_the_audio(enhance: Pipeline, tmp_path: Path) -> None:
    upload = tmp_path / "clip.mp4"
    write_video(upload, width=40, height=30, frames=10, fps=10)
    recorder = Recorder()
    result = enhance.run(recorder.context(VideoEnhanceInput(upload_id="v", scale=2), {"v": upload}))
    (video,) = result.outputs
    frames, codecs, duration = probe(video.data)
    assert len(frames) == 10
    assert (frames[0].width, frames[0].height) == (80, 60) == (video.width, video.height)
    assert codecs == {"video": "h264", "audio": "aac"}
    assert duration == pytest.approx(1.0, abs=0.1)
    assert result.usage_units == 1
    assert recorder.progress == [(1, 3), (2, 3), (3, 3)]  # batches of 4 frames
    recorder.assert_complete()
    (preview,) = recorder.previews
    assert Image.open(io.BytesIO(preview.data)).size == (80, 60)
    assert video.blurhash is not None
    assert blurhash.is_valid(video.blurhash)
    with av.open(str(upload)) as source, av.open(io.BytesIO(video.data)) as output:
        copied = [bytes(p) for p in output.demux(output.streams.audio[0]) if p.size]
        original = [bytes(p) for p in source.demux(source.streams.audio[0]) if p.size]
    assert copied == original


def test_upscales_by_four_with_a_x2_model_twice(enhance: Pipeline, tmp_path: Path) -> None:
    upload = tmp_path / "clip.mp4"
    write_video(upload, width=16, height=12, frames=3, fps=3)
    result = enhance.run(
        Recorder().context(VideoEnhanceInput(upload_id="v", scale=4), {"v": upload})
    )
    frames, _, _ = probe(result.outputs[0].data)
    assert (frames[0].width, frames[0].height) == (64, 48)
    assert len(frames) == 3


def test_audio_mp4_cannot_carry_is_re_encoded(enhance: Pipeline, tmp_path: Path) -> None:
    upload = tmp_path / "clip.mkv"
    write_video(upload, width=16, height=16, frames=4, fps=4, audio_codec="pcm_s16le")
    result = enhance.run(Recorder().context(VideoEnhanceInput(upload_id="v"), {"v": upload}))
    frames, codecs, _ = probe(result.outputs[0].data)
    assert codecs == {"video": "h264", "audio": "aac"}
    assert len(frames) == 4


def test_a_video_without_audio_stays_silent(enhance: Pipeline, tmp_path: Path) -> None:
    upload = tmp_path / "mute.mp4"
    write_video(upload, width=16, height=16, frames=2, fps=2, audio_codec=None)
    result = enhance.run(Recorder().context(VideoEnhanceInput(upload_id="v"), {"v": upload}))
    _, codecs, _ = probe(result.outputs[0].data)
    assert codecs == {"video": "h264"}


def test_a_stop_ends_enhancement_between_batches(enhance: Pipeline, tmp_path: Path) -> None:
    upload = tmp_path / "clip.mp4"
    write_video(upload, width=16, height=16, frames=20, fps=10, audio_codec=None)
    recorder = Recorder(stop_after=1)
    with pytest.raises(JobStopped):
        enhance.run(recorder.context(VideoEnhanceInput(upload_id="v"), {"v": upload}))
    assert recorder.progress == [(1, 5)]


def test_an_unreadable_upload_fails_permanently(enhance: Pipeline, tmp_path: Path) -> None:
    upload = tmp_path / "clip.mp4"
    upload.write_bytes(b"\x00" * 2048)
    with pytest.raises(PermanentError, match="not a readable video"):
        enhance.run(Recorder().context(VideoEnhanceInput(upload_id="v"), {"v": upload}))
