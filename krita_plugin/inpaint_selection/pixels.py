"""Conversions between Krita's raw pixel layouts and the RGBA the backend reads and writes.

Node.pixelData() is row-major with no padding. Integer depths are B, G, R, A
(U8: bytes, U16: native-endian ushorts); float depths are R, G, B, A (F16 halves,
F32 floats, usually linear light). The backend speaks 8- or 16-bit RGBA PNG, so
8-bit documents go as 8 bit and everything deeper as 16 bit, and come back the same way.
"""
from __future__ import annotations

import enum
import struct
from array import array
from dataclasses import dataclass


class Depth(str, enum.Enum):
    U8 = "U8"
    U16 = "U16"
    F16 = "F16"
    F32 = "F32"

    @property
    def bytes_per_pixel(self) -> int:
        return {"U8": 4, "U16": 8, "F16": 8, "F32": 16}[self.value]

    @property
    def png_bits(self) -> int:
        return 8 if self is Depth.U8 else 16


class UnsupportedFormat(ValueError):
    pass


def depth_of(model: str, depth: str) -> Depth:
    if model != "RGBA":
        raise UnsupportedFormat(f"the document is {model}; only RGB documents can be filled "
                                "(Image > Convert Image Color Space > RGB/Alpha)")
    try:
        return Depth(depth)
    except ValueError:
        raise UnsupportedFormat(f"the document's {depth} channel depth is not supported "
                                "(8 bit, 16 bit or float)") from None


@dataclass
class Rgba:
    """Straight-alpha RGBA samples: bytes when bits == 8, array('H') when bits == 16."""

    width: int
    height: int
    bits: int
    samples: bytes | array


def _swap_red_blue(samples):
    out = samples[:]  # same type: bytearray for 8 bit, array('H') for 16 bit
    out[0::4], out[2::4] = samples[2::4], samples[0::4]
    return out


def _check(data: bytes, width: int, height: int, depth: Depth) -> None:
    if len(data) != width * height * depth.bytes_per_pixel:
        raise ValueError(f"{depth.value} pixel data for {width}x{height} must be "
                         f"{width * height * depth.bytes_per_pixel} bytes, got {len(data)}")


def _floats(data: bytes, depth: Depth) -> list[float]:
    if depth is Depth.F32:
        return array("f", data).tolist()
    return list(struct.unpack(f"<{len(data) // 2}e", data))


def to_rgba(data: bytes, width: int, height: int, depth: Depth) -> Rgba:
    """Krita layout -> RGBA; float values are clipped to 0..1 (what a PNG can hold)."""
    _check(data, width, height, depth)
    if depth is Depth.U8:
        return Rgba(width, height, 8, bytes(_swap_red_blue(bytearray(data))))
    if depth is Depth.U16:
        return Rgba(width, height, 16, _swap_red_blue(array("H", data)))
    values = [0 if v <= 0.0 else 65535 if v >= 1.0 else int(v * 65535.0 + 0.5) for v in _floats(data, depth)]
    return Rgba(width, height, 16, array("H", values))


def from_rgba(image: Rgba, depth: Depth) -> bytes:
    """RGBA (8 or 16 bit) -> Krita layout of the given depth."""
    if len(image.samples) != image.width * image.height * 4 or image.bits not in (8, 16):
        raise ValueError("RGBA samples do not match the size or are not 8/16 bit")
    if depth is Depth.U8:
        narrow = image.samples if image.bits == 8 else bytes((v + 128) // 257 for v in image.samples)
        return bytes(_swap_red_blue(bytearray(narrow)))
    wide = image.samples if image.bits == 16 else array("H", (v * 257 for v in image.samples))
    if depth is Depth.U16:
        return _swap_red_blue(wide).tobytes()
    floats = [v / 65535.0 for v in wide]
    if depth is Depth.F32:
        return array("f", floats).tobytes()
    return struct.pack(f"<{len(floats)}e", *floats)


def count_selected(mask: bytes) -> tuple[int, int]:
    """(pixels with any selection, fully selected pixels) of an 8-bit mask, at C speed."""
    return len(mask) - mask.count(0), mask.count(255)


def crop_rgba(image: Rgba, x: int, y: int, w: int, h: int) -> Rgba:
    """The sub-rectangle (x, y, w, h) of an RGBA image, which must lie inside it."""
    if x < 0 or y < 0 or w <= 0 or h <= 0 or x + w > image.width or y + h > image.height:
        raise ValueError(f"({x}, {y}, {w}, {h}) is not inside {image.width}x{image.height}")
    if (x, y, w, h) == (0, 0, image.width, image.height):
        return image
    stride, start = image.width * 4, x * 4
    rows = [image.samples[r * stride + start:r * stride + start + w * 4] for r in range(y, y + h)]
    samples = b"".join(rows) if image.bits == 8 else array("H", b"".join(row.tobytes() for row in rows))
    return Rgba(w, h, image.bits, samples)


_OVER_HALF = bytes(255 if v > 127 else 0 for v in range(256))


def over_half(levels: bytes | array, top: int) -> bytes:
    """An 8-bit mask, 255 where a level (0..top) is more than half of top, else 0."""
    if top == 255:
        return bytes(levels).translate(_OVER_HALF)  # at C speed
    half = top / 2
    return bytes(255 if v > half else 0 for v in levels)


def area_of(data: bytes, width: int, height: int, depth: Depth | None) -> bytes:
    """A painted sampling area as an 8-bit 0/255 mask: a layer's pixels (its depth's layout) where their alpha is
    over half, or a selection mask's grey bytes (depth None) over half."""
    if depth is None:
        if len(data) != width * height:
            raise ValueError(f"a {width}x{height} mask must be {width * height} bytes, got {len(data)}")
        return over_half(data, 255)
    rgba = to_rgba(data, width, height, depth)
    return over_half(rgba.samples[3::4], 255 if rgba.bits == 8 else 65535)
