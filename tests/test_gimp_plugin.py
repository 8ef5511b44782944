"""The GIMP plug-in's logic without GIMP: PNG codec, geometry, settings, HTTP, job thread, watchdog, installer."""
from __future__ import annotations

import ast
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from backend.classical import ENGINES
from conftest import ROOT, photo_like, png
from gimp.fake_backend import FakeBackend

PLUGIN_DIR = ROOT / "gimp_plugin" / "plug-ins" / "inpaint-selection"
sys.path.insert(0, str(PLUGIN_DIR))

import backend_client  # noqa: E402
import job_watchdog  # noqa: E402
import png_codec  # noqa: E402
import selection_geometry as geo  # noqa: E402
from fill_job import Crop, FillJob  # noqa: E402
from fill_settings import (  # noqa: E402
    AUTO,
    DEFAULT_URL,
    TOKEN_ENV,
    FillSettings,
    SampleFrom,
    Source,
    layer_name,
    load_token,
    over_half,
    save_token,
)

from backend.install import gimp as gimp_install  # noqa: E402

RED = (230, 20, 20)


def rgba(arr: np.ndarray) -> bytes:
    return np.ascontiguousarray(arr, np.uint8).tobytes()


def scene(h: int, w: int, *holes) -> tuple[np.ndarray, np.ndarray]:
    """An opaque photo-like RGBA image with red squares, and the mask selecting them."""
    img = np.dstack([photo_like(h, w), np.full((h, w), 255, np.uint8)])
    mask = np.zeros((h, w), np.uint8)
    for x0, y0, x1, y1 in holes:
        img[y0:y1, x0:x1, :3] = RED
        mask[y0:y1, x0:x1] = 255
    return img, mask


# ---- PNG codec ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_png_round_trip(channels):
    data = bytes(np.random.default_rng(channels).integers(0, 256, 13 * 7 * channels, dtype=np.uint8))
    assert png_codec.decode(png_codec.encode(data, 13, 7, channels)) == (data, 13, 7, channels)


@pytest.mark.parametrize("kind", ["photo", "layer", "grey16"])
def test_png_decodes_what_the_backend_encodes(kind):
    """libpng picks Sub, Up, Average and Paeth rows; every one must be undone exactly."""
    if kind == "photo":
        arr = np.dstack([photo_like(61, 77), np.full((61, 77), 200, np.uint8)])
    elif kind == "layer":
        arr = np.zeros((50, 40, 4), np.uint8)
        arr[10:30, 5:25] = np.dstack([photo_like(20, 20), np.full((20, 20), 255, np.uint8)])
    else:
        arr = (photo_like(30, 20, dtype=np.uint16)[:, :, 0])
    pixels, w, h, c = png_codec.decode(png(arr))
    expected = (arr >> 8).astype(np.uint8) if arr.dtype == np.uint16 else arr
    assert (w, h) == (arr.shape[1], arr.shape[0])
    assert np.array_equal(np.frombuffer(pixels, np.uint8).reshape(expected.shape), expected)


def _filtered_png(data: bytes, w: int, h: int, bpp: int, kind: int) -> bytes:
    """A PNG whose every row uses one filter, applied the way the PNG spec defines it."""
    import struct
    import zlib

    def predict(a, b, c):
        if kind == 1:
            return a
        if kind == 2:
            return b
        if kind == 3:
            return (a + b) // 2
        p = a + b - c
        pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
        return a if pa <= pb and pa <= pc else b if pb <= pc else c

    stride, raw, prev = w * bpp, b"", bytes(w * bpp)
    for y in range(h):
        line = data[y * stride:(y + 1) * stride]
        out = bytes((line[i] - predict(line[i - bpp] if i >= bpp else 0, prev[i], prev[i - bpp] if i >= bpp else 0))
                    & 255 for i in range(stride))
        raw, prev = raw + bytes([kind]) + out, line
    encoded = png_codec.encode(data, w, h, bpp)
    ihdr = encoded[8:33]
    idat = zlib.compress(raw)
    chunk = struct.pack(">I", len(idat)) + b"IDAT" + idat + struct.pack(">I", zlib.crc32(b"IDAT" + idat))
    return png_codec.SIGNATURE + ihdr + chunk + encoded[-12:]


