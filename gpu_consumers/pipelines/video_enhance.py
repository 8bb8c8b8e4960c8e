"""Video super-resolution: decode the upload, upscale frames in batches, re-encode H.264.

The model directory is a Swin2SR checkpoint (transformers' ``Swin2SRForImageSuperResolution``,
e.g. ``caidas/swin2SR-classical-sr-x2-64``), loaded unchanged. A job asking for its scale
runs it once per frame; a job asking for the square of its scale (x4 from a x2 model) runs
it twice, which costs a second, four times larger, pass but needs only one model on the
device. Decoding, upscaling and encoding are streamed: at most one batch of frames is in
memory, whatever the video's length. A stream with more frames than its checked duration
allows (at its frame rate, plus a second) stops with ``output_limit``.

The audio track is copied packet for packet when MP4 can carry its codec (AAC, MP3, Opus,
...), so it is bit-identical to the upload; any other codec is decoded and re-encoded as AAC.
Frames keep their timestamps, so the picture stays in sync with the copied sound.
"""

from __future__ import annotations

import math
import tempfile
from contextlib import ExitStack
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Final

import av
import av.error
import numpy as np
import torch
from av.audio.frame import AudioFrame
from av.container import InputContainer
from av.video.frame import VideoFrame
from av.video.stream import VideoStream
from PIL import Image
from torch.nn import functional

from contracts import JobType
from contracts.errors import JobErrorCode
from contracts.inputs import VideoEnhanceInput
from gpu_consumers import blurhash
from gpu_consumers.device import dtype_for
from gpu_consumers.media import Mp4Output
from gpu_consumers.pipelines._preview import image_preview
from gpu_consumers.pipelines._torch import (
    device_errors,
    is_local,
    loading_errors,
    module_bytes,
    release_memory,
)
from gpu_consumers.pipelines.base import (
    Artifact,
    LimitExceededError,
    PermanentError,
    PipelineResult,
    RunContext,
)

if TYPE_CHECKING:
    from transformers import Swin2SRForImageSuperResolution

__all__ = ["VideoEnhancePipeline"]

_DEFAULT_RATE: Final = Fraction(30)
"""Frame rate assumed for a stream that does not declare one."""
_LIVE_FEATURES: Final = 8
"""Feature maps of one frame alive at once while Swin2SR runs (a rough, safe count)."""
_EXTRA_FRAMES_S: Final = 1.0
"""Frames past the declared duration a stream may have (rounding, a last long frame)."""


