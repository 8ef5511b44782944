"""The Krita plugin's logic without Krita: Krita's API is faked at the one module that calls it (krita_api),
Qt's PNG decoder by OpenCV, and the HTTP side is the real backend or a stub (tests/krita/stub_backend.py)."""
from __future__ import annotations

import importlib.util
import queue
import re
import struct
import subprocess
import sys
import threading
import time
import zipfile
from array import array
from pathlib import Path

import cv2
import numpy as np
import pytest

from backend.classical import ENGINES
from conftest import ROOT, free_port

sys.path[:0] = [str(ROOT / "krita_plugin"), str(ROOT / "tests" / "krita")]
from inpaint_selection import controller as ctl  # noqa: E402
from inpaint_selection import fill, geometry, krita_api, messages, models, pixels, png, server_process  # noqa: E402
from inpaint_selection.client import BackendError, Client  # noqa: E402
from inpaint_selection.geometry import Rect  # noqa: E402
from inpaint_selection.pixels import Depth, Rgba  # noqa: E402
from inpaint_selection.settings import SampleFrom, Settings, Source  # noqa: E402
from stub_backend import StubBackend  # noqa: E402

from backend.engines.region import auto_context as backend_auto_context  # noqa: E402
from backend.install import krita as installer  # noqa: E402

PLUGIN = ROOT / "krita_plugin" / "inpaint_selection"


# -- a fake Krita document --------------------------------------------------------------------------
def to_krita(rgba: np.ndarray, depth: Depth) -> bytes:
    """float RGBA 0..1 (H, W, 4) -> Krita's raw layout for the depth."""
    if depth is Depth.U8:
        return (rgba[:, :, [2, 1, 0, 3]] * 255 + 0.5).astype(np.uint8).tobytes()
    if depth is Depth.U16:
        return (rgba[:, :, [2, 1, 0, 3]] * 65535 + 0.5).astype(np.uint16).tobytes()
    return rgba.astype(np.float32 if depth is Depth.F32 else np.float16).tobytes()


def from_krita(data: bytes, w: int, h: int, depth: Depth) -> np.ndarray:
    dtype = {Depth.U8: np.uint8, Depth.U16: np.uint16, Depth.F16: np.float16, Depth.F32: np.float32}[depth]
    arr = np.frombuffer(data, dtype).reshape(h, w, 4).astype(np.float64)
    if depth is Depth.U8:
        return arr[:, :, [2, 1, 0, 3]] / 255
    if depth is Depth.U16:
        return arr[:, :, [2, 1, 0, 3]] / 65535
    return arr


