"""Every model pipeline end to end: a dispatch on a tier topic, a worker loading tiny models
through the real loading code, outputs in the S3 server, the end on the lifecycle topic."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import tempfile
import threading
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

CEILING_MB = 1024
"""Each worker's per-job memory ceiling: room for the tiny models and a small job."""
GUARDS = {
    "GENSTREAM_WORKER_JOB_MEMORY_MB": str(CEILING_MB),
    "GENSTREAM_WORKER_STOP_GRACE_S": "2",
    # A pathological duration meets the wall clock; the first job's model load fits.
    "GENSTREAM_WORKER_TIMEOUTS_S": '{"video.generate": 10}',
    "GENSTREAM_WORKER_VIDEO_STEPS": "2",
    # Uploads up to Pillow's own decompression-bomb bound reach the decoder.
    "GENSTREAM_WORKER_MAX_INPUT_PIXELS": "89000000",
}


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
        stack,
        uuid.uuid4().hex[:12],
        log_dir,
        workload,
        env={**models_env(models), **GUARDS, **env},
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
    await _seal_as_measured(stack, user, upload, data, media)
    return media


async def _seal_as_measured(
    stack: StackSettings, user: str, upload: str, data: bytes, media: MediaInfo
) -> None:
    """Stores an upload and seals it with ``media`` as its measurements."""
    bucket, key = stack.s3.uploads_bucket, upload_key(user, upload)
    async with s3_client(stack.s3) as client:
        put = await client.put_object(
            Bucket=bucket, Key=key, Body=data, ContentType=media.content_type
        )
        await seal(
            client,
            bucket=bucket,
            source_key=key,
            source_etag=put["ETag"],
            checked_key=checked_upload_key(user, upload),
            media=media,
        )


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


def _mp4(frames: int, side: int, *, with_audio: bool, faststart: bool = False) -> bytes:
    # Through a file when the index moves to the front: the muxer reads back what it wrote.
    scratch = tempfile.NamedTemporaryFile(suffix=".mp4")  # noqa: SIM115 - closed below
    out: Any = scratch.name if faststart else io.BytesIO()
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(out, "w", format="mp4", options=options) as container:
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
    with scratch:
        return Path(scratch.name).read_bytes() if faststart else out.getvalue()


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


# -- runaway jobs ------------------------------------------------------------------------------
class _Resident:
    """Samples the resident memory of a worker and of its pipeline process while a job runs."""

    def __init__(self, workers: Workers) -> None:
        self._pid = workers.processes[0].pid
        self.worker_mb = 0.0
        self.pipeline_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> _Resident:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.worker_mb = max(self.worker_mb, _rss_mb(self._pid))
            for child in _children(self._pid):
                self.pipeline_mb = max(self.pipeline_mb, _rss_mb(child))


def _rss_mb(pid: int) -> float:
    try:
        pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return 0.0
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _children(pid: int) -> list[int]:
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return []
    # A child belongs to the thread that started it: every thread's children are looked at.
    children: list[int] = []
    for task in tasks:
        with contextlib.suppress(OSError):
            children += [int(child) for child in (task / "children").read_text().split()]
    return children


def _runaway(
    workers: Workers, job: str, job_input: dict[str, Any], user: str
) -> tuple[list[str], Any, _Resident]:
    """Runs ``job`` to its end, sampling memory; its end event's types and the failure."""
    with _Resident(workers) as resident:
        workers.dispatch(job, job_input, user_id=user)
        workers.wait_for(lambda _: workers.ended(job), timeout_s=120)
    events = workers.of_job(job)
    failed = of_type(events, "JobFailed")
    print(
        f"{job_input['kind']} runaway: worker {resident.worker_mb:.0f} MiB, pipeline process "
        f"peak {resident.pipeline_mb:.0f} MiB (ceiling {CEILING_MB} MiB)"
    )
    # Sampled every 5 ms: what a job allocates between two of the worker's looks is the slack.
    assert resident.pipeline_mb < CEILING_MB * 1.1
    assert resident.worker_mb < CEILING_MB
    assert "JobRetried" not in types(events)
    return types(events), failed[0] if failed else None, resident


def _bomb_png() -> tuple[bytes, int]:
    """A PNG just under Pillow's own bomb bound: about 1 MB that decodes to 265 MB of RGB."""
    side = 9400
    out = io.BytesIO()
    Image.new("RGB", (side, side), (0, 0, 0)).save(out, format="PNG", compress_level=9)
    return out.getvalue(), side


def test_a_decompression_bomb_stops_at_the_ceiling_and_the_next_edit_runs(
    image_workers: Workers, stack: StackSettings, unique: str, tmp_path: Path
) -> None:
    user, upload = f"u-{unique}", f"bomb-{unique}"
    data, side = _bomb_png()
    media = MediaInfo(content_type="image/png", size=len(data), width=side, height=side)
    asyncio.run(_seal_as_measured(stack, user, upload, data, media))
    job_input = {"kind": "image.edit", "upload_id": upload, "prompt": "p", "steps": 2}
    _, failed, _ = _runaway(image_workers, f"bomb-{unique}", job_input, user)
    assert failed.error_code == "memory_limit", failed
    assert "memory ceiling" in failed.error_message
    test_image_edit(image_workers, stack, f"{unique}-after", tmp_path)


def test_a_pathological_duration_stops_at_the_time_limit_and_the_next_video_runs(
    video_workers: Workers, stack: StackSettings, unique: str
) -> None:
    job_input = {
        "kind": "video.generate",
        "prompt": "forever",
        "duration_s": 300,
        "fps": 60,
        "width": 64,
        "height": 64,
    }
    _, failed, _ = _runaway(video_workers, f"long-{unique}", job_input, f"u-{unique}")
    assert failed.error_code == "timeout", failed
    test_video_generate(video_workers, stack, f"{unique}-after")


def test_a_truncated_video_ends_cleanly_and_the_next_enhance_runs(
    video_workers: Workers, stack: StackSettings, unique: str, tmp_path: Path
) -> None:
    user, upload = f"u-{unique}", f"cut-{unique}"
    whole = _mp4(16, 32, with_audio=True, faststart=True)
    cut = whole[: len(whole) * 2 // 3]
    # Cut after its check (the API refuses a file it cannot read through): the header
    # still promises every frame.
    measured = _measured(whole, "video/mp4", tmp_path)
    media = measured.model_copy(update={"size": len(cut)})
    asyncio.run(_seal_as_measured(stack, user, upload, cut, media))
    job_input = {"kind": "video.enhance", "upload_id": upload, "scale": 2}
    ended, failed, _ = _runaway(video_workers, f"cut-{unique}", job_input, user)
    # What decodes of a cut file is upscaled; a file that does not decode fails once.
    assert "JobCompleted" in ended or failed.error_code == "permanent_error", (ended, failed)
    test_video_enhance(video_workers, stack, f"{unique}-after", tmp_path)


def test_the_longest_text_is_spoken_within_the_ceiling_and_the_next_speech_runs(
    audio_workers: Workers, stack: StackSettings, unique: str
) -> None:
    text = ("The quick brown fox jumps over the lazy dog. " * 120)[:5000]
    job_input = {"kind": "audio.speech", "text": text}
    ended, failed, _ = _runaway(audio_workers, f"huge-{unique}", job_input, f"u-{unique}")
    # Spoken in sentence-sized chunks; a model that talks too long stops at its bound.
    assert "JobCompleted" in ended or failed.error_code == "output_limit", (ended, failed)
    test_audio_speech(audio_workers, stack, f"{unique}-after")
