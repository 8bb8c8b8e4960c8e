"""BlurHash encoding checked against properties of the format, not against another encoder."""

from __future__ import annotations

import pytest
from PIL import Image

from gpu_consumers import blurhash

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz#$%*+,-.:;=?@[]^_{|}~"


def decode83(text: str) -> int:
    value = 0
    for char in text:
        value = value * 83 + ALPHABET.index(char)
    return value


def gradient(width: int = 64, height: int = 48) -> Image.Image:
    image = Image.new("RGB", (width, height))
    image.putdata(
        [
            (x * 255 // (width - 1), y * 255 // (height - 1), 128)
            for y in range(height)
            for x in range(width)
        ]
    )
    return image


@pytest.mark.parametrize(("x", "y"), [(4, 3), (1, 1), (9, 9), (3, 7)])
def test_length_and_size_flag(x: int, y: int) -> None:
    result = blurhash.encode(gradient(), x_components=x, y_components=y)
    assert len(result) == 4 + 2 * x * y
    assert decode83(result[0]) == (x - 1) + (y - 1) * 9
    assert blurhash.is_valid(result)


@pytest.mark.parametrize("colour", [(0, 0, 0), (255, 255, 255), (200, 80, 20), (13, 140, 251)])
def test_a_flat_image_hashes_to_its_colour_alone(colour: tuple[int, int, int]) -> None:
    result = blurhash.encode(Image.new("RGB", (50, 30), colour))
    assert result[1] == "0"  # quantised AC maximum
    # sRGB -> linear -> sRGB returns the same 8-bit levels.
    dc = decode83(result[2:6])
    assert (dc >> 16, (dc >> 8) & 255, dc & 255) == colour
    # Every AC component is zero, which the square-root quantiser puts at its middle level 9.
    zero = 9 * 19 * 19 + 9 * 19 + 9
    assert all(decode83(result[k : k + 2]) == zero for k in range(6, len(result), 2))


def test_detail_raises_the_ac_maximum() -> None:
    assert decode83(blurhash.encode(gradient())[1]) > 0


def test_a_large_image_is_hashed_from_a_32_pixel_reduction() -> None:
    large = gradient(640, 480)
    reduced = large.resize((32, 24), Image.Resampling.BOX)
    assert blurhash.encode(large) == blurhash.encode(reduced)


def test_the_hash_follows_orientation() -> None:
    image = gradient()
    assert blurhash.encode(image) != blurhash.encode(
        image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    )


def test_other_modes_are_converted() -> None:
    assert blurhash.is_valid(blurhash.encode(Image.new("L", (10, 10), 90)))
    assert blurhash.is_valid(blurhash.encode(Image.new("RGBA", (10, 10), (1, 2, 3, 4))))


@pytest.mark.parametrize("components", [(0, 3), (4, 10)])
def test_component_counts_outside_one_to_nine_are_refused(components: tuple[int, int]) -> None:
    with pytest.raises(ValueError, match="1 to 9"):
        blurhash.encode(gradient(), *components)


@pytest.mark.parametrize(
    "text", ["", "LEHV6n", "LEHV6nWB2yk8pyo0adR*.7kCMdn", "L!HV6nWB2yk8pyo0adR*.7kCMdnj"]
)
def test_malformed_hashes_are_not_valid(text: str) -> None:
    assert not blurhash.is_valid(text)


def test_a_well_formed_foreign_hash_is_valid() -> None:
    assert blurhash.is_valid("LEHV6nWB2yk8pyo0adR*.7kCMdnj")
