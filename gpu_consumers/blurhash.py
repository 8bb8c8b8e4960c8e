"""BlurHash: a short string a client turns into a blurred placeholder before the image arrives.

The string is a handful of cosine components of the image in linear light, packed in base 83:
one character for the component counts, one for the quantised AC maximum, four for the DC
(average) colour and two per AC component. Any BlurHash decoder reads what this writes.

Components are sampled at pixel centres (a DCT-II), so a flat image has exactly zero AC
energy and hashes to its colour alone.
"""

from __future__ import annotations

import math
from typing import Final

from PIL import Image

__all__ = ["encode", "is_valid"]

_ALPHABET: Final = (
    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz#$%*+,-.:;=?@[]^_{|}~"
)
_INDEX: Final = {char: index for index, char in enumerate(_ALPHABET)}
_SAMPLE_SIDE: Final = 32
"""Longest side the image is reduced to first: a few components need no more detail."""

_SRGB_TO_LINEAR: Final = tuple(
    value / 12.92 if value <= 0.04045 else ((value + 0.055) / 1.055) ** 2.4
    for value in (level / 255 for level in range(256))
)


def encode(image: Image.Image, x_components: int = 4, y_components: int = 3) -> str:
    """The BlurHash of ``image``: ``x_components`` by ``y_components`` components, 1 to 9 each."""
    if not (1 <= x_components <= 9 and 1 <= y_components <= 9):
        raise ValueError("BlurHash takes 1 to 9 components on each axis")
    pixels, width, height = _linear_pixels(image)
    cos_x = _cosines(x_components, width)
    cos_y = _cosines(y_components, height)
    # Separable transform: first along each row for every horizontal frequency, then down
    # the columns of those sums.
    row_sums = [
        [_weighted_sum(cos_x[i], pixels[y * width : (y + 1) * width]) for y in range(height)]
        for i in range(x_components)
    ]
    factors: list[tuple[float, float, float]] = []
    for j in range(y_components):
        for i in range(x_components):
            scale = (1 if i == 0 and j == 0 else 2) / (width * height)
            r = g = b = 0.0
            for y in range(height):
                weight = cos_y[j][y]
                sr, sg, sb = row_sums[i][y]
                r += weight * sr
                g += weight * sg
                b += weight * sb
            factors.append((r * scale, g * scale, b * scale))

    dc, ac = factors[0], factors[1:]
    parts = [_base83((x_components - 1) + (y_components - 1) * 9, 1)]
    if ac:
        actual_max = max(abs(channel) for factor in ac for channel in factor)
        quantised_max = max(0, min(82, math.floor(actual_max * 166 - 0.5)))
        maximum = (quantised_max + 1) / 166
    else:
        quantised_max, maximum = 0, 1.0
    parts.append(_base83(quantised_max, 1))
    parts.append(_base83(_encode_dc(dc), 4))
    parts.extend(_base83(_encode_ac(factor, maximum), 2) for factor in ac)
    return "".join(parts)


def is_valid(blurhash: str) -> bool:
    """Whether ``blurhash`` is well formed: base-83 characters, length matching its size flag."""
    if len(blurhash) < 6 or any(char not in _INDEX for char in blurhash):
        return False
    size_flag = _INDEX[blurhash[0]]
    x_components, y_components = size_flag % 9 + 1, size_flag // 9 + 1
    return y_components <= 9 and len(blurhash) == 4 + 2 * x_components * y_components


def _linear_pixels(image: Image.Image) -> tuple[list[tuple[float, float, float]], int, int]:
    rgb = image.convert("RGB")
    longest = max(rgb.size)
    if longest > _SAMPLE_SIDE:
        ratio = _SAMPLE_SIDE / longest
        size = (max(1, round(rgb.width * ratio)), max(1, round(rgb.height * ratio)))
        # A box filter averages every source pixel, which is what the low frequencies need.
        rgb = rgb.resize(size, Image.Resampling.BOX)
    table = _SRGB_TO_LINEAR
    data = rgb.tobytes()
    pixels = [
        (table[data[k]], table[data[k + 1]], table[data[k + 2]]) for k in range(0, len(data), 3)
    ]
    return pixels, rgb.width, rgb.height


def _cosines(components: int, length: int) -> list[list[float]]:
    return [
        [math.cos(math.pi * frequency * (position + 0.5) / length) for position in range(length)]
        for frequency in range(components)
    ]


def _weighted_sum(
    weights: list[float], row: list[tuple[float, float, float]]
) -> tuple[float, float, float]:
    r = g = b = 0.0
    for weight, (pr, pg, pb) in zip(weights, row, strict=True):
        r += weight * pr
        g += weight * pg
        b += weight * pb
    return r, g, b


def _linear_to_srgb(value: float) -> int:
    v = min(1.0, max(0.0, value))
    if v <= 0.0031308:
        return int(v * 12.92 * 255 + 0.5)
    return int((1.055 * v ** (1 / 2.4) - 0.055) * 255 + 0.5)


def _encode_dc(factor: tuple[float, float, float]) -> int:
    r, g, b = (_linear_to_srgb(channel) for channel in factor)
    return (r << 16) + (g << 8) + b


def _encode_ac(factor: tuple[float, float, float], maximum: float) -> int:
    def quantise(value: float) -> int:
        # The square root spends more of the 19 levels on small components.
        root = math.copysign(math.sqrt(abs(value / maximum)), value)
        return max(0, min(18, math.floor(root * 9 + 9.5)))

    r, g, b = (quantise(channel) for channel in factor)
    return r * 19 * 19 + g * 19 + b


def _base83(value: int, length: int) -> str:
    return "".join(_ALPHABET[(value // 83 ** (length - 1 - k)) % 83] for k in range(length))