@pytest.mark.parametrize("kind", [1, 2, 3, 4])
def test_png_undoes_each_row_filter(kind):
    data = bytes(np.random.default_rng(kind).integers(0, 256, 40 * 30 * 4, dtype=np.uint8))  # enough Paeth ties
    assert png_codec.decode(_filtered_png(data, 40, 30, 4, kind)) == (data, 40, 30, 4)


def test_png_encoding_is_read_by_the_backend():
    from backend.images import decode_image, decode_mask

    img, mask = scene(20, 30, (3, 4, 10, 12))
    back = decode_image(png_codec.encode(rgba(img), 30, 20, 4), 10**6)
    assert np.array_equal(back, img)
    assert np.array_equal(decode_mask(png_codec.encode(rgba(mask), 30, 20, 1), 10**6), mask / 255.0)


@pytest.mark.parametrize("data, words", [(b"GIF89a....", "signature"), (png_codec.SIGNATURE + b"\0\0", "IHDR")])
def test_png_rejects_what_it_cannot_read(data, words):
    with pytest.raises(png_codec.PngError, match=words):
        png_codec.decode(data)


def test_png_rejects_palette_images():
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("P", (4, 4)).save(buf, "PNG")
    with pytest.raises(png_codec.PngError, match="unsupported"):
        png_codec.decode(buf.getvalue())


# ---- geometry -------------------------------------------------------------------------------------------

def test_area_boxes_finds_separate_areas():
    _, mask = scene(200, 300, (10, 20, 30, 40), (250, 150, 260, 190))
    boxes = geo.area_boxes(rgba(mask), 300, 200)
    assert len(boxes) == 2
    for (x0, y0, x1, y1), hole in zip(sorted(boxes), [(10, 20, 30, 40), (250, 150, 260, 190)]):
        assert x0 <= hole[0] and y0 <= hole[1] and x1 >= hole[2] and y1 >= hole[3]
        assert x1 - x0 <= hole[2] - hole[0] + 2 * geo.TILE  # tile precision, not the whole image


def test_area_boxes_joins_touching_areas_and_ignores_nothing():
    _, mask = scene(64, 64, (0, 0, 10, 10), (10, 10, 20, 20))  # diagonal neighbours
    assert len(geo.area_boxes(rgba(mask), 64, 64)) == 1
    assert geo.area_boxes(bytes(64 * 64), 64, 64) == []
    soft = bytearray(64 * 64)
    soft[63 * 64 + 63] = 1  # the faintest corner pixel of a feathered selection still counts
    assert geo.area_boxes(bytes(soft), 64, 64) == [(48, 48, 64, 64)]


def test_crop_boxes_add_margins_and_stay_inside_the_image():
    [crop] = geo.crop_boxes([(100, 100, 120, 110)], 1000, 800, grow=4, feather=3, context=50, min_side=0)
    m = 4 + 2 * 3 + 2 + 50
    assert crop == (100 - m, 100 - m, 120 + m, 110 + m)
    [edge] = geo.crop_boxes([(0, 790, 10, 800)], 1000, 800, grow=0, feather=0, context=50, min_side=0)
    assert edge == (0, 790 - 52, 62, 800)


def test_crop_boxes_auto_context_and_minimum_side():
    [crop] = geo.crop_boxes([(500, 500, 510, 510)], 2000, 2000, grow=0, feather=0, context=AUTO)
    assert crop[2] - crop[0] == geo.MIN_SIDE and crop[3] - crop[1] == geo.MIN_SIDE
    [small] = geo.crop_boxes([(5, 5, 10, 10)], 100, 80, grow=0, feather=0, context=AUTO)
    assert small == (0, 0, 100, 80)  # the whole image is smaller than the minimum


def test_crop_boxes_merge_until_none_overlap():
    areas = [(0, 0, 10, 10), (40, 0, 50, 10), (80, 0, 90, 10), (1000, 1000, 1010, 1010)]
    crops = geo.crop_boxes(areas, 2000, 2000, grow=0, feather=0, context=20, min_side=0)
    assert len(crops) == 2
    for i, a in enumerate(crops):
        for b in crops[i + 1:]:
            assert not geo._overlaps(a, b)
    for area in areas:
        assert any(c[0] <= area[0] and c[1] <= area[1] and c[2] >= area[2] and c[3] >= area[3] for c in crops)


