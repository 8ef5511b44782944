"""PNG encode and decode with zlib alone: GIMP's Python has the standard library and gi, nothing else.

Encoding writes unfiltered rows (fast, and loopback does not care about size). Decoding must
undo all five row filters, because the backend's encoder (libpng) picks a filter per row.
"""
from __future__ import annotations

import struct
import zlib

SIGNATURE = b"\x89PNG\r\n\x1a\n"
GREY, RGB, GREY_ALPHA, RGBA = 0, 2, 4, 6
CHANNELS = {GREY: 1, RGB: 3, GREY_ALPHA: 2, RGBA: 4}


class PngError(ValueError):
    """The bytes are not a PNG this codec reads (8/16-bit, non-interlaced, no palette)."""


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def encode(pixels: bytes, width: int, height: int, channels: int) -> bytes:
    """8-bit grey (1), grey+alpha (2), RGB (3) or RGBA (4) rows, tightly packed -> PNG bytes."""
    colour = {1: GREY, 2: GREY_ALPHA, 3: RGB, 4: RGBA}[channels]
    stride = width * channels
    if len(pixels) != stride * height:
        raise ValueError(f"expected {stride * height} bytes for {width}x{height}x{channels}, got {len(pixels)}")
    raw = b"".join(b"\0" + pixels[y * stride:(y + 1) * stride] for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, colour, 0, 0, 0)
    return SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(raw, 1)) + _chunk(b"IEND", b"")


def _chunks(data: bytes):
    if not data.startswith(SIGNATURE):
        raise PngError("not a PNG (bad signature)")
    pos = len(SIGNATURE)
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind = data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        if len(body) != length:
            raise PngError("truncated PNG")
        yield kind, body
        pos += 12 + length


def _unfilter(kind: int, line: bytearray, prev: bytes, bpp: int) -> None:
    """Undo one row's filter in place (PNG spec, section 9)."""
    n = len(line)
    if kind == 0:
        return
    if kind == 1:  # Sub
        for i in range(bpp, n):
            line[i] = (line[i] + line[i - bpp]) & 255
    elif kind == 2:  # Up
        for i in range(n):
            line[i] = (line[i] + prev[i]) & 255
    elif kind == 3:  # Average
        for i in range(bpp):
            line[i] = (line[i] + (prev[i] >> 1)) & 255
        for i in range(bpp, n):
            line[i] = (line[i] + ((line[i - bpp] + prev[i]) >> 1)) & 255
    elif kind == 4:  # Paeth
        for i in range(bpp):
            line[i] = (line[i] + prev[i]) & 255
        for i in range(bpp, n):
            a, b, c = line[i - bpp], prev[i], prev[i - bpp]
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
    else:
        raise PngError(f"unknown row filter {kind}")


def decode(data: bytes) -> tuple[bytes, int, int, int]:
    """PNG bytes -> (8-bit pixels, width, height, channels); 16-bit samples keep their high byte."""
    header, idat = None, []
    for kind, body in _chunks(data):
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    if header is None or not idat:
        raise PngError("PNG without IHDR or IDAT")
    width, height, depth, colour, _, _, interlace = header
    if colour not in CHANNELS or depth not in (8, 16) or interlace:
        raise PngError(f"unsupported PNG: colour type {colour}, {depth} bit, interlace {interlace}")
    channels = CHANNELS[colour]
    bpp = channels * depth // 8
    stride = width * bpp
    try:
        raw = zlib.decompress(b"".join(idat))
    except zlib.error as e:
        raise PngError(f"corrupt PNG data: {e}") from None
    if len(raw) < (stride + 1) * height:
        raise PngError("truncated PNG data")
    rows, prev, zero = [], bytes(stride), bytes(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1:start + 1 + stride])
        # Transparent areas of a layer are zero rows under every filter: skip the byte loop.
        if not (line == zero and prev == zero):
            _unfilter(kind, line, prev, bpp)
        prev = bytes(line)
        rows.append(prev)
    pixels = b"".join(rows)
    if depth == 16:
        pixels = pixels[0::2]
    return pixels, width, height, channels
