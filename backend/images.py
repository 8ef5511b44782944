"""Decoding uploaded images and masks, and encoding results as PNG.

Images keep their bit depth end to end (8 or 16 bit), so a 16-bit document
comes back as a 16-bit layer and untouched pixels stay bit-identical.
"""
from __future__ import annotations

import base64
import binascii
import io
import warnings

import cv2
import numpy as np
from PIL import Image

FORMATS = {"PNG", "JPEG", "WEBP", "TIFF", "MPO"}  # MPO: multi-picture JPEG some cameras write
# Pillow's modes whose samples OpenCV decodes as grey or RGB(A); YCbCr TIFFs it converts to RGB itself.
# Others (CMYK, CIELAB, HSV) would come out as channels read as RGB(A): wrong colours.
MODES = {"1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "YCbCr", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
ORIENTATION = 0x0112  # the EXIF tag saying how the stored pixels are turned for display


class ImageError(ValueError):
    """The bytes are not a usable image. `code` is the API error code, `status` the HTTP status."""

    def __init__(self, code: str, detail: str, status: int = 400):
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.status = status


def b64decode(text: str, what: str) -> bytes:
    """Base64 with or without a data-URL prefix (what browsers and Qt produce)."""
    if not isinstance(text, str) or not text:
        raise ImageError("bad_field", f"'{what}' must be a non-empty base64 string")
    if text.startswith("data:"):
        text = text.split(",", 1)[-1]
    try:
        return base64.b64decode(text, validate=False)
    except (binascii.Error, ValueError) as e:
        raise ImageError("bad_image", f"'{what}' is not valid base64: {e}") from None


def _orientation(im: Image.Image) -> int:
    """The EXIF orientation OpenCV leaves to us: 1 (as stored) to 8. Its TIFF decoder applies the tag itself."""
    if im.format == "TIFF":
        return 1
    try:
        if im.format == "PNG":  # getexif() would decode every pixel to look past IDAT; eXIf belongs before it
            exif = Image.Exif()
            exif.load(im.info.get("exif", b""))
            value = exif.get(ORIENTATION, 1)
        else:
            value = im.getexif().get(ORIENTATION, 1)
    except Exception:  # noqa: BLE001 - unreadable EXIF: show the pixels as stored, as viewers do
        return 1
    return value if value in range(1, 9) else 1


def probe(data: bytes, what: str, max_pixels: int) -> tuple[int, int, int]:
    """Check format, colour space and size from the header only, before spending memory on decoding.
    Returns (width, height, EXIF orientation to apply after decoding)."""
    if not data:
        raise ImageError("bad_image", f"'{what}' is empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                fmt, mode, (w, h), orientation = im.format, im.mode, im.size, _orientation(im)
    except Image.DecompressionBombError:
        raise ImageError("image_too_large", f"'{what}' exceeds the decoder's safety limit", 413) from None
    except Exception:
        raise ImageError("bad_image", f"'{what}' is not a PNG, JPEG, WebP or TIFF image") from None
    if fmt not in FORMATS:
        raise ImageError("bad_image", f"'{what}' is {fmt}; use PNG, JPEG, WebP or TIFF")
    if mode not in MODES:
        space = {"LAB": "CIELAB"}.get(mode, mode)
        raise ImageError("unsupported_colour", f"'{what}' is in {space} colour; send it as RGB(A) or grey "
                                               "(convert it in your editor first)")
    if w * h > max_pixels:
        raise ImageError(
            "image_too_large", f"'{what}' is {w}x{h} = {w * h / 1e6:.1f} MP; the limit is {max_pixels / 1e6:.1f} MP", 413
        )
    if w < 1 or h < 1:
        raise ImageError("bad_image", f"'{what}' has no pixels")
    return w, h, orientation


def orient(arr: np.ndarray, orientation: int) -> np.ndarray:
    """Pixels as stored -> as displayed, for an EXIF orientation (what Pillow's exif_transpose does)."""
    turns = {2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
             5: lambda a: a.swapaxes(0, 1), 6: lambda a: np.rot90(a, -1), 7: lambda a: a[::-1, ::-1].swapaxes(0, 1),
             8: lambda a: np.rot90(a, 1)}
    return turns[orientation](arr) if orientation in turns else arr


def _decode(data: bytes, what: str) -> np.ndarray:
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise ImageError("bad_image", f"'{what}' could not be decoded (truncated or corrupt file?)")
    if arr.dtype not in (np.uint8, np.uint16):
        if arr.dtype == np.float32:  # float TIFF: assume 0..1 like every editor writes
            arr = (np.clip(arr, 0, 1) * 65535 + 0.5).astype(np.uint16)
        else:
            raise ImageError("bad_image", f"'{what}' has unsupported sample type {arr.dtype}")
    return arr


def decode_image(data: bytes, max_pixels: int, what: str = "image") -> np.ndarray:
    """Bytes -> HxWx3 (RGB) or HxWx4 (RGBA) array, uint8 or uint16, turned as displayed (EXIF orientation)."""
    orientation = probe(data, what, max_pixels)[2]  # before decoding: the size is checked from the header
    arr = orient(_decode(data, what), orientation)
    if arr.ndim == 2:
        return np.repeat(arr[:, :, None], 3, axis=2)
    if arr.shape[2] == 1:
        return np.repeat(arr, 3, axis=2)
    if arr.shape[2] == 2:  # grey + alpha
        return np.concatenate([np.repeat(arr[:, :, :1], 3, axis=2), arr[:, :, 1:]], axis=2)
    if arr.shape[2] == 3:  # cvtColor: several times faster than a numpy channel shuffle on camera-size images
        return cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)
    if arr.shape[2] == 4:
        return cv2.cvtColor(arr, cv2.COLOR_BGRA2RGBA)
    raise ImageError("bad_image", f"'{what}' has {arr.shape[2]} channels")


def decode_mask(data: bytes, max_pixels: int, what: str = "mask") -> np.ndarray:
    """Bytes -> HxW float32 in [0, 1]; 1 = fill. Grey is used as is; with an alpha channel, the alpha.
    Turned as displayed, like the image: a mask drawn on the displayed photo fits it."""
    orientation = probe(data, what, max_pixels)[2]  # before decoding: the size is checked from the header
    arr = orient(_decode(data, what), orientation)
    scale = 65535.0 if arr.dtype == np.uint16 else 255.0
    if arr.ndim == 3:
        if arr.shape[2] in (2, 4):
            arr = arr[:, :, -1]
        else:  # colour without alpha: any channel lit counts (red brush strokes, white masks)
            arr = arr.max(axis=2)
    out = arr.astype(np.float32)
    out *= 1 / scale  # in place: one camera-size float buffer, not two
    return out


def encode_png(arr: np.ndarray, compression: int = 1) -> bytes:
    """RGB(A) uint8/uint16 -> PNG bytes.

    Low compression with run-length matching and the Sub filter only: speed
    matters more than size on loopback (3x faster than adaptive filtering at
    2048x1536 for about the same size), and a mostly transparent layer still
    comes out small.
    """
    arr = np.ascontiguousarray(arr)
    if arr.ndim == 3 and arr.shape[2] == 4:
        bgr = cv2.cvtColor(arr, cv2.COLOR_RGBA2BGRA)
    elif arr.ndim == 3:
        bgr = cv2.cvtColor(arr, cv2.COLOR_RGB2BGR)
    else:
        bgr = arr
    ok, buf = cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, compression, cv2.IMWRITE_PNG_STRATEGY,
                                                          cv2.IMWRITE_PNG_STRATEGY_RLE, cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_SUB])
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()