def test_cut_and_parse_region():
    pixels = bytes(range(4 * 3 * 2))  # 4x3, 2 channels
    assert geo.cut(pixels, 4, 2, (1, 1, 3, 3)) == bytes([10, 11, 12, 13, 18, 19, 20, 21])
    assert geo.parse_region("2,3,10,5", 8, 6) == (2, 3, 8, 6)  # clipped to the crop
    assert geo.parse_region("0,0,0,0", 8, 6) is None
    assert geo.parse_region(None, 8, 6) == (0, 0, 8, 6)


# ---- settings -------------------------------------------------------------------------------------------

def test_settings_normalise_url_and_token(monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, "from-env")
    s = FillSettings(url=" 127.0.0.1:9000/ ", model=" diffusion ").checked()
    assert (s.url, s.model, s.token) == ("http://127.0.0.1:9000", "diffusion", "from-env")
    assert FillSettings(token="typed").checked().token == "typed"
    assert FillSettings(url="").checked().url == DEFAULT_URL
    with pytest.raises(ValueError, match="not an http"):
        FillSettings(url="ftp://host").checked()


def test_settings_form_fields():
    assert FillSettings(grow=3, feather=1).form_fields() == {"output": "layer", "grow": "3", "feather": "1",
                                                             "context": "auto"}
    assert FillSettings(model="x", context=40).form_fields()["context"] == "40"
    assert FillSettings(model="x").form_fields()["model"] == "x"


def test_settings_from_a_gimp_config_with_empty_strings_as_none():
    values = {"model": None, "url": "127.0.0.1:7860", "token": None, "grow": 3, "feather": 0, "context": -1,
              "source": "visible", "sample": "above-below", "sample-width": 20, "sample-channel": None,
              "fill-transparent": True, "variations": 2, "seed": 4, "compare": None}
    s = FillSettings.from_values(values.get)
    assert (s.model, s.token, s.source, s.sample_channel, s.compare) == ("", "", Source.VISIBLE, "", "")
    assert (s.sample, s.sample_width, s.fill_transparent, s.variations, s.seed) == (SampleFrom.ABOVE_BELOW, 20, True, 2, 4)
    assert s.checked().url == "http://127.0.0.1:7860"


def test_settings_sampling_transparent_and_seed_fields():
    fields = FillSettings(sample=SampleFrom.ABOVE_BELOW, sample_width=30, fill_transparent=True).form_fields("m", 9)
    assert fields == {"output": "layer", "grow": "2", "feather": "2", "context": "auto", "model": "m", "seed": "9",
                      "source_preset": "above_below", "source_width": "30", "fill_transparent": "1"}
    assert "source_preset" not in FillSettings(sample=SampleFrom.CHANNEL, sample_channel="c").form_fields()
    with pytest.raises(ValueError, match="saved channel"):
        FillSettings(sample=SampleFrom.CHANNEL).checked()
    with pytest.raises(ValueError, match="Variations"):
        FillSettings(variations=9).checked()
    assert over_half(bytes([0, 127, 128, 255])) == bytes([0, 0, 255, 255])


def test_runs_per_compared_model_and_variation_seed():
    assert FillSettings(model="m").runs(100) == [("m", None)]  # one fill: the backend picks the seed
    assert FillSettings(model="m", seed=3).runs(100) == [("m", 3)]
    assert FillSettings(model="m", variations=3).runs(100) == [("m", 100), ("m", 101), ("m", 102)]
    assert FillSettings(model="m", variations=2, seed=7, compare="a, b,").checked().runs(100) == \
        [("a", 7), ("a", 8), ("b", 7), ("b", 8)]
    assert layer_name("base", "patchmatch", None, False) == "base (inpainted)"
    assert layer_name("base", "patchmatch", None, True) == "base (inpainted, patchmatch)"
    assert layer_name("base", "patchmatch", 123, False) == "base (inpainted, patchmatch seed 123)"


def test_token_file_is_private_and_emptied_by_an_empty_token(tmp_path):
    path = tmp_path / "profile" / "inpaint-selection" / "token"
    assert load_token(path) == ""
    save_token(path, "s3cret")
    assert load_token(path) == "s3cret"
    if os.name == "posix":
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    save_token(path, "")
    assert not path.exists()


def test_procedure_arguments_match_the_settings():
    """The GIMP procedure's arguments and FillSettings must not drift apart (settings_from reads them by name)."""
    tree = ast.parse((PLUGIN_DIR / "inpaint-selection.py").read_text())
    args = {node.args[0].value for node in ast.walk(tree)
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "").startswith("add_")
            and getattr(node.func, "attr", "").endswith("_argument")}
    assert args == {name.replace("_", "-") for name in FillSettings.__dataclass_fields__}


