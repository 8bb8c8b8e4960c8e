"""Every model pipeline end to end: a dispatch on a tier topic, a worker loading tiny models
through the real loading code, outputs in the S3 server, the end on the lifecycle topic."""

from __future__ import annotations

import asyncio
import io
import uuid
import wave
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from PIL import Image

from api.uploads.probe import measure_image, measure_video
from contracts import MediaInfo, Workload
from genstream.settings import StackSettings
from genstream.storage import checked_metadata, checked_upload_key, s3_client, seal, upload_key
from gpu_consumers.tiny_models import build_tiny_models
from tests.integration.gpu_consumers.harness import (
    Workers,
    models_env,
    of_type,
    running_workers,
    types,
)

ROOT = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def models() -> dict[str, Path]:
    # Deterministic and versioned by a marker, so a checkout's cache may keep them.
    return build_tiny_models(ROOT / ".cache" / "tiny-models")


def _workers(
    stack: StackSettings,
    factory: pytest.TempPathFactory,
    workload: Workload,
    models: Any,
    **env: str,
) -> Iterator[Workers]:
    log_dir = factory.mktemp(f"workers-{workload.value}")
    with running_workers(
        stack, uuid.uuid4().hex[:12], log_dir, workload, env={**models_env(models), **env}
    ) as workers:
        yield workers


@pytest.fixture(scope="module")
def image_workers(
    stack: StackSettings, tmp_path_factory: pytest.TempPathFactory, models: dict[str, Path]
) -> Iterator[Workers]:
    # A long batch wait, so that jobs dispatched together reliably run as one batch.
    yield from _workers(
        stack, tmp_path_factory, Workload.IMAGE, models, GENSTREAM_WORKER_BATCH_WAIT_MS="1500"
    )


@pytest.fixture(scope="module")
def video_workers(
    stack: StackSettings, tmp_path_factory: pytest.TempPathFactory, models: dict[str, Path]
) -> Iterator[Workers]:
    yield from _workers(stack, tmp_path_factory, Workload.VIDEO, models)


@pytest.fixture(scope="module")
def audio_workers(
    stack: StackSettings, tmp_path_factory: pytest.TempPathFactory, models: dict[str, Path]
) -> Iterator[Workers]:
    yield from _workers(stack, tmp_path_factory, Workload.AUDIO, models)


async def _get(stack: StackSettings, key: str) -> bytes:
    async with s3_client(stack.s3) as client:
        response = await client.get_object(Bucket=stack.s3.outputs_bucket, Key=key)
        async with response["Body"] as body:
            data: bytes = await body.read()
            return data


def _measured(data: bytes, content_type: str, tmp_path: Path) -> MediaInfo:
    """What the API measures of ``data`` at submit."""
    if content_type.startswith("image/"):
        size = measure_image(content_type, data, max_dimension=8192, max_pixels=50_000_000)
    else:
        path = tmp_path / "measured"
        path.write_bytes(data)
        size = measure_video(content_type, path, max_dimension=8192)
    return MediaInfo(
        content_type=content_type,
        size=len(data),
        width=size.width,
        height=size.height,
        duration_s=size.duration_s,
    )


async def _put_upload(
    stack: StackSettings, user: str, upload: str, data: bytes, content_type: str, tmp_path: Path
) -> MediaInfo:
    """Stores an upload as a client does, then checks and seals it as the API does."""
    media = _measured(data, content_type, tmp_path)
    bucket, key = stack.s3.uploads_bucket, upload_key(user, upload)
    async with s3_client(stack.s3) as client:
        put = await client.put_object(Bucket=bucket, Key=key, Body=data, ContentType=content_type)
        await seal(
            client,
            bucket=bucket,
            source_key=key,
            source_etag=put["ETag"],
            checked_key=checked_upload_key(user, upload),
            media=media,
        )
    return media


async def _replace(
    stack: StackSettings, key: str, data: bytes, content_type: str, **meta: str
) -> None:
    """Writes ``key`` behind every check, as a client with the store's own keys could."""
    async with s3_client(stack.s3) as client:
        await client.put_object(
            Bucket=stack.s3.uploads_bucket,
            Key=key,
            Body=data,
            ContentType=content_type,
            Metadata=meta,
        )


def _png(side: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (side, side), (200, 180, 160)).save(out, format="PNG")
    return out.getvalue()


