"""Encoding outputs: still images to PNG/JPEG, frames and audio to an H.264 MP4 with PyAV."""

from __future__ import annotations

import io
import logging
from contextlib import suppress
from fractions import Fraction
from functools import cache
from pathlib import Path
from types import TracebackType
from typing import Final

import av
import av.error
from av.audio.frame import AudioFrame
from av.audio.stream import AudioStream
from av.container import OutputContainer
from av.packet import Packet
from av.stream import Stream
from av.video.frame import VideoFrame
from av.video.stream import VideoStream
from PIL import Image

__all__ = [
    "MP4_AUDIO_CODECS",
    "Mp4Output",
    "jpeg_bytes",
    "png_bytes",
    "video_codec",
]

_log = logging.getLogger(__name__)

_VIDEO_CODECS: Final = ("libx264", "h264", "mpeg4")
"""In order of preference; ``h264`` names whichever H.264 encoder FFmpeg was built with."""
MP4_AUDIO_CODECS: Final = frozenset({"aac", "mp3", "ac3", "eac3", "alac", "flac", "opus"})
"""Audio codecs the MP4 muxer accepts as they are, so their packets can be copied."""
_AAC_LAYOUTS: Final = {1: "mono", 2: "stereo", 3: "3.0", 4: "4.0", 5: "5.0", 6: "5.1"}
"""Channel layouts FFmpeg's AAC encoder takes, by channel count; others are mixed to stereo
(PyAV 18 crashes encoding 7.1 AAC, so eight channels are mixed down too)."""
_SILENCE_RATE: Final = 48_000
_SILENCE_FRAME: Final = 1024
"""Samples per AAC frame."""
_FALLBACK_BITS_PER_PIXEL: Final = 0.2
"""For an encoder without a constant-quality mode: bits per pixel per frame."""


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()


def jpeg_bytes(image: Image.Image, quality: int = 80) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


@cache
def video_codec() -> str:
    """The best video encoder this FFmpeg build has: libx264, else H.264 by another name,
    else MPEG-4 part 2 (which every build has, and every player reads)."""
    for name in _VIDEO_CODECS:
        try:
            av.Codec(name, "w")
        except (av.error.FFmpegError, ValueError):
            continue
        if name != _VIDEO_CODECS[0]:
            _log.warning("libx264 is not available in this PyAV build; encoding with %s", name)
        return name
    raise RuntimeError(f"none of the video encoders {_VIDEO_CODECS} is available")


class Mp4Output:
    """An MP4 file being written: one H.264 (yuv420p) video stream and at most one audio stream.

    Frames are encoded as they are written, so a long video never sits in memory. Closing
    flushes the encoders and moves the index to the front (``faststart``), so players can
    start before the whole file has arrived.
    """

    def __init__(
        self,
        path: Path,
        *,
        width: int,
        height: int,
        rate: Fraction | int,
        crf: int = 18,
        time_base: Fraction | None = None,
    ) -> None:
        if width % 2 or height % 2:
            raise ValueError(f"yuv420p needs even dimensions, got {width}x{height}")
        self._container = av.open(
            str(path), mode="w", format="mp4", options={"movflags": "faststart"}
        )
        try:
            self._video = _add_video(self._container, width, height, rate, crf, time_base)
        except BaseException:
            self._container.close()
            raise
        self._audio: AudioStream | None = None
        self._audio_encodes = False
        self._silent_samples = 0
        self._closed = False

    @property
    def codec(self) -> str:
        return self._video.codec_context.name

    def write_frame(self, frame: VideoFrame) -> None:
        """Encodes one frame; its ``pts`` is in the stream's time base (1/rate unless given)."""
        self._container.mux(self._video.encode(frame))

    def add_silent_audio(self) -> None:
        """Adds an AAC stream that ``write_silence_until`` fills with silence."""
        self._audio = self._container.add_stream("aac", rate=_SILENCE_RATE, layout="mono")
        self._audio_encodes = True

    def write_silence_until(self, seconds: float) -> None:
        """Extends the silent track to at least ``seconds`` (in whole AAC frames)."""
        if self._audio is None:
            raise RuntimeError("add_silent_audio was not called")
        target = seconds * _SILENCE_RATE
        while self._silent_samples < target:
            frame = AudioFrame(format="fltp", layout="mono", samples=_SILENCE_FRAME)
            for plane in frame.planes:
                plane.update(bytes(plane.buffer_size))
            frame.sample_rate = _SILENCE_RATE
            frame.pts = self._silent_samples
            self._container.mux(self._audio.encode(frame))
            self._silent_samples += _SILENCE_FRAME

    def add_audio_like(self, source: AudioStream) -> bool:
        """Adds an audio stream for ``source``'s content; whether its packets can be copied.

        When they can, pass them to ``copy_audio_packet``; otherwise decode them and pass
        the frames to ``write_audio_frame``, which re-encodes them as AAC.
        """
        if source.codec_context.name in MP4_AUDIO_CODECS:
            self._audio = self._container.add_stream_from_template(source, opaque=True)
            self._audio_encodes = False
            return True
        channels = source.codec_context.channels
        self._audio = self._container.add_stream(
            "aac",
            rate=source.codec_context.sample_rate,
            # By count: a source layout without a channel order is refused by the encoder.
            layout=_AAC_LAYOUTS.get(channels, "stereo"),
        )
        self._audio_encodes = True
        return False

    def copy_audio_packet(self, packet: Packet[Stream]) -> None:
        if self._audio is None or self._audio_encodes:
            raise RuntimeError("the audio stream was not added for copying")
        packet.stream = self._audio
        self._container.mux(packet)

    def write_audio_frame(self, frame: AudioFrame) -> None:
        if self._audio is None or not self._audio_encodes:
            raise RuntimeError("the audio stream was not added for encoding")
        # The decoder's timestamps may not fit the encoder's frame size; it numbers anew.
        frame.pts = None
        self._container.mux(self._audio.encode(frame))

    def close(self) -> None:
        """Flushes the encoders and finishes the file."""
        if self._closed:
            return
        self._closed = True
        try:
            self._container.mux(self._video.encode(None))
            if self._audio is not None and self._audio_encodes:
                self._container.mux(self._audio.encode(None))
        finally:
            self._container.close()

    def abandon(self) -> None:
        """Closes the file without flushing, after a failure; it is not a valid video."""
        if not self._closed:
            self._closed = True
            # The failure that led here is the one worth reporting, not a trailer write error.
            with suppress(av.error.FFmpegError, OSError):
                self._container.close()

    def __enter__(self) -> Mp4Output:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abandon()


def _add_video(
    container: OutputContainer,
    width: int,
    height: int,
    rate: Fraction | int,
    crf: int,
    time_base: Fraction | None,
) -> VideoStream:
    codec = video_codec()
    options = {"crf": str(crf)} if codec in ("libx264", "h264") else {}
    video = container.add_stream(codec, rate=rate, options=options)
    if not isinstance(video, VideoStream):
        raise TypeError(f"{codec} is not a video encoder")
    video.width = width
    video.height = height
    video.pix_fmt = "yuv420p"
    if not options:
        video.bit_rate = int(width * height * float(rate) * _FALLBACK_BITS_PER_PIXEL)
    if time_base is not None:
        video.time_base = time_base
    return video