def test_libgimp_is_confined_to_one_executable_module():
    main = PLUGIN_DIR / "inpaint-selection.py"
    assert main.read_text().startswith("#!/usr/bin/env python3\n")
    assert os.stat(main).st_mode & stat.S_IXUSR, "GIMP only registers an executable NAME/NAME.py"
    for path in PLUGIN_DIR.glob("*.py"):
        if path != main:
            assert "gi.repository" not in path.read_text() and "import gi" not in path.read_text(), path.name
            assert not os.stat(path).st_mode & stat.S_IXUSR, f"{path.name}: GIMP would try to run it"


# ---- HTTP client and job thread against the real backend ----------------------------------------------------

def test_models_list_comes_from_the_backend(server):
    default, models = backend_client.Backend(server.url).models()
    assert default == ENGINES[0].id  # the backend's default engine
    assert any(m.id == "diffusion" and m.ready for m in models)


def test_model_note_gives_the_picked_models_card_summary():
    line = "+0.8 dB vs Telea (5 buckets, 512 px) · 56 photos · 3,144 steps · 6.2 h"
    listing = [backend_client.ModelInfo("auto", "ready", "Chooses per region."),
               backend_client.ModelInfo("isnet-open", "ready", "ISNet.", summary=line)]
    assert backend_client.model_note(listing, "isnet-open") == f"ISNet. ({line})"
    assert backend_client.model_note(listing, "auto") == "Chooses per region."
    assert backend_client.model_note(listing, "typo") == ""


def test_fill_job_fills_two_crops(server):
    img, mask = scene(120, 300, (20, 30, 40, 50), (230, 70, 260, 90))
    crops = [Crop(box, geo.cut(rgba(img), 300, 4, box), geo.cut(rgba(mask), 300, 1, box))
             for box in [(0, 0, 100, 120), (180, 20, 300, 120)]]
    job = FillJob(backend_client.Backend(server.url), FillSettings(grow=0, feather=0, context=AUTO), crops, poll=0.02)
    job.start()
    job.join(60)
    assert job.error is None and job.progress == 1.0
    assert [p.box for p in job.pieces] == [(20, 30, 40, 50), (230, 70, 260, 90)]  # X-Region, in image coordinates
    for piece in job.pieces:
        px = np.frombuffer(piece.pixels, np.uint8).reshape(piece.box[3] - piece.box[1], piece.box[2] - piece.box[0], 4)
        assert (px[:, :, 3] == 255).all()
        assert not (px[:, :, :3] == RED).all(axis=2).any(), "red left in the fill"


