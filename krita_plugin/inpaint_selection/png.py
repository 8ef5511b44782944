"""A PNG encoder on the standard library alone (Krita's Python has no numpy or Pillow).

Rows are written unfiltered with fast zlib: the bytes only travel over loopback,
and this keeps 16-bit images exact, which QImage in Qt 5 cannot promise.
Decoding is left to Qt (qt.decode_png): its C++ decoder handles every filter fast.
"""
from __future__ import annotations

import struct
import sys
import zlib
from array import array

GREY, RGBA = 0, 6
_CHANNELS = {GREY: 1, RGBA: 4}


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def encode(samples: bytes | array, width: int, height: int, colour: int = RGBA, bits: int = 8) -> bytes:
    """samples: row-major bytes (8 bit) or an array('H') of native-endian values (16 bit)."""
    if bits == 16:
        if not isinstance(samples, array) or samples.typecode != "H":
            raise TypeError("16-bit samples must be an array('H')")
        if sys.byteorder == "little":  # PNG stores 16-bit samples big-endian
            samples = array("H", samples)
            samples.byteswap()
        raw = samples.tobytes()
    elif bits == 8:
        raw = bytes(samples)
    else:
        raise ValueError(f"unsupported bit depth {bits}")
    stride = width * _CHANNELS[colour] * bits // 8
    if len(raw) != stride * height:
        raise ValueError(f"expected {stride * height} bytes for {width}x{height}, got {len(raw)}")
    rows = b"".join(b"\x00" + raw[i:i + stride] for i in range(0, stride * height, stride))
    header = struct.pack(">IIBBBBB", width, height, bits, colour, 0, 0, 0)
    idat = zlib.compress(rows, 1)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")