def _run(workers: Workers, job: str, job_input: dict[str, Any], user: str) -> Any:
    workers.dispatch(job, job_input, user_id=user)
    workers.wait_for(lambda _: workers.ended(job), timeout_s=240)
    events = workers.of_job(job)
    assert "JobCompleted" in types(events), (types(events), workers.log()[-3000:])
    return events


def _mp4(frames: int, side: int, *, with_audio: bool) -> bytes:
    out = io.BytesIO()
    with av.open(out, "w", format="mp4") as container:
        video = container.add_stream("libx264", rate=8)
        video.width = video.height = side
        video.pix_fmt = "yuv420p"
        audio = container.add_stream("aac", rate=16000) if with_audio else None
        for index in range(frames):
            pixels = np.full((side, side, 3), index * 20 % 255, dtype=np.uint8)
            for packet in video.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        if audio is not None:
            samples = np.zeros((1, 16000), dtype=np.float32)
            frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
            frame.sample_rate = 16000
            frame.time_base = Fraction(1, 16000)
            frame.pts = 0
            for packet in audio.encode(frame):
                container.mux(packet)
            for packet in audio.encode():
                container.mux(packet)
    return out.getvalue()


def test_image_generate(image_workers: Workers, stack: StackSettings, unique: str) -> None:
    job, user = f"img-{unique}", f"u-{unique}"
    job_input = {
        "kind": "image.generate",
        "prompt": "a red chair",
        "width": 64,
        "height": 96,
        "steps": 4,
        "seed": 7,
    }
    events = _run(image_workers, job, job_input, user)
    (completed,) = of_type(events, "JobCompleted")
    (output,) = completed.outputs
    assert output.content_type == "image/png"
    assert output.blurhash
    image = Image.open(io.BytesIO(asyncio.run(_get(stack, output.key))))
    assert image.size == (64, 96)
    previews = of_type(events, "JobPreview")
    assert previews, "a latent preview a few steps in"
    assert previews[0].blurhash
    progress = of_type(events, "JobProgress")
    assert progress[-1].percent == 100


def test_image_edit(
    image_workers: Workers, stack: StackSettings, unique: str, tmp_path: Path
) -> None:
    job, user, upload = f"edit-{unique}", f"u-{unique}", f"up-{unique}"
    asyncio.run(_put_upload(stack, user, upload, _png(64), "image/png", tmp_path))
    # Replaced after its check: the worker reads only the checked copy.
    asyncio.run(_replace(stack, upload_key(user, upload), _png(512), "image/png"))
    job_input = {
        "kind": "image.edit",
        "upload_id": upload,
        "prompt": "a sofa by the window",
        "steps": 4,
        "strength": 0.5,
    }
    events = _run(image_workers, job, job_input, user)
    (output,) = of_type(events, "JobCompleted")[0].outputs
    assert Image.open(io.BytesIO(asyncio.run(_get(stack, output.key)))).size == (64, 64)


def test_a_missing_upload_fails_without_retries(image_workers: Workers, unique: str) -> None:
    job = f"edit-missing-{unique}"
    job_input = {"kind": "image.edit", "upload_id": "nothing-here", "prompt": "p", "steps": 2}
    image_workers.dispatch(job, job_input)
    image_workers.wait_for(lambda _: image_workers.ended(job))
    events = image_workers.of_job(job)
    (failed,) = of_type(events, "JobFailed")
    assert failed.error_code == "permanent_error"
    assert "JobRetried" not in types(events)


@pytest.mark.parametrize("content_type", ["image/png", "video/mp4"])
def test_a_checked_copy_tampered_with_in_the_store_is_not_decoded(
    image_workers: Workers,
    video_workers: Workers,
    stack: StackSettings,
    unique: str,
    tmp_path: Path,
    content_type: str,
) -> None:
    """Even the checked copy is bounded by its measurements before the worker decodes it."""
    user, upload = f"u-{unique}", f"up-{unique}"
    if content_type == "image/png":
        workers, job = image_workers, f"edit-tamper-{unique}"
        small, large = _png(64), _png(1024)
        job_input: dict[str, Any] = {
            "kind": "image.edit",
            "upload_id": upload,
            "prompt": "p",
            "steps": 2,
        }
    else:
        workers, job = video_workers, f"enh-tamper-{unique}"
        small, large = _mp4(8, 32, with_audio=False), _mp4(80, 32, with_audio=False)
        job_input = {"kind": "video.enhance", "upload_id": upload, "scale": 2}
    media = asyncio.run(_put_upload(stack, user, upload, small, content_type, tmp_path))
    claimed = checked_metadata(media, source_etag="forged")
    asyncio.run(_replace(stack, checked_upload_key(user, upload), large, content_type, **claimed))

    workers.dispatch(job, job_input, user_id=user)
    workers.wait_for(lambda _: workers.ended(job), timeout_s=120)

    events = workers.of_job(job)
    (failed,) = of_type(events, "JobFailed")
    assert failed.error_code == "permanent_error"
    assert "not the file that was checked" in (failed.error_message or "")
    assert "JobRetried" not in types(events)