def _red_above_and_below(size=72):
    """Red everywhere but the selected rows, where the photo is: a fill copies red unless it samples the sides."""
    img, mask = scene(size, size, (size // 3, size // 3, size * 2 // 3, size * 2 // 3))
    img[: size // 3, :, :3] = RED
    img[size * 2 // 3:, :, :3] = RED
    return img, mask


def _reds(piece) -> int:
    px = np.frombuffer(piece.pixels, np.uint8).reshape(-1, 4)
    return int(((px[:, 0] > 170) & (px[:, 1] < 80) & (px[:, 2] < 80)).sum())


def test_fill_job_runs_each_seed_and_keeps_red_outside_a_painted_channel_out(server):
    img, mask = _red_above_and_below()
    sides = np.zeros(mask.shape, np.uint8)
    sides[24:48] = 200  # a saved channel over the photo's rows only (more than half white)
    crop = Crop((0, 0, 72, 72), rgba(img), rgba(mask))
    backend = backend_client.Backend(server.url)
    settings = FillSettings(model="patchmatch", grow=0, feather=0)
    job = FillJob(backend, settings, [crop], poll=0.02, runs=settings.runs(0))
    job.run()
    assert job.error is None and _reds(job.pieces[0]) > 20  # the control: from everywhere, red is copied in
    painted = FillSettings(model="patchmatch", grow=0, feather=0, sample=SampleFrom.CHANNEL, sample_channel="c",
                           variations=2, seed=11)
    job = FillJob(backend, painted, [Crop(crop.box, crop.pixels, crop.mask, over_half(rgba(sides)))], poll=0.02,
                  runs=painted.runs(0))
    job.run()
    assert job.error is None
    assert [(f.model, f.seed) for f in job.fills] == [("patchmatch", 11), ("patchmatch", 12)]
    assert all(_reds(f.pieces[0]) == 0 for f in job.fills)
    sided = FillSettings(model="patchmatch", grow=0, feather=0, sample=SampleFrom.SIDES, sample_width=20)
    job = FillJob(backend, sided, [crop], poll=0.02)
    job.run()
    assert job.error is None and _reds(job.pieces[0]) == 0


def test_fill_job_compares_models_one_fill_each(server):
    img, mask = scene(48, 48, (16, 16, 32, 32))
    settings = FillSettings(grow=0, feather=0, compare="patchmatch,diffusion").checked()
    job = FillJob(backend_client.Backend(server.url), settings, [Crop((0, 0, 48, 48), rgba(img), rgba(mask))],
                  poll=0.02, runs=settings.runs(0))
    job.run()
    assert job.error is None and [f.model for f in job.fills] == ["patchmatch", "diffusion"]
    assert job.fills[0].pieces[0].pixels != job.fills[1].pieces[0].pixels


def test_fill_job_fills_transparent_pixels_without_a_selection(server):
    img = np.dstack([photo_like(40, 48), np.full((40, 48), 255, np.uint8)])
    img[:, :6] = 0  # a transparent strip along the left side, as after enlarging the canvas
    job = FillJob(backend_client.Backend(server.url), FillSettings(grow=0, feather=0, fill_transparent=True),
                  [Crop((0, 0, 48, 40), rgba(img), bytes(48 * 40))], poll=0.02)
    job.run()
    assert job.error is None and [p.box for p in job.pieces] == [(0, 0, 6, 40)]
    assert set(job.pieces[0].pixels[3::4]) == {255}


def test_a_sampling_area_too_small_is_put_in_words(server):
    img, mask = scene(48, 48, (16, 16, 32, 32))
    tiny = np.zeros((48, 48), np.uint8)
    tiny[2:5, 2:5] = 255  # no whole patch
    job = FillJob(backend_client.Backend(server.url), FillSettings(model="patchmatch", grow=0, feather=0),
                  [Crop((0, 0, 48, 48), rgba(img), rgba(mask), rgba(tiny))], poll=0.02)
    job.run()
    assert isinstance(job.error, backend_client.BackendError) and job.error.code == "source_too_small"
    assert "Widen Sample width" in str(job.error)


def test_fill_job_reports_backend_errors_in_words(server):
    img, mask = scene(40, 40, (0, 0, 40, 40))
    job = FillJob(backend_client.Backend(server.url), FillSettings(), [Crop((0, 0, 40, 40), rgba(img), rgba(mask))])
    job.run()
    assert isinstance(job.error, backend_client.BackendError) and job.error.code == "full_mask"
    assert "whole image" in str(job.error) and "Select less" in str(job.error)


def test_unknown_model_is_refused_with_a_hint(server):
    img, mask = scene(40, 40, (5, 5, 10, 10))
    with pytest.raises(backend_client.BackendError) as e:
        backend_client.Backend(server.url).submit(png_codec.encode(rgba(img), 40, 40, 4),
                                                  png_codec.encode(rgba(mask), 40, 40, 1), {"model": "nope"})
    assert e.value.code == "unknown_model" and "Pick another model" in str(e.value)


def test_backend_down_is_put_in_words():
    from conftest import free_port

    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(backend_client.BackendError) as e:
        backend_client.Backend(url).models()
    assert e.value.code == "unreachable"
    assert str(e.value).startswith(f"The inpainting backend is not running at {url}")


# ---- a scripted fake backend: tokens, cancel, the watchdog --------------------------------------------------

@pytest.fixture
def fake():
    f = FakeBackend()
    yield f
    f.close()


def test_token_is_sent_and_401_explained():
    f = FakeBackend(401, {"error": "unauthorized", "detail": "missing or wrong 'Authorization: Bearer <token>'"})
    try:
        with pytest.raises(backend_client.BackendError) as e:
            backend_client.Backend(f.url, token="s3cret").submit(b"png", b"png", {})
    finally:
        f.close()
    assert f.requests[0][2] == "Bearer s3cret"
    assert e.value.code == "unauthorized" and "enter the same token" in str(e.value)


def test_cancel_deletes_the_running_job(fake):
    img, mask = scene(20, 20, (5, 5, 10, 10))
    job = FillJob(backend_client.Backend(fake.url), FillSettings(), [Crop((0, 0, 20, 20), rgba(img), rgba(mask))],
                  poll=0.02)
    job.start()
    deadline = time.time() + 10
    while job.message != "filling" and time.time() < deadline:
        time.sleep(0.01)
    assert job.progress == pytest.approx(0.05 + 0.8 * 0.5)  # the server's progress, scaled into this crop's share
    job.cancel()
    job.join(10)
    assert ("DELETE", "/api/v1/jobs/job-1", "") in fake.requests
    assert isinstance(job.error, backend_client.BackendError) and job.error.code == "cancelled"


def test_watch_cancels_only_unfinished_jobs():
    cancelled = []
    assert job_watchdog.watch(["+a", "+b", "-a"], cancelled.append) == ["b"] and cancelled == ["b"]
    assert job_watchdog.watch(["+a", "quit"], cancelled.append) == []


def _plugin_like(url: str, then: str) -> subprocess.Popen:
    """A process that starts a watchdog and a job, then dies the way GIMP's Cancel kills a plug-in, or exits."""
    code = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {str(PLUGIN_DIR)!r})
        from job_watchdog import Watchdog
        w = Watchdog({url!r}, "tok")
        w.started("job-1")
        if {then!r} == "killed":
            os.kill(os.getpid(), signal.SIGKILL)
        w.finished("job-1") if {then!r} == "finished" else None
        w.close()
    """)
    return subprocess.Popen([sys.executable, "-c", code])


@pytest.mark.skipif(os.name != "posix", reason="SIGKILL")
def test_watchdog_cancels_the_job_when_the_plugin_is_killed(fake):
    proc = _plugin_like(fake.url, "killed")
    assert proc.wait(10) == -signal.SIGKILL
    assert fake.cancelled.wait(10), "the watchdog did not cancel the job"
    assert ("DELETE", "/api/v1/jobs/job-1", "Bearer tok") in fake.requests


@pytest.mark.parametrize("then", ["finished", "closed"])
def test_watchdog_leaves_jobs_alone_on_a_normal_exit(fake, then):
    assert _plugin_like(fake.url, then).wait(10) == 0
    time.sleep(0.3)
    assert not fake.cancelled.is_set()


# ---- installer ------------------------------------------------------------------------------------------

def test_install_copies_the_plugin_executable(tmp_path):
    [target] = gimp_install.install(tmp_path)
    assert target == tmp_path / "inpaint-selection"
    main = target / "inpaint-selection.py"
    assert os.stat(main).st_mode & stat.S_IXUSR
    assert {p.name for p in target.iterdir()} >= {"inpaint-selection.py", "png_codec.py", "backend_client.py"}
    assert not list(target.rglob("__pycache__"))
    (target / "stale.py").write_text("")
    gimp_install.install(tmp_path)  # a reinstall replaces the folder
    assert not (target / "stale.py").exists()


def test_install_profile_folders(tmp_path):
    assert gimp_install.gimp_config_root("linux", {}, tmp_path) == tmp_path / ".config" / "GIMP"
    assert gimp_install.gimp_config_root("linux", {"XDG_CONFIG_HOME": "/x"}, tmp_path) == Path("/x/GIMP")
    assert gimp_install.gimp_config_root("darwin", {}, tmp_path) == tmp_path / "Library/Application Support/GIMP"
    assert gimp_install.gimp_config_root("win32", {"APPDATA": "C:/AD"}, tmp_path) == Path("C:/AD/GIMP")
    root = tmp_path / "GIMP"
    assert gimp_install.plugin_folders(root) == [root / "3.0" / "plug-ins", root / "3.2" / "plug-ins"]
    (root / "3.2").mkdir(parents=True)  # only 3.2 has run: leave 3.0 to GIMP's own migration
    assert gimp_install.plugin_folders(root) == [root / "3.2" / "plug-ins"]


def test_install_through_the_cli(tmp_path, capsys):
    from backend.cli import main

    assert main(["install-plugins", "--gimp", "--dest", str(tmp_path)]) == 0
    assert f"gimp: installed {tmp_path / 'inpaint-selection'}" in capsys.readouterr().out
    assert (tmp_path / "inpaint-selection" / "inpaint-selection.py").is_file()