def gradient(rect: Rect) -> np.ndarray:
    """The fake canvas's pixels in any rectangle, computed on demand: no 8000 px canvas in memory."""
    yy, xx = np.mgrid[rect.y:rect.bottom, rect.x:rect.right].astype(np.float64)
    checker = ((xx // 4 + yy // 4) % 2) * 0.3
    return np.stack([(xx % 500) / 500, (yy % 400) / 400, 0.35 + checker, np.ones_like(xx)], axis=2)


class FakeDocument:
    """What krita_api.KritaDocument offers, over computed pixels; every call must come from the UI (main) thread."""

    def __init__(self, w=320, h=240, depth="U8", model="RGBA", selection=((100, 80, 60, 40, 255),), nodes=None,
                 transparent=None):
        self.w, self.h, self.depth, self.model, self.selection = w, h, depth, model, list(selection)
        self.nodes = nodes or {}  # name -> ("layer", float RGBA canvas) or ("mask", uint8 canvas)
        self.transparent = transparent  # (x, y, w, h) of the canvas where the layer has no pixels
        self.reads: list[tuple[str, Rect]] = []
        self.added: list[tuple[str | None, list[fill.NewLayer]]] = []
        self.open = True

    def _ui_thread(self):
        assert threading.current_thread() is threading.main_thread(), "Krita's API used off the UI thread"

    def size(self):
        self._ui_thread()
        return self.w, self.h

    def color(self):
        self._ui_thread()
        return self.model, self.depth

    def selection_bounds(self):
        self._ui_thread()
        if not self.selection:
            return None
        x0 = min(s[0] for s in self.selection)
        y0 = min(s[1] for s in self.selection)
        x1 = max(s[0] + s[2] for s in self.selection)
        y1 = max(s[1] + s[3] for s in self.selection)
        return Rect(x0, y0, x1 - x0, y1 - y0)

    def mask(self, rect: Rect) -> np.ndarray:
        m = np.zeros((rect.h, rect.w), np.uint8)
        for x, y, w, h, v in self.selection:
            part = Rect(x, y, w, h).intersect(rect)
            m[part.y - rect.y:part.bottom - rect.y, part.x - rect.x:part.right - rect.x] = v
        return m

    def selection_mask(self, rect):
        self._ui_thread()
        self.reads.append(("mask", rect))
        return self.mask(rect).tobytes()

    def read_pixels(self, rect, source):
        self._ui_thread()
        self.reads.append((source.value, rect))
        rgba = gradient(rect)
        if self.transparent is not None:
            x, y, w, h = self.transparent
            rgba[max(0, y - rect.y):max(0, y + h - rect.y), max(0, x - rect.x):max(0, x + w - rect.x)] = 0
        return to_krita(rgba, Depth(self.depth))

    def read_node(self, name, rect):
        self._ui_thread()
        self.reads.append((f"node {name}", rect))
        if name not in self.nodes:
            return None
        kind, canvas = self.nodes[name]
        part = canvas[rect.y:rect.bottom, rect.x:rect.right]
        return kind, part.tobytes() if kind == "mask" else to_krita(part, Depth(self.depth))

    def add_layers(self, layers, group):
        self._ui_thread()
        self.added.append((group, layers))

    def is_open(self):
        self._ui_thread()
        return self.open


def cv2_decode(data: bytes) -> Rgba:
    """Stands in for qt.decode_png (Qt is not installed in the test environment)."""
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)[:, :, [2, 1, 0, 3]]
    h, w = arr.shape[:2]
    if arr.dtype == np.uint16:
        return Rgba(w, h, 16, array("H", arr.tobytes()))
    return Rgba(w, h, 8, arr.tobytes())


class UiLoop:
    """Plays Krita's UI thread: work posted from worker threads runs only when the test pumps it."""

    def __init__(self):
        self.calls: queue.Queue = queue.Queue()

    def post(self, fn):
        self.calls.put(fn)

    def pump_until(self, done, timeout=30.0):
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                raise TimeoutError("the plugin did not finish")
            try:
                self.calls.get(timeout=0.05)()
            except queue.Empty:
                pass


def make_controller(url, doc, **settings):
    loop = UiLoop()
    c = ctl.Controller(Settings(url=url, **settings), lambda s: None, loop.post, lambda: doc, cv2_decode)
    outcomes = []
    c.on_finished(lambda ok, message: outcomes.append((ok, message)))
    return c, loop, outcomes


def run_fill(c, loop, outcomes, compare=False):
    before = len(outcomes)
    c.fill(compare=compare)
    loop.pump_until(lambda: len(outcomes) > before)
    return outcomes[-1]


# -- geometry --------------------------------------------------------------------------------------
def test_small_selection_on_huge_canvas_reads_a_small_crop():
    canvas = Rect(0, 0, 8000, 6000)
    crop = geometry.crop_for_selection(Rect(4000, 3000, 40, 20), canvas)
    assert crop.area < 200 * 200
    inner = Rect(4000 - 32, 3000 - 32, 40 + 64, 20 + 64)
    assert crop.intersect(inner) == inner  # the selection plus at least the minimum context


def test_crop_adds_grow_feather_and_context_and_stays_on_canvas():
    canvas = Rect(0, 0, 300, 200)
    sel = Rect(100, 50, 40, 30)
    assert geometry.crop_for_selection(sel, canvas, grow=5, feather=3, context=10) == Rect(100 - 23, 50 - 23, 86, 76)
    assert geometry.crop_for_selection(Rect(0, 0, 40, 30), canvas, context=50) == Rect(0, 0, 92, 82)
    assert geometry.crop_for_selection(Rect(-50, -50, 20, 20), canvas).empty
    assert geometry.crop_for_selection(Rect(280, 190, 100, 100), canvas, context=0) == Rect(278, 188, 22, 12)


def test_crop_widens_to_the_engines_minimum_with_real_pixels():
    canvas = Rect(0, 0, 1000, 300)
    crop = geometry.crop_for_selection(Rect(10, 10, 8, 8), canvas, context=0, minimum=256)
    assert (crop.w, crop.h) == (256, 256) and crop.x == 0 and crop.y == 0
    assert geometry.crop_for_selection(Rect(10, 10, 8, 8), Rect(0, 0, 100, 100), minimum=256) == Rect(0, 0, 100, 100)


@pytest.mark.parametrize("w,h", [(1, 1), (10, 200), (64, 64), (333, 90), (2000, 10)])
def test_auto_context_matches_the_backends_rule(w, h):
    assert geometry.auto_context(w, h) == backend_auto_context(w, h)


# -- pixels and PNG --------------------------------------------------------------------------------
@pytest.mark.parametrize("depth", list(Depth))
def test_krita_pixels_to_rgba_and_back(depth):
    rgba = gradient(Rect(3, 5, 17, 9))
    rgba[0, 0] = [1.0, 0.0, 0.25, 0.5]
    data = to_krita(rgba, depth)
    image = pixels.to_rgba(data, 17, 9, depth)
    assert image.bits == depth.png_bits
    top = 255 if image.bits == 8 else 65535
    values = np.array(list(image.samples), np.float64).reshape(9, 17, 4) / top
    tolerance = 1 / 255 if depth is Depth.U8 else 1e-3 if depth is Depth.F16 else 1 / 65535
    np.testing.assert_allclose(values, rgba, atol=tolerance)  # channel order: R, G, B, A
    back = from_krita(pixels.from_rgba(image, depth), 17, 9, depth)
    np.testing.assert_allclose(back, rgba, atol=tolerance)


def test_float_values_outside_0_1_are_clipped():
    data = struct.pack("<4f", 2.5, -1.0, 0.5, 1.0)
    assert list(pixels.to_rgba(data, 1, 1, Depth.F32).samples) == [65535, 0, 32768, 65535]


def test_8_and_16_bit_results_convert_to_any_depth():
    eight = Rgba(1, 1, 8, bytes([255, 128, 0, 255]))
    assert from_krita(pixels.from_rgba(eight, Depth.U16), 1, 1, Depth.U16)[0, 0].tolist() == [1.0, 128 / 255, 0, 1.0]
    sixteen = Rgba(1, 1, 16, array("H", [65535, 32896, 0, 65535]))
    assert pixels.from_rgba(sixteen, Depth.U8) == bytes([0, 128, 255, 255])  # B, G, R, A


def test_unsupported_documents_are_named():
    with pytest.raises(pixels.UnsupportedFormat, match="CMYKA"):
        pixels.depth_of("CMYKA", "U8")
    assert pixels.depth_of("RGBA", "F16") is Depth.F16


@pytest.mark.parametrize("bits", [8, 16])
def test_crop_rgba(bits):
    values = list(range(6 * 4 * 4))
    image = Rgba(6, 4, bits, bytes(values) if bits == 8 else array("H", values))
    part = pixels.crop_rgba(image, 2, 1, 3, 2)
    expected = np.arange(96).reshape(4, 6, 4)[1:3, 2:5].ravel().tolist()
    assert (part.width, part.height, list(part.samples)) == (3, 2, expected)
    with pytest.raises(ValueError):
        pixels.crop_rgba(image, 5, 0, 2, 1)


def test_png_encoder_round_trips_through_opencv():
    rgba8 = (gradient(Rect(0, 0, 13, 7)) * 255).astype(np.uint8)
    data = png.encode(rgba8.tobytes(), 13, 7, png.RGBA, 8)
    np.testing.assert_array_equal(cv2.imdecode(np.frombuffer(data, np.uint8), -1)[:, :, [2, 1, 0, 3]], rgba8)
    rgba16 = (gradient(Rect(0, 0, 13, 7)) * 65535).astype(np.uint16)
    data = png.encode(array("H", rgba16.tobytes()), 13, 7, png.RGBA, 16)
    np.testing.assert_array_equal(cv2.imdecode(np.frombuffer(data, np.uint8), -1)[:, :, [2, 1, 0, 3]], rgba16)
    grey = np.arange(91, dtype=np.uint8).reshape(7, 13)
    data = png.encode(grey.tobytes(), 13, 7, png.GREY)
    np.testing.assert_array_equal(cv2.imdecode(np.frombuffer(data, np.uint8), -1), grey)
    with pytest.raises(ValueError):
        png.encode(b"\0" * 10, 13, 7, png.GREY)


# -- capture: what is read from the document -------------------------------------------------------
def test_capture_reads_only_the_crop_of_a_huge_document():
    doc = FakeDocument(8000, 6000, selection=[(5000, 4000, 30, 20, 255)])
    snap = fill.capture(doc, Settings())
    assert {kind for kind, _ in doc.reads} == {"mask", "layer"}
    assert all(rect == snap.crop for _, rect in doc.reads)
    assert snap.crop.area < 150 * 150
    assert len(snap.pixels) == snap.crop.area * 4


def test_capture_keeps_soft_selection_values():
    doc = FakeDocument(selection=[(100, 80, 60, 40, 255), (20, 20, 10, 10, 77)])
    snap = fill.capture(doc, Settings())
    assert set(snap.mask) == {0, 77, 255}


@pytest.mark.parametrize("doc,expected", [
    (None, messages.NO_DOCUMENT),
    (FakeDocument(selection=[]), messages.NOTHING_SELECTED),
    (FakeDocument(selection=[(10, 10, 5, 5, 0)]), messages.NOTHING_SELECTED),
    (FakeDocument(selection=[(-50, -50, 20, 20, 255)]), messages.NOTHING_SELECTED),
    (FakeDocument(selection=[(0, 0, 320, 240, 255)]), messages.EVERYTHING_SELECTED),
    (FakeDocument(model="CMYKA"), "only RGB documents"),
])
def test_capture_refuses_politely(doc, expected):
    with pytest.raises(messages.Refused, match=expected.split(".")[0]):
        fill.capture(doc, Settings())
    assert doc is None or not any(kind == "layer" for kind, _ in doc.reads)  # refused before reading pixels


def test_capture_reads_the_visible_image_when_asked():
    doc = FakeDocument()
    fill.capture(doc, Settings(source=Source.VISIBLE))
    assert [kind for kind, _ in doc.reads] == ["mask", "visible"]


# -- the whole flow against the real backend -------------------------------------------------------
@pytest.mark.parametrize("depth", ["U8", "U16", "F16", "F32"])
def test_fill_adds_one_layer_at_the_crop_with_alpha_from_the_selection(server, depth):
    doc = FakeDocument(depth=depth, selection=[(100, 80, 60, 40, 255), (200, 150, 20, 20, 128)])
    c, loop, outcomes = make_controller(server.url, doc)
    ok, message = run_fill(c, loop, outcomes)
    assert ok, message
    default = ENGINES[0].id  # the backend's default engine
    assert f"Added Inpaint: {default}" in message
    [(group, [layer])] = doc.added
    assert group is None and layer.name == f"Inpaint: {default}"
    r = layer.rect
    assert r.w * r.h < doc.w * doc.h  # only the changed area, placed at the crop
    got = from_krita(layer.data, r.w, r.h, Depth(depth))
    want_alpha = doc.mask(r) / 255
    np.testing.assert_allclose(got[:, :, 3], want_alpha, atol=2 / 255)
    hard = doc.mask(r) == 255
    original = gradient(r)
    assert np.abs(got[hard, :3] - original[hard, :3]).mean() > 0.02  # filled, not copied
    assert np.abs(got[hard, :3].mean(axis=0) - original[hard, :3].mean(axis=0)).max() < 0.15  # and plausible


def test_grow_feather_and_context_reach_the_backend():
    doc = FakeDocument()
    with StubBackend() as stub:
        c, loop, outcomes = make_controller(stub.url, doc, grow=3, feather=2, context=40, model="beta")
        assert run_fill(c, loop, outcomes)[0]
        [job] = stub.jobs.values()
    assert job["fields"] == {"output": "layer", "grow": "3", "feather": "2", "context": "40", "blend": "alpha",
                             "model": "beta"}
    assert job["image"].shape[:2] == job["mask"].shape == (40 + 2 * (3 + 4 + 2 + 40), 60 + 2 * (3 + 4 + 2 + 40))


def test_compare_adds_a_group_with_one_layer_per_model():
    doc = FakeDocument()
    with StubBackend(models=("alpha", "beta")) as stub:
        c, loop, outcomes = make_controller(stub.url, doc, compare=["alpha", "beta"])
        ok, message = run_fill(c, loop, outcomes, compare=True)
        assert ok, message
        assert [job["model"] for job in stub.jobs.values()] == ["alpha", "beta"]
    [(group, layers)] = doc.added
    assert group == "Inpaint compare (2 models)"
    assert [layer.name for layer in layers] == ["Inpaint: alpha", "Inpaint: beta"]
    assert layers[0].data != layers[1].data


def test_variations_add_a_group_of_layers_named_by_consecutive_seeds():
    doc = FakeDocument()
    with StubBackend(models=("alpha",)) as stub:
        c, loop, outcomes = make_controller(stub.url, doc, model="alpha", variations=3, seed=40)
        ok, message = run_fill(c, loop, outcomes)
        assert ok, message
        assert [job["fields"]["seed"] for job in stub.jobs.values()] == ["40", "41", "42"]
        c.update_settings(seed=-1)  # random: a fresh first seed, the others follow it
        assert run_fill(c, loop, outcomes)[0]
        random_seeds = [int(job["fields"]["seed"]) for job in list(stub.jobs.values())[3:]]
    (group, layers), (_, random_layers) = doc.added
    assert group == "Inpaint variations (3 seeds)"
    assert [layer.name for layer in layers] == ["Inpaint: alpha seed 40", "Inpaint: alpha seed 41", "Inpaint: alpha seed 42"]
    assert random_seeds == [random_seeds[0] + i for i in range(3)]
    assert [layer.name for layer in random_layers] == [f"Inpaint: alpha seed {s}" for s in random_seeds]


def test_one_fill_lets_the_backend_pick_the_seed_unless_one_is_set():
    doc = FakeDocument()
    with StubBackend(models=("alpha",)) as stub:
        c, loop, outcomes = make_controller(stub.url, doc, model="alpha")
        assert run_fill(c, loop, outcomes)[0]
        c.update_settings(seed=5)
        assert run_fill(c, loop, outcomes)[0]
        first, second = stub.jobs.values()
    assert "seed" not in first["fields"] and second["fields"]["seed"] == "5"
    assert [(group, [layer.name for layer in layers]) for group, layers in doc.added] == \
        [(None, ["Inpaint: alpha"]), (None, ["Inpaint: alpha"])]


@pytest.mark.parametrize("sample", [SampleFrom.AROUND, SampleFrom.SIDES, SampleFrom.ABOVE_BELOW])
def test_sampling_presets_reach_the_backend(sample):
    with StubBackend() as stub:
        c, loop, outcomes = make_controller(stub.url, FakeDocument(), sample=sample, sample_width=30)
        assert run_fill(c, loop, outcomes)[0]
        [job] = stub.jobs.values()
    assert job["fields"]["source_preset"] == sample.value and job["fields"]["source_width"] == "30"
    assert job["source"] is None


@pytest.mark.parametrize("kind", ["layer", "mask"])
def test_a_painted_area_goes_as_the_source_over_half_opaque_only(kind):
    area = np.zeros((240, 320), np.float64)
    area[60:140, 20:90] = 0.8  # more than half: sampled
    area[60:140, 200:260] = 0.4  # less than half: not
    if kind == "layer":
        canvas = np.zeros((240, 320, 4))
        canvas[:, :, 0], canvas[:, :, 3] = 1.0, area
    else:
        canvas = (area * 255).astype(np.uint8)
    doc = FakeDocument(nodes={"sample here": (kind, canvas)})
    with StubBackend() as stub:
        c, loop, outcomes = make_controller(stub.url, doc, sample=SampleFrom.PAINTED, sample_node="sample here")
        assert run_fill(c, loop, outcomes)[0]
        [job] = stub.jobs.values()
    crop = c.status.last_crop
    want = np.where(area[crop[1]:crop[1] + crop[3], crop[0]:crop[0] + crop[2]] > 0.5, 255, 0)
    assert job["source"].shape == job["mask"].shape and np.array_equal(job["source"], want)
    assert want.any() and "source_preset" not in job["fields"]


def test_a_painted_area_that_is_missing_or_empty_is_refused():
    doc = FakeDocument(nodes={"blank": ("mask", np.zeros((240, 320), np.uint8))})
    c, loop, outcomes = make_controller("http://127.0.0.1:9", doc, sample=SampleFrom.PAINTED)
    assert c.fill() is False and outcomes[-1] == (False, messages.NO_SAMPLE_NODE)
    c.update_settings(sample_node="nope")
    assert c.fill() is False and "no layer or selection mask named 'nope'" in outcomes[-1][1]
    c.update_settings(sample_node="blank")
    assert c.fill() is False and "'blank' covers nothing" in outcomes[-1][1]


def test_fill_transparent_sends_the_whole_canvas_and_needs_no_selection():
    doc = FakeDocument(selection=(), transparent=(0, 0, 320, 20))
    with StubBackend() as stub:
        c, loop, outcomes = make_controller(stub.url, doc, fill_transparent=True)
        ok, message = run_fill(c, loop, outcomes)
        assert ok, message
        [job] = stub.jobs.values()
    assert job["fields"]["fill_transparent"] == "1"
    assert job["image"].shape[:2] == (240, 320) and not job["mask"].any()
    [(_, [layer])] = doc.added
    assert layer.rect == Rect(0, 0, 320, 20)  # the stub filled the transparent strip: the layer holds just it


def test_compare_needs_a_ticked_ready_model():
    doc = FakeDocument()
    c, loop, outcomes = make_controller("http://127.0.0.1:9", doc)
    assert c.fill(compare=True) is False
    assert outcomes == [(False, messages.NOTHING_TO_COMPARE)] and not doc.reads


def test_cancel_stops_the_job_on_the_server_and_adds_nothing():
    doc = FakeDocument()
    with StubBackend(mode="slow") as stub:
        c, loop, outcomes = make_controller(stub.url, doc)
        c.fill()
        loop.pump_until(lambda: stub.jobs and c.status.progress > 0)
        assert c.status.busy and "running" in c.status.progress_text
        c.cancel()
        loop.pump_until(lambda: outcomes)
        assert stub.cancelled == ["1"]
    assert outcomes == [(False, messages.CANCELLED)] and doc.added == []
    assert not c.status.busy


def test_a_second_fill_while_busy_is_refused():
    doc = FakeDocument()
    with StubBackend(mode="slow") as stub:
        c, loop, outcomes = make_controller(stub.url, doc)
        assert c.fill() is True
        assert c.fill() is False
        assert outcomes == [(False, messages.BUSY)]
        c.cancel()
        loop.pump_until(lambda: len(outcomes) == 2)


@pytest.mark.parametrize("mode,expected", [("small", "answered a"), ("good", "")])
def test_a_wrongly_sized_answer_is_reported_not_inserted(mode, expected):
    doc = FakeDocument()
    with StubBackend(mode=mode) as stub:
        c, loop, outcomes = make_controller(stub.url, doc)
        ok, message = run_fill(c, loop, outcomes)
    assert ok is (mode == "good")
    assert expected in message
    assert len(doc.added) == (1 if ok else 0)


def test_backend_down_is_said_in_plain_words():
    doc = FakeDocument()
    c, loop, outcomes = make_controller(f"http://127.0.0.1:{free_port()}", doc)
    ok, message = run_fill(c, loop, outcomes)
    assert not ok and message.startswith("The backend is not running at http://127.0.0.1:")
    assert "inpaint-backend serve" in message and doc.added == []


def test_a_closed_document_gets_no_layer():
    doc = FakeDocument()
    with StubBackend() as stub:
        c, loop, outcomes = make_controller(stub.url, doc)
        c.fill()
        doc.open = False  # closed while the backend worked
        loop.pump_until(lambda: outcomes)
    assert outcomes[0][0] is False and "closed" in outcomes[0][1] and doc.added == []


def test_connection_lists_models_ready_first_and_refuses_an_untrained_one():
    doc = FakeDocument()
    with StubBackend(models=("alpha", "beta"), untrained=("gamma",)) as stub:
        c, loop, outcomes = make_controller(stub.url, doc, model="gamma")
        c.check_connection()
        loop.pump_until(lambda: c.status.connection is ctl.Connection.CONNECTED)
        assert [(m.id, m.ready) for m in c.status.models] == [("alpha", True), ("beta", True), ("gamma", False)]
        assert c.status.device == "Stub (cpu)"
        assert c.settings.model == "alpha"  # an untrained choice falls back to the default
        c.settings.model = "gamma"
        assert c.fill() is False
    assert "gamma" in outcomes[-1][1] and "untrained" in outcomes[-1][1] and not doc.reads


def test_down_backend_offers_start_only_with_a_local_command():
    c, loop, _ = make_controller(f"http://127.0.0.1:{free_port()}", FakeDocument())
    c.check_connection()
    loop.pump_until(lambda: c.status.connection is ctl.Connection.DOWN)
    assert not c.status.can_start
    c.update_settings(backend_command="python -m backend.cli serve")
    loop.pump_until(lambda: c.status.connection is ctl.Connection.DOWN)
    assert c.status.can_start
    c.update_settings(url="http://192.0.2.1:7860")  # not this machine: nothing to start
    assert not c.status.can_start


def test_start_server_reports_a_backend_that_exits(tmp_path):
    command = f'"{sys.executable}" -c "import sys; print(\'no torch here\'); sys.exit(3)"'
    c, loop, _ = make_controller(f"http://127.0.0.1:{free_port()}", FakeDocument(), backend_command=command)
    c.server = server_process.LocalServer(tmp_path / "server.log")
    c.start_server()
    loop.pump_until(lambda: c.status.connection is not ctl.Connection.STARTING)
    assert c.status.connection is ctl.Connection.DOWN
    assert "exit code 3" in c.status.error and "no torch here" in c.status.error


def test_local_server_stops(tmp_path):
    server = server_process.LocalServer(tmp_path / "log")
    server.start(f'"{sys.executable}" -c "import time; time.sleep(60)"', "http://127.0.0.1:7999")
    assert server.running
    server.stop()
    assert not server.running


def test_server_command_line_gets_loopback_and_the_urls_port():
    args = server_process.command_line("'/opt/my env/python' -m backend.cli serve --device cuda", "127.0.0.1:8123")
    assert args == ["/opt/my env/python", "-m", "backend.cli", "serve", "--device", "cuda",
                    "--host", "127.0.0.1", "--port", "8123"]
    with pytest.raises(ValueError):
        server_process.command_line("  ", "http://127.0.0.1")


# -- client, models, messages, settings -----------------------------------------------------------
def test_client_talks_to_the_real_backend(server):
    client = Client(server.url + "/")
    assert client.health()["device"]["type"] == "cpu"
    default, choices = models.parse_models(client.models())
    assert choices[0].id == default and choices[0].ready
    with pytest.raises(BackendError) as e:
        client.submit(b"not a png", b"nope", {"model": "diffusion"})
    assert e.value.code == "bad_image" and e.value.status == 400
    with pytest.raises(BackendError) as e:
        client.job("no-such-job")
    assert e.value.code == "unknown_job"


def test_client_sends_the_token():
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    seen = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):
            seen.append(self.headers.get("Authorization"))
            body = b'{"error": "unauthorized", "detail": "missing or wrong token"}' if len(seen) == 1 else b"<html>"
            self.send_response(401 if len(seen) == 1 else 200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        client = Client(f"127.0.0.1:{httpd.server_address[1]}", token=" s3cret ")
        with pytest.raises(BackendError) as e:
            client.health()
        assert e.value.code == "unauthorized" and "token" in messages.explain(e.value)
        with pytest.raises(BackendError) as e:
            client.models()
        assert e.value.code == "bad_response"
    finally:
        httpd.shutdown()
    assert seen == ["Bearer s3cret", "Bearer s3cret"]


def test_model_list_sorting_and_labels():
    default, choices = models.parse_models({"default": "b", "models": [
        {"id": "u", "kind": "learned", "status": "untrained", "reason": "train it first"},
        {"id": "a", "kind": "classical", "status": "ready", "size": {"minimum": 64}},
        {"id": "b", "kind": "classical", "status": "ready"},
        {"id": "x", "kind": "learned", "status": "broken", "reason": "weights missing"},
        {"bogus": True}]})
    assert [c.id for c in choices] == ["b", "a", "u", "x"]
    assert choices[1].minimum == 64 and choices[2].label == "u (untrained)"
    assert "train it first" in choices[2].tooltip
    assert models.pick(choices, "a", default) == "a"
    assert models.pick(choices, "u", default) == "b"
    assert models.pick([], "a", "") == ""


def test_model_picker_lists_narrow_checkpoints_after_the_general_ones():
    _, choices = models.parse_models({"default": "auto", "models": [
        {"id": "aaa-nfgan", "kind": "learned", "status": "ready", "general": False},
        {"id": "auto", "kind": "classical", "status": "ready"},
        {"id": "patchmatch", "kind": "classical", "status": "ready"},
        {"id": "zzz-isnet", "kind": "learned", "status": "ready"}]})
    assert [c.id for c in choices] == ["auto", "zzz-isnet", "patchmatch", "aaa-nfgan"]


def test_model_picker_shows_a_checkpoints_summary_beside_its_name():
    line = "+0.8 dB vs Telea (5 buckets, 512 px) · 56 photos · 3,144 steps · 6.2 h"
    _, choices = models.parse_models({"default": "auto", "models": [
        {"id": "auto", "kind": "classical", "status": "ready", "description": "Chooses per region."},
        {"id": "isnet-open", "kind": "learned", "status": "ready", "description": "ISNet.", "summary": line},
        {"id": "old", "kind": "learned", "status": "broken", "reason": "weights missing", "summary": line}]})
    by_id = {c.id: c for c in choices}
    assert by_id["isnet-open"].label == f"isnet-open (learned) · {line}"
    assert by_id["isnet-open"].tooltip == f"ISNet.\n{line}"
    assert by_id["auto"].label == "auto (classical)" and by_id["old"].label == "old (broken)"


@pytest.mark.parametrize("code,words", [
    ("not_running", "not running"), ("unauthorized", "token"), ("model_not_ready", "cannot run yet"),
    ("empty_mask", "empty"), ("full_mask", "covers everything"), ("image_too_large", "too large"),
    ("timeout", "did not answer"), ("cancelled", "Cancelled"), ("internal", "failed"), ("weird", "refused"),
    ("source_too_small", "widen Sample width"), ("no_transparent", "no fully transparent pixels"),
])
def test_errors_in_plain_words(code, words):
    assert words in messages.explain(BackendError(code, "detail"), "http://127.0.0.1:7860")


def test_settings_round_trip_and_bad_values():
    store = {}
    s = Settings(url="http://h:1", token="t", model="m", compare=["a", "b"], source=Source.VISIBLE, grow=-3,
                 feather=4, context=None, backend_command="py -m backend.cli serve", sample=SampleFrom.SIDES,
                 sample_width=12, sample_node="area", fill_transparent=True, variations=4, seed=9)
    s.save(store.__setitem__)
    assert Settings.load(lambda k, d: store.get(k, d)) == s
    store.update(grow="lots", context="12", source="nonsense", feather="-5", sample="left", variations="20")
    loaded = Settings.load(lambda k, d: store.get(k, d))
    assert (loaded.grow, loaded.context, loaded.source, loaded.feather) == (0, 12, Source.LAYER, 0)
    assert (loaded.sample, loaded.variations) == (SampleFrom.WHOLE, 8)
    assert Settings.load(lambda k, d: d) == Settings()


# -- packaging: the zip, the installer, the module boundaries -------------------------------------
def test_only_krita_api_imports_krita_and_only_qt_imports_qt():
    krita_import = re.compile(r"^\s*(import krita\b|from krita\b)", re.M)
    qt_import = re.compile(r"^\s*(import|from) PyQt[56]", re.M)
    for path in PLUGIN.glob("*.py"):
        text = path.read_text()
        assert bool(krita_import.search(text)) == (path.name == "krita_api.py"), path.name
        assert bool(qt_import.search(text)) == (path.name == "qt.py"), path.name


def load_build_zip():
    spec = importlib.util.spec_from_file_location("krita_build_zip", ROOT / "krita_plugin" / "build_zip.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_zip_has_what_kritas_importer_needs(tmp_path):
    build_zip = load_build_zip()
    out = build_zip.build(tmp_path / "plugin.zip")
    names = zipfile.ZipFile(out).namelist()
    assert {"inpaint_selection.desktop", "inpaint_selection.action", "inpaint_selection/",
            "inpaint_selection/__init__.py", "inpaint_selection/krita_api.py",
            "inpaint_selection/Manual.html"} <= set(names)
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    desktop = zipfile.ZipFile(out).read("inpaint_selection.desktop").decode()
    assert "X-KDE-Library=inpaint_selection" in desktop and "ServiceTypes=Krita/PythonPlugin" in desktop


def test_kritas_own_importer_accepts_the_zip(tmp_path):
    importer = Path("/usr/share/krita/pykrita/plugin_importer/plugin_importer.py")
    if not importer.is_file():
        pytest.skip("Krita is not installed (its plugin importer is used as the reference)")
    build_zip = load_build_zip()
    out = build_zip.build(tmp_path / "plugin.zip")
    (tmp_path / "res").mkdir()
    res = subprocess.run([sys.executable, str(importer), str(out), str(tmp_path / "res")],
                         capture_output=True, text=True)
    assert res.returncode == 0 and "Imported plugin: Inpaint Selection" in res.stdout, res.stderr
    imported = sorted(p.relative_to(tmp_path / "res").as_posix() for p in (tmp_path / "res").rglob("*") if p.is_file())
    expected = sorted(target for _, target in build_zip.plugin_files())
    assert imported == expected  # the same files install-plugins copies


@pytest.fixture
def profile(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setattr(sys, "platform", "linux")
    return tmp_path


def test_install_copies_the_plugin_and_enables_it(profile):
    rc = profile / "config" / "kritarc"
    rc.parent.mkdir(parents=True)
    rc.write_text("[General]\ntheme=Krita dark\n\n[python]\nenable_scripter=true\n\n[MainWindow]\nState=AAA=\n")
    written = installer.install(None)
    pykrita = profile / "data" / "krita" / "pykrita"
    assert written == [pykrita / "inpaint_selection.desktop", pykrita / "inpaint_selection",
                       profile / "data" / "krita" / "actions" / "inpaint_selection.action", rc]
    assert (pykrita / "inpaint_selection" / "krita_api.py").is_file()
    text = rc.read_text()
    assert "[python]\nenable_scripter=true\nenable_inpaint_selection=true\n\n[MainWindow]\nState=AAA=\n" in text
    assert "theme=Krita dark" in text
    assert f"backend_command={sys.executable}" in text and "-m backend.cli serve --models-dir" in text
    (pykrita / "inpaint_selection" / "stale.py").write_text("old")
    installer.install(None)
    assert rc.read_text() == text  # idempotent
    assert not (pykrita / "inpaint_selection" / "stale.py").exists()


def test_install_dest_and_platform_folders(profile, monkeypatch, tmp_path):
    dest = tmp_path / "portable" / "pykrita"
    installer.install(dest)
    assert (dest / "inpaint_selection.desktop").is_file()
    assert (dest.parent / "actions" / "inpaint_selection.action").is_file()
    monkeypatch.setattr(sys, "platform", "darwin")
    assert installer.resources_dir() == tmp_path / "Library" / "Application Support" / "krita"
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setenv("APPDATA", str(tmp_path / "Roaming"))
    monkeypatch.setenv("LOCALAPPDATA", str(tmp_path / "Local"))
    assert installer.resources_dir() == tmp_path / "Roaming" / "krita"
    assert installer.kritarc_path() == tmp_path / "Local" / "kritarc"


def test_cli_install_plugins_krita(profile, capsys):
    from backend.cli import main

    assert main(["install-plugins", "--krita"]) == 0
    assert "krita: installed" in capsys.readouterr().out
    assert "enable_inpaint_selection=true" in (profile / "config" / "kritarc").read_text()


def fake_python3(folder: Path, venv: bool) -> Path:
    folder.mkdir(parents=True)
    if venv:
        (folder.parent / "pyvenv.cfg").write_text("home = /usr/bin\n")
    python3 = folder / "python3"
    python3.write_text("#!/bin/sh\n")
    python3.chmod(0o755)
    return python3


def test_install_says_how_to_start_krita_when_this_shells_python_would_break_it(profile, monkeypatch, capsys):
    venv_python = fake_python3(profile / "venv" / "bin", venv=True)
    system = fake_python3(profile / "usr" / "bin", venv=False).parent
    venv_first = {"PATH": f"{venv_python.parent}:{system}"}
    [note] = installer.python_environment_notes(venv_first)
    assert f"virtual environment's ({venv_python})" in note and "No module named 'PyQt5'" in note
    assert note.endswith(f"from this shell with: env PATH={system} krita")
    assert installer.python_environment_notes({"PATH": f"{system}:{venv_python.parent}"}) == []  # Debian's python3 wins
    [note] = installer.python_environment_notes({"PATH": str(system), "PYTHONHOME": "/opt/py"})
    assert "PYTHONHOME is set" in note and note.endswith(f"env -u PYTHONHOME PATH={system} krita")

    from backend.cli import main

    monkeypatch.setenv("PATH", venv_first["PATH"])
    monkeypatch.delenv("PYTHONHOME", raising=False)
    monkeypatch.delenv("PYTHONPATH", raising=False)
    assert main(["install-plugins", "--krita"]) == 0
    assert "krita: note: Krita started from this shell would load no Python plugins" in capsys.readouterr().err
    monkeypatch.setenv("PATH", str(system))
    assert main(["install-plugins", "--krita"]) == 0
    assert "note:" not in capsys.readouterr().err


def test_set_ini_value_edits_only_its_line():
    assert installer.set_ini_value("", "python", "k", "v") == "[python]\nk=v\n"
    assert installer.set_ini_value("[a]\nx=1\n", "python", "k", "v") == "[a]\nx=1\n\n[python]\nk=v\n"
    assert installer.set_ini_value("[python]\nk=old\nz=2\n", "python", "k", "v") == "[python]\nk=v\nz=2\n"


def python_with_pyqt() -> str | None:
    """Debian's Python with its PyQt5 (what Krita 5 embeds), or this one if it has a PyQt; None if neither has."""
    for python in ("/usr/bin/python3", sys.executable):
        has_qt = "import importlib.util as u, sys; sys.exit(not (u.find_spec('PyQt5') or u.find_spec('PyQt6')))"
        if Path(python).is_file() and subprocess.run([python, "-c", has_qt]).returncode == 0:
            return python
    return None


def test_docker_scrolls_so_it_fits_a_768_px_screen():
    """The docker's content sits in a scroll area, so Krita can give the docker far less height than its controls
    need (tests/krita/qt_compat_check.py builds the real docker offscreen and checks its size hints)."""
    python = python_with_pyqt()
    if python is None:
        pytest.skip("no Python with PyQt5 or PyQt6 here (Debian: apt-get install python3-pyqt5)")
    res = subprocess.run([python, str(ROOT / "tests" / "krita" / "qt_compat_check.py")], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0 and res.stdout.startswith("ok (Qt "), res.stdout + res.stderr


def test_krita_api_is_importable_without_krita():
    assert krita_api.IN_KRITA is False and krita_api.Extension is object
