"""What an uploaded file really is: magic bytes, image headers (Pillow), video streams (PyAV).

Pure functions over bytes and local files, so that every refusal can be tested without a
network. A refusal is an ``UploadRefusedError`` whose message is shown to the user.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import MappingProxyType
from typing import Final, Literal

import av
from PIL import Image, UnidentifiedImageError

__all__ = [
    "MEDIA_KINDS",
    "SNIFF_BYTES",
    "Measured",
    "MediaKind",
    "UploadRefusedError",
    "check_magic",
    "check_size",
    "kind_of",
    "max_bytes_for",
    "measure_image",
    "measure_video",
]

MediaKind = Literal["image", "video"]

MEDIA_KINDS: Final = MappingProxyType[str, MediaKind](
    {
        "image/png": "image",
        "image/jpeg": "image",
        "image/webp": "image",
        "video/mp4": "video",
        "video/quicktime": "video",
        "video/webm": "video",
    }
)
"""Every content type an upload may declare."""

SNIFF_BYTES: Final = 16
"""How much of the start of a file ``check_magic`` needs."""

_PILLOW_FORMATS: Final = MappingProxyType(
    {"image/png": "PNG", "image/jpeg": "JPEG", "image/webp": "WEBP"}
)
_DEMUXERS: Final = MappingProxyType(
    {"video/mp4": "mp4", "video/quicktime": "mov", "video/webm": "webm"}
)
"""A name the PyAV demuxer of each video type lists (``mov,mp4,m4a,...``, ``matroska,webm``)."""

_TRUNCATION_SLACK_S: Final = 0.5
"""How far the last packet may end before the duration the container declares."""


class UploadRefusedError(ValueError):
    """The file is not what it was declared to be, or is beyond a limit."""


@dataclass(frozen=True, slots=True)
class Measured:
    width: int
    height: int
    duration_s: float | None = None


def kind_of(content_type: str) -> MediaKind:
    try:
        return MEDIA_KINDS[content_type]
    except KeyError:
        allowed = ", ".join(MEDIA_KINDS)
        raise UploadRefusedError(
            f"content type {content_type!r} is not accepted; use one of {allowed}"
        ) from None


def max_bytes_for(content_type: str, *, max_image_bytes: int, max_video_bytes: int) -> int:
    return max_image_bytes if kind_of(content_type) == "image" else max_video_bytes


def check_size(*, declared: int, stored: int, limit: int) -> None:
    """The stored object must be exactly as large as declared, and within the limit."""
    if stored > limit:
        raise UploadRefusedError(f"the file has {stored} bytes; at most {limit} are accepted")
    if stored != declared:
        raise UploadRefusedError(f"the file has {stored} bytes but the upload declared {declared}")


def _matches(content_type: str, head: bytes) -> bool:
    if content_type == "image/png":
        return head.startswith(b"\x89PNG\r\n\x1a\n")
    if content_type == "image/jpeg":
        return head.startswith(b"\xff\xd8\xff")
    if content_type == "image/webp":
        return head[0:4] == b"RIFF" and head[8:12] == b"WEBP"
    if content_type in ("video/mp4", "video/quicktime"):
        return head[4:8] == b"ftyp"
    if content_type == "video/webm":
        return head.startswith(b"\x1a\x45\xdf\xa3")
    return False


def check_magic(content_type: str, head: bytes) -> None:
    """The first bytes of the file must be the signature of its declared type."""
    kind_of(content_type)
    if not _matches(content_type, head):
        raise UploadRefusedError(f"the file's content is not {content_type}")


def _check_dimensions(width: int, height: int, *, max_dimension: int) -> None:
    if width <= 0 or height <= 0:
        raise UploadRefusedError("the file declares no picture size")
    if width > max_dimension or height > max_dimension:
        raise UploadRefusedError(
            f"{width}x{height} pixels is too large; at most {max_dimension} on each side"
        )


def measure_image(
    content_type: str, data: bytes, *, max_dimension: int, max_pixels: int
) -> Measured:
    """Width and height from the image header, read by Pillow for the declared format only.

    Nothing is decoded: Pillow parses the header, so a decompression bomb costs nothing here.
    """
    check_magic(content_type, data[:SNIFF_BYTES])
    fmt = _PILLOW_FORMATS[content_type]
    try:
        # Pillow warns (and, twice over its limit, raises) on bomb-sized images; either way
        # the image is refused, so the warning is made an error rather than left to filters.
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=[fmt]) as image:
                width, height = image.size
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise UploadRefusedError("the image has too many pixels") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError):
        raise UploadRefusedError("the image header cannot be read") from None
    _check_dimensions(width, height, max_dimension=max_dimension)
    if width * height > max_pixels:
        raise UploadRefusedError(
            f"{width}x{height} is {width * height} pixels; at most {max_pixels} are accepted"
        )
    return Measured(width=width, height=height)


def measure_video(content_type: str, path: Path, *, max_dimension: int) -> Measured:
    """Duration and frame size of the first video stream, from every packet of the file.

    The duration is the longer of what the container declares and where its packets end,
    so a header cannot understate a video's length; packets ending well before the declared
    duration, or fewer packets than the stream declares, mean the file is truncated. The
    first frame is decoded to prove the codec is readable.
    """
    with path.open("rb") as file:
        check_magic(content_type, file.read(SNIFF_BYTES))
    try:
        return _probe_video(content_type, path, max_dimension=max_dimension)
    except av.FFmpegError as error:
        # strerror only: the message would otherwise name the server's temporary file.
        raise UploadRefusedError(f"the video cannot be read ({error.strerror})") from None


def _probe_video(content_type: str, path: Path, *, max_dimension: int) -> Measured:
    with av.open(str(path), mode="r") as container:
        if _DEMUXERS[content_type] not in container.format.name.split(","):
            raise UploadRefusedError(f"the file's content is not {content_type}")
        if not container.streams.video:
            raise UploadRefusedError("the file has no video stream (it may be truncated)")
        stream = container.streams.video[0]
        width, height = stream.codec_context.width, stream.codec_context.height
        _check_dimensions(width, height, max_dimension=max_dimension)
        declared_s = container.duration / av.time_base if container.duration else 0.0
        declared_frames = stream.frames
        packets = 0
        first: Fraction | None = None
        last: Fraction | None = None
        decoded = False
        for packet in container.demux(stream):
            if packet.size == 0:
                continue  # the demuxer's end-of-stream marker
            packets += 1
            if packet.pts is not None:
                start = packet.pts * packet.time_base
                end = (packet.pts + (packet.duration or 0)) * packet.time_base
                first = start if first is None else min(first, start)
                last = end if last is None else max(last, end)
            if not decoded:
                decoded = bool(stream.codec_context.decode(packet))
        if packets and not decoded:
            # Decoders with a delay give their first frame only when flushed.
            decoded = bool(stream.codec_context.decode(None))
    if not decoded:
        raise UploadRefusedError("the video has no decodable frame")
    if declared_frames and packets < declared_frames:
        raise UploadRefusedError(
            f"the video is truncated: {packets} of {declared_frames} frames are present"
        )
    played_s = float(last - first) if first is not None and last is not None else 0.0
    if declared_s and played_s < declared_s - _TRUNCATION_SLACK_S:
        raise UploadRefusedError(
            f"the video is truncated: it plays {played_s:.2f}s of a declared {declared_s:.2f}s"
        )
    return Measured(width=width, height=height, duration_s=round(max(declared_s, played_s), 3))