class VideoEnhancePipeline:
    """Upscales an uploaded video by ``input.scale`` with a super-resolution model directory."""

    job_type = JobType.VIDEO_ENHANCE

    def __init__(
        self,
        *,
        model_dir: str,
        batch_size: int = 8,
        crf: int = 18,
        max_output_side: int = 8192,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be positive")
        self._model_dir = model_dir
        self._batch_size = batch_size
        self._crf = crf
        self._max_side = max_output_side
        self._net: Swin2SRForImageSuperResolution | None = None
        self._device: str | None = None
        self._dtype = torch.float32
        self._bytes = 0

    @property
    def memory_bytes(self) -> int:
        return self._bytes

    def load(self, device: str) -> None:
        if self._net is not None:
            self.unload()
        from transformers import Swin2SRForImageSuperResolution

        with loading_errors(self._model_dir):
            dtype = dtype_for(device)
            net = Swin2SRForImageSuperResolution.from_pretrained(
                self._model_dir, dtype=dtype, local_files_only=is_local(self._model_dir)
            )
            # Through nn.Module: PreTrainedModel.to's decorator hides its signature from mypy.
            torch.nn.Module.to(net, device)
        self._net, self._device, self._dtype = net, device, dtype
        self._bytes = module_bytes([net])

    def unload(self) -> None:
        device = self._device
        self._net, self._device, self._bytes = None, None, 0
        release_memory(device)

    def run(self, ctx: RunContext) -> PipelineResult:
        job = ctx.input
        if not isinstance(job, VideoEnhanceInput):
            raise PermanentError(f"{self.job_type} cannot run a {type(job).__name__}")
        if self._net is None:
            raise RuntimeError(f"the model at {self._model_dir} is not loaded")
        passes = self._passes(int(self._net.config.upscale), job.scale)
        path = ctx.input_files.get(job.upload_id)
        if path is None:
            raise PermanentError(f"upload {job.upload_id} was not provided to the job")
        with ExitStack() as stack:
            source = stack.enter_context(_open_video(path, job.upload_id))
            work_dir = ctx.work_dir or Path(stack.enter_context(tempfile.TemporaryDirectory()))
            target = work_dir / "video.mp4"
            enhanced = _Enhancement(ctx, self._net, passes, self._dtype, self._batch_size)
            try:
                width, height, duration_s = enhanced.transcode(
                    source, target, job.scale, self._crf, self._max_side
                )
            except (av.error.FFmpegError, EOFError) as error:
                raise PermanentError(
                    f"upload {job.upload_id} cannot be decoded: {error}"
                ) from error
            data = target.read_bytes()
        first = enhanced.first_frame
        video = Artifact(
            name="video.mp4",
            data=data,
            content_type="video/mp4",
            blurhash=None if first is None else blurhash.encode(first),
            duration_s=duration_s,
            width=width,
            height=height,
        )
        minutes = max(1, math.ceil(duration_s / 60))
        return PipelineResult(outputs=(video,), usage_units=minutes)

    def _passes(self, model_scale: int, wanted: int) -> int:
        for passes in (1, 2):
            if model_scale**passes == wanted:
                return passes
        raise PermanentError(f"a x{model_scale} model cannot upscale by {wanted}")


class _Enhancement:
    """One transcode: demux, upscale video frames in batches, copy or re-encode audio."""

    def __init__(
        self,
        ctx: RunContext,
        net: Swin2SRForImageSuperResolution,
        passes: int,
        dtype: torch.dtype,
        batch_size: int,
    ) -> None:
        self._ctx = ctx
        self._net = net
        self._passes = passes
        self._dtype = dtype
        self._batch_size = batch_size
        self._device = next(net.parameters()).device
        self.first_frame: Image.Image | None = None
        self._untimed = -1

    def transcode(
        self, source: InputContainer, target: Path, scale: int, crf: int, max_side: int
    ) -> tuple[int, int, float]:
        video = source.streams.video[0]
        audio = source.streams.audio[0] if source.streams.audio else None
        width, height = video.codec_context.width * scale, video.codec_context.height * scale
        if max(width, height) > max_side:
            raise PermanentError(
                f"x{scale} of a {video.codec_context.width}x{video.codec_context.height} "
                f"video exceeds the {max_side}-pixel limit"
            )
        duration_s = _duration_s(source, video)
        self._batch_size = self._fitting_batch(
            video.codec_context.width * video.codec_context.height, scale
        )
        batches = max(1, math.ceil(_frame_count(source, video) / self._batch_size))
        rate = video.average_rate or video.guessed_rate or _DEFAULT_RATE
        max_frames = math.ceil((duration_s + _EXTRA_FRAMES_S) * rate)
        done = 0
        pending: list[VideoFrame] = []
        decoded = 0
        with Mp4Output(
            target, width=width, height=height, rate=rate, crf=crf, time_base=video.time_base
        ) as mp4:
            copies_audio = audio is not None and mp4.add_audio_like(audio)
            streams = (video,) if audio is None else (video, audio)
            for packet in source.demux(*streams):
                if packet.stream is video:
                    # The final empty packet flushes the decoder's last frames.
                    frames = [f for f in packet.decode() if isinstance(f, VideoFrame)]
                    decoded += len(frames)
                    if decoded > max_frames:
                        raise LimitExceededError(
                            JobErrorCode.OUTPUT_LIMIT,
                            f"the upload has more than {max_frames} frames, past its "
                            f"{duration_s:.2f} s at {float(rate):g} frames per second",
                        )
                    pending.extend(frames)
                    while len(pending) >= self._batch_size:
                        self._write_batch(mp4, pending[: self._batch_size], rate)
                        del pending[: self._batch_size]
                        done += 1
                        # A header's frame count can be short: hold below the total until the end.
                        if done < batches:
                            self._ctx.progress(done, batches, None)
                elif copies_audio:
                    if packet.dts is not None:
                        mp4.copy_audio_packet(packet)
                else:
                    for frame in packet.decode():
                        if isinstance(frame, AudioFrame):
                            mp4.write_audio_frame(frame)
            if pending:
                self._write_batch(mp4, pending, rate)
        if self.first_frame is None:
            raise PermanentError("the upload has no video frames")
        self._ctx.progress(batches, batches, None)
        return width, height, duration_s

    def _fitting_batch(self, pixels: int, scale: int) -> int:
        """The configured batch, or fewer frames where a CUDA device has not the room.

        A frame's working set is about its features (``embed_dim`` channels at the input
        size, a few of them alive at once in each block) and the upscaled result; half the
        free memory is left for the allocator and the attention windows.
        """
        if self._device.type != "cuda":
            return self._batch_size
        free, _ = torch.cuda.mem_get_info(self._device)
        element = torch.finfo(self._dtype).bits // 8
        per_frame = (
            pixels
            * element
            * (_LIVE_FEATURES * int(self._net.config.embed_dim) + 3 * scale * scale)
        )
        return max(1, min(self._batch_size, free // 2 // max(1, per_frame)))

    def _write_batch(self, mp4: Mp4Output, frames: list[VideoFrame], rate: Fraction) -> None:
        self._ctx.check()
        for source, rgb in zip(frames, self._upscale(frames), strict=True):
            upscaled = VideoFrame.from_ndarray(rgb, format="rgb24")
            upscaled.time_base = source.time_base
            upscaled.pts = source.pts
            if upscaled.pts is None and source.time_base is not None:
                # A stream without timestamps: number the frames at the declared rate.
                self._untimed += 1
                upscaled.pts = round(self._untimed / rate / source.time_base)
            mp4.write_frame(upscaled)
            if self.first_frame is None:
                self.first_frame = Image.fromarray(rgb)
                self._ctx.preview(image_preview(self.first_frame, 1))

    def _pass(self, images: torch.Tensor) -> torch.Tensor:
        """One upscale; frames are padded to whole windows first, as Swin2SR's image
        processor does (its model unembeds patches at the unpadded size), and cropped after."""
        height, width = images.shape[-2:]
        config = self._net.config
        padded = _padded_to(images, int(config.window_size))
        upscaled: torch.Tensor = self._net(pixel_values=padded).reconstruction
        scale = int(config.upscale)
        return upscaled[..., : height * scale, : width * scale].clamp(0.0, 1.0)

    def _upscale(self, frames: list[VideoFrame]) -> np.ndarray:
        rgb = np.stack([frame.to_ndarray(format="rgb24") for frame in frames])
        with device_errors(), torch.inference_mode():
            batch = torch.from_numpy(rgb).to(self._device).permute(0, 3, 1, 2)
            images = batch.to(self._dtype) / 255.0
            for _ in range(self._passes):
                images = self._pass(images)
            pixels = (images * 255.0).round().clamp(0, 255).to(torch.uint8)
            result: np.ndarray = pixels.permute(0, 2, 3, 1).contiguous().cpu().numpy()
        return result


def _padded_to(images: torch.Tensor, multiple: int) -> torch.Tensor:
    height, width = images.shape[-2:]
    bottom, right = (-height) % multiple, (-width) % multiple
    if not bottom and not right:
        return images
    return functional.pad(images, (0, right, 0, bottom), mode="replicate")


def _open_video(path: Path, upload_id: str) -> InputContainer:
    try:
        container = av.open(str(path), mode="r")
    except (av.error.FFmpegError, OSError) as error:
        raise PermanentError(f"upload {upload_id} is not a readable video: {error}") from error
    if not container.streams.video:
        container.close()
        raise PermanentError(f"upload {upload_id} has no video stream")
    return container


def _duration_s(source: InputContainer, video: VideoStream) -> float:
    if video.duration is not None and video.time_base is not None:
        return float(video.duration * video.time_base)
    if source.duration is not None:
        return source.duration / av.time_base
    return 0.0


def _frame_count(source: InputContainer, video: VideoStream) -> int:
    """Frames in the stream: from the header, or by counting packets (no decoding)."""
    if video.frames > 0:
        return video.frames
    count = sum(1 for packet in source.demux(video) if packet.size > 0)
    source.seek(0)
    return count
