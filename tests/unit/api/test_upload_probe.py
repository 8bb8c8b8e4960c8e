"""What an upload really is: signatures, image headers and video streams, without a network."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import av
import pytest
from av.video.stream import VideoStream
from PIL import Image

from api.uploads.probe import (
    UploadRefusedError,
    check_magic,
    check_size,
    kind_of,
    max_bytes_for,
    measure_image,
    measure_video,
)

MAX_SIDE = 8192
MAX_PIXELS = 50_000_000


def image_bytes(fmt: str, width: int = 40, height: int = 24) -> bytes:
    """A real image made by Pillow, in ``fmt`` (PNG, JPEG or WEBP)."""
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 80, 20)).save(buffer, fmt)
    return buffer.getvalue()


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    crc = zlib.crc32(kind + body) & 0xFFFFFFFF
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)


def png_header(width: int, height: int) -> bytes:
    """A PNG claiming ``width`` x ``height``: signature, IHDR and an empty IDAT; no pixels."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", b"")


def make_video(
    path: Path,
    *,
    container: str = "mp4",
    codec: str = "mpeg4",
    frames: int = 12,
    fps: int = 12,
    width: int = 64,
    height: int = 48,
    options: dict[str, str] | None = None,
) -> bytes:
    """A real video written by PyAV (``frames / fps`` seconds); returns its bytes."""
    with av.open(str(path), mode="w", format=container, options=options or {}) as output:
        stream = output.add_stream(codec, rate=fps)
        assert isinstance(stream, VideoStream)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        for index in range(frames):
            frame = av.VideoFrame(width, height, "yuv420p")
            for plane in frame.planes:
                plane.update(bytes([index * 20 % 256]) * plane.buffer_size)
            frame.pts = index
            output.mux(stream.encode(frame))
        output.mux(stream.encode(None))
    return path.read_bytes()


# --- content types and sizes -----------------------------------------------------------------


def test_every_accepted_type_has_a_kind_and_a_limit() -> None:
    assert kind_of("image/webp") == "image"
    assert kind_of("video/quicktime") == "video"
    limits = {"max_image_bytes": 10, "max_video_bytes": 20}
    assert max_bytes_for("image/png", **limits) == 10
    assert max_bytes_for("video/webm", **limits) == 20


@pytest.mark.parametrize("content_type", ["image/gif", "text/html", "video/x-msvideo", ""])
def test_other_content_types_are_refused(content_type: str) -> None:
    with pytest.raises(UploadRefusedError, match="not accepted"):
        kind_of(content_type)


def test_the_stored_size_must_be_the_declared_one_and_within_the_limit() -> None:
    check_size(declared=100, stored=100, limit=100)
    with pytest.raises(UploadRefusedError, match="declared 100"):
        check_size(declared=100, stored=99, limit=1000)
    with pytest.raises(UploadRefusedError, match="at most 100"):
        check_size(declared=101, stored=101, limit=100)


