"""Decoding uploads: EXIF orientation applied as displayed, colour spaces OpenCV would misread refused."""
from __future__ import annotations

import io

import numpy as np
import pytest
from conftest import photo_like
from PIL import Image, ImageFile, ImageOps

from backend.images import ImageError, decode_image, decode_mask, orient, probe


def encoded(arr: np.ndarray, fmt: str, orientation: int = 1, mode: str | None = None, **save) -> bytes:
    im = Image.fromarray(arr)
    if mode:
        im = im.convert(mode)
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    im.save(buf, fmt, exif=exif if fmt == "TIFF" else exif.tobytes(), **save)
    return buf.getvalue()


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orient_turns_pixels_as_pillow_displays_them(orientation):
    stored = photo_like(5, 7, seed=orientation)
    data = encoded(stored, "PNG", orientation)
    displayed = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))))
    assert np.array_equal(orient(stored, orientation), displayed)
    assert np.array_equal(decode_image(data, 10**6), displayed)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "TIFF"])
def test_every_format_comes_out_as_displayed(fmt):
    stored = photo_like(20, 30)
    lossless = {"JPEG": {"quality": 100, "subsampling": 0}, "WEBP": {"lossless": True}}.get(fmt, {})
    image = decode_image(encoded(stored, fmt, 6, **lossless), 10**6)
    assert image.shape == (30, 20, 3)  # orientation 6: the camera was turned a quarter clockwise
    error = np.abs(image.astype(int) - np.rot90(stored, -1))
    assert error.mean() < 3 if fmt == "JPEG" else error.max() == 0
    mask = np.zeros((20, 30), np.uint8)
    mask[2:6, 20:28] = 255  # top right as stored: top left as displayed, 20 px down
    shown = decode_mask(encoded(mask, fmt, 6, **lossless), 10**6)
    assert shown.shape == (30, 20) and (shown[20:28, 14:18] > 0.9).all() and shown.sum() < 40


@pytest.mark.parametrize("mode, fmt, space", [("CMYK", "JPEG", "CMYK"), ("CMYK", "TIFF", "CMYK"), ("LAB", "TIFF", "CIELAB")])
def test_colour_spaces_opencv_misreads_are_refused(mode, fmt, space):
    data = encoded(photo_like(20, 30), fmt, mode=mode)
    for decode in (decode_image, decode_mask):
        with pytest.raises(ImageError) as e:
            decode(data, 10**6)
        assert e.value.code == "unsupported_colour" and space in e.value.detail and "RGB" in e.value.detail


@pytest.mark.parametrize("mode", ["YCbCr", "L", "P"])
def test_colour_spaces_opencv_reads_are_kept(mode):
    stored = photo_like(20, 30)
    data = encoded(stored, "TIFF" if mode == "YCbCr" else "PNG", mode=mode)
    want = np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).astype(int)
    assert np.abs(decode_image(data, 10**6).astype(int) - want).max() <= 2


def test_reading_a_png_header_does_not_decode_its_pixels(monkeypatch):
    """The size and EXIF checks run before decoding; on a camera-size PNG a hidden full decode cost a second."""
    buf = io.BytesIO()
    Image.fromarray(photo_like(20, 30)).save(buf, "PNG")  # no eXIf chunk: Pillow would look for one past IDAT
    loads = []
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: loads.append(self) or None)
    assert probe(buf.getvalue(), "image", 10**6) == (30, 20, 1)
    assert probe(encoded(photo_like(20, 30), "PNG", 6), "image", 10**6) == (30, 20, 6)
    assert not loads