def test_video_generate(video_workers: Workers, stack: StackSettings, unique: str) -> None:
    job, user = f"vid-{unique}", f"u-{unique}"
    job_input = {
        "kind": "video.generate",
        "prompt": "waves",
        "duration_s": 1,
        "fps": 4,
        "width": 64,
        "height": 64,
    }
    events = _run(video_workers, job, job_input, user)
    (completed,) = of_type(events, "JobCompleted")
    (output,) = completed.outputs
    assert output.content_type == "video/mp4"
    with av.open(io.BytesIO(asyncio.run(_get(stack, output.key)))) as container:
        assert len(container.streams.audio) == 1
        frames = list(container.decode(video=0))
    assert len(frames) == 4
    assert (frames[0].width, frames[0].height) == (64, 64)
    assert of_type(events, "JobPreview"), "the first frame as a preview"


def test_video_enhance(
    video_workers: Workers, stack: StackSettings, unique: str, tmp_path: Path
) -> None:
    job, user, upload = f"enh-{unique}", f"u-{unique}", f"up-{unique}"
    mp4 = _mp4(8, 32, with_audio=True)
    asyncio.run(_put_upload(stack, user, upload, mp4, "video/mp4", tmp_path))
    # Replaced after its check by a longer video: the worker still runs the checked 8 frames.
    longer = _mp4(64, 32, with_audio=True)
    asyncio.run(_replace(stack, upload_key(user, upload), longer, "video/mp4"))
    events = _run(
        video_workers, job, {"kind": "video.enhance", "upload_id": upload, "scale": 2}, user
    )
    (completed,) = of_type(events, "JobCompleted")
    assert completed.usage_units == 1  # minutes charged: ceil(1 s / 60)
    (output,) = completed.outputs
    with av.open(io.BytesIO(asyncio.run(_get(stack, output.key)))) as container:
        assert len(container.streams.audio) == 1
        frames = list(container.decode(video=0))
    assert len(frames) == 8
    assert (frames[0].width, frames[0].height) == (64, 64)


def test_audio_speech(audio_workers: Workers, stack: StackSettings, unique: str) -> None:
    job, user = f"tts-{unique}", f"u-{unique}"
    events = _run(audio_workers, job, {"kind": "audio.speech", "text": "hello there"}, user)
    (completed,) = of_type(events, "JobCompleted")
    (output,) = completed.outputs
    assert output.content_type == "audio/wav"
    with wave.open(io.BytesIO(asyncio.run(_get(stack, output.key)))) as sound:
        assert sound.getnframes() > 0
        assert sound.getsampwidth() == 2


def test_compatible_image_jobs_run_as_one_batch(image_workers: Workers, unique: str) -> None:
    jobs = [f"batch-{unique}-{n}" for n in range(3)]
    for n, job in enumerate(jobs):
        job_input = {
            "kind": "image.generate",
            "prompt": f"room {n}",
            "width": 64,
            "height": 64,
            "steps": 3,
        }
        image_workers.dispatch(job, job_input, wait=False)
    assert image_workers.producer.flush() == 0
    image_workers.wait_for(lambda _: all(image_workers.ended(job) for job in jobs))
    events = [e for job in jobs for e in image_workers.of_job(job)]
    starts = [e.time for e in events if type(e.data).__name__ == "JobStarted"]
    ends = [e.time for e in events if type(e.data).__name__ == "JobCompleted"]
    assert len(starts) == len(ends) == 3
    # Run together: every job started before any finished.
    assert max(starts) < min(ends)