# --- magic bytes -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "head"),
    [
        ("image/png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"),
        ("image/jpeg", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00"),
        ("image/webp", b"RIFF\x24\x00\x00\x00WEBPVP8 "),
        ("video/mp4", b"\x00\x00\x00\x1cftypisom\x00\x00\x02\x00"),
        ("video/quicktime", b"\x00\x00\x00\x14ftypqt  \x00\x00\x00\x00"),
        ("video/webm", b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01"),
    ],
)
def test_each_signature_matches_its_type(content_type: str, head: bytes) -> None:
    check_magic(content_type, head)


@pytest.mark.parametrize(
    ("content_type", "head"),
    [
        ("image/png", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00"),  # a JPEG declared as PNG
        ("image/jpeg", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"),
        ("image/webp", b"RIFF\x24\x00\x00\x00WAVEfmt "),  # RIFF, but audio
        ("video/mp4", b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01"),
        ("video/webm", b"\x00\x00\x00\x1cftypisom"),
        ("image/png", b""),
        ("image/png", b"<html><script>"),
    ],
)
def test_a_file_that_is_not_its_declared_type_is_refused(content_type: str, head: bytes) -> None:
    with pytest.raises(UploadRefusedError, match=f"not {content_type}"):
        check_magic(content_type, head)


# --- images ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "fmt"), [("image/png", "PNG"), ("image/jpeg", "JPEG"), ("image/webp", "WEBP")]
)
def test_image_dimensions_come_from_the_header(content_type: str, fmt: str) -> None:
    measured = measure_image(
        content_type, image_bytes(fmt, 40, 24), max_dimension=MAX_SIDE, max_pixels=MAX_PIXELS
    )
    assert (measured.width, measured.height, measured.duration_s) == (40, 24, None)


def test_a_header_alone_is_enough_to_measure() -> None:
    measured = measure_image(
        "image/png", png_header(1920, 1080), max_dimension=MAX_SIDE, max_pixels=MAX_PIXELS
    )
    assert (measured.width, measured.height) == (1920, 1080)


@pytest.mark.parametrize(
    ("width", "height", "reason"),
    [
        (100_000, 100_000, "too many pixels"),  # Pillow's own decompression-bomb limit
        (9000, 16, "too large"),
        (16, 8193, "too large"),
        (8000, 8000, "at most 50000000"),
    ],
)
def test_absurd_image_dimensions_are_refused(width: int, height: int, reason: str) -> None:
    with pytest.raises(UploadRefusedError, match=reason):
        measure_image(
            "image/png", png_header(width, height), max_dimension=MAX_SIDE, max_pixels=MAX_PIXELS
        )


def test_a_jpeg_declared_as_png_is_refused_before_pillow_reads_it() -> None:
    with pytest.raises(UploadRefusedError, match="not image/png"):
        measure_image(
            "image/png", image_bytes("JPEG"), max_dimension=MAX_SIDE, max_pixels=MAX_PIXELS
        )


def test_a_broken_header_is_refused() -> None:
    header = png_header(64, 64)
    broken = header[:29] + b"\x00\x00\x00\x00" + header[33:]  # IHDR with a wrong CRC
    with pytest.raises(UploadRefusedError, match="cannot be read"):
        measure_image("image/png", broken, max_dimension=MAX_SIDE, max_pixels=MAX_PIXELS)
    with pytest.raises(UploadRefusedError, match="cannot be read"):
        measure_image(
            "image/webp", b"RIFF\x24\x00\x00\x00WEBPVP8 junk", max_dimension=1, max_pixels=1
        )


# --- videos ----------------------------------------------------------------------------------


def test_a_video_is_measured_from_its_packets(tmp_path: Path) -> None:
    path = tmp_path / "clip.mp4"
    make_video(path, frames=18, fps=12, width=96, height=64)
    measured = measure_video("video/mp4", path, max_dimension=MAX_SIDE)
    assert (measured.width, measured.height) == (96, 64)
    assert measured.duration_s == pytest.approx(1.5, abs=0.01)


def test_webm_is_measured_too(tmp_path: Path) -> None:
    path = tmp_path / "clip.webm"
    make_video(path, container="webm", codec="libvpx", frames=12, fps=12)
    measured = measure_video("video/webm", path, max_dimension=MAX_SIDE)
    assert (measured.width, measured.height) == (64, 48)
    assert measured.duration_s == pytest.approx(1.0, abs=0.01)


@pytest.mark.parametrize("keep", [0.5, 0.9])
def test_a_truncated_mp4_is_refused(tmp_path: Path, keep: float) -> None:
    data = make_video(tmp_path / "clip.mp4")
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(UploadRefusedError):
        measure_video("video/mp4", cut, max_dimension=MAX_SIDE)


def test_a_truncated_faststart_mp4_is_refused(tmp_path: Path) -> None:
    # The index comes first, so the file opens and only the missing packets tell.
    data = make_video(tmp_path / "clip.mp4", frames=24, options={"movflags": "faststart"})
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: int(len(data) * 0.7)])
    with pytest.raises(UploadRefusedError, match="truncated"):
        measure_video("video/mp4", cut, max_dimension=MAX_SIDE)


def test_a_truncated_webm_is_refused(tmp_path: Path) -> None:
    data = make_video(tmp_path / "clip.webm", container="webm", codec="libvpx", frames=24)
    cut = tmp_path / "cut.webm"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(UploadRefusedError, match="truncated"):
        measure_video("video/webm", cut, max_dimension=MAX_SIDE)


def test_a_video_of_another_type_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "clip.webm"
    make_video(path, container="webm", codec="libvpx")
    with pytest.raises(UploadRefusedError, match="not video/mp4"):
        measure_video("video/mp4", path, max_dimension=MAX_SIDE)


def test_a_signature_followed_by_garbage_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "fake.mp4"
    path.write_bytes(b"\x00\x00\x00\x1cftypisom" + bytes(range(256)) * 40)
    with pytest.raises(UploadRefusedError, match=r"cannot be read|no video stream"):
        measure_video("video/mp4", path, max_dimension=MAX_SIDE)


def test_video_frames_beyond_the_largest_dimension_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "wide.mp4"
    make_video(path, frames=2, width=160, height=48)
    with pytest.raises(UploadRefusedError, match="too large"):
        measure_video("video/mp4", path, max_dimension=128)
