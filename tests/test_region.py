"""Region handling: grouping, crop planning, scaling to size rules, blending and the pixel invariants."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import photo_like, rect_mask

from backend.classical.diffusion import DiffusionEngine
from backend.engines.base import Engine, InpaintOptions, Progress, SizeRules
from backend.engines.region import MaskError, fill_region, group_boxes, plan_crop
from backend.request import Blend, FillRequest, Output


class RecordingEngine(Engine):
    """Fills with a constant colour and records the sizes it was called with."""

    id = method = "recording"
    size = SizeRules(multiple=8, minimum=32, native=64)

    def __init__(self, colour=(0.5, 0.5, 0.5)):
        super().__init__("cpu")
        self.calls = []
        self.colour = torch.tensor(colour).view(1, 3, 1, 1)

    def inpaint(self, image, hole, options, progress):
        self.calls.append((tuple(image.shape), float(image[hole.expand_as(image) > 0].abs().sum())))
        return image * (1 - hole) + self.colour * hole


def request(img, mask, **kw):
    return FillRequest(image=img, mask=mask.astype(np.float32) / 255, **kw)


def test_nearby_regions_merge_far_ones_stay_apart():
    hole = np.zeros((400, 400), bool)
    hole[10:20, 10:20] = hole[10:20, 40:50] = hole[300:310, 300:310] = True
    boxes = group_boxes(hole, context=16, limit=(400, 400))
    assert len(boxes) == 2
    assert boxes[0] == (0, 0, 66, 36)
    assert boxes[1] == (284, 284, 326, 326)


def test_crop_is_scaled_to_native_and_padded_to_rules():
    engine = RecordingEngine()
    plan = plan_crop((0, 0, 300, 150), engine, (1000, 1000))
    assert plan.work == (64, 32)
    assert (64 + plan.pad[0]) % 8 == 0 and 32 + plan.pad[1] >= 32
    small = plan_crop((100, 100, 110, 105), engine, (1000, 1000))
    assert small.box[2] - small.box[0] >= 32 and small.box[3] - small.box[1] >= 32  # grown with real context


def test_engine_gets_working_size_and_never_sees_hole_pixels():
    engine = RecordingEngine()
    img = photo_like(300, 500)
    mask = rect_mask(300, 500, (100, 100, 200, 80))
    fill_region(engine, request(img, mask, output=Output.IMAGE))
    (shape, hole_sum), = engine.calls
    assert shape[2] % 8 == 0 and shape[3] % 8 == 0 and max(shape[2:]) <= 64
    assert hole_sum == 0.0


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("blend", list(Blend))
def test_outside_pixels_bit_identical(dtype, blend):
    img = photo_like(120, 160, dtype=dtype)
    mask = rect_mask(120, 160, (20, 30, 40, 40), (110, 60, 30, 30))
    mask[5, 5] = 90  # a soft single pixel
    res = fill_region(DiffusionEngine(), request(img, mask, output=Output.IMAGE, blend=blend, grow=2, feather=3))
    changed = np.any(res.pixels != img, axis=2)
    x, y, w, h = res.region
    assert not changed[:y].any() and not changed[y + h:].any() and not changed[:, :x].any() and not changed[:, x + w:].any()
    layer = fill_region(DiffusionEngine(), request(img, mask, output=Output.LAYER, blend=blend, grow=2, feather=3))
    assert layer.pixels.dtype == dtype and layer.pixels.shape == (120, 160, 4)
    transparent = layer.pixels[:, :, 3] == 0
    assert np.array_equal(transparent, ~np.any(res.pixels != img, axis=2) & transparent)
    assert (layer.pixels[transparent] == 0).all()
    assert (layer.pixels[mask == 255][:, 3] == np.iinfo(dtype).max).all()


def test_tone_match_pulls_a_shifted_fill_back():
    class ShiftedEngine(Engine):
        id = method = "shifted"

        def inpaint(self, image, hole, options, progress):
            known_mean = (image * (1 - hole)).sum(dim=(2, 3), keepdim=True) / (1 - hole).sum()
            return (image * (1 - hole) + known_mean * hole + 0.08).clamp(0, 1)  # right content, too bright

    img = np.full((64, 64, 3), 100, np.uint8)
    mask = rect_mask(64, 64, (20, 20, 20, 20))
    res = fill_region(ShiftedEngine(), request(img, mask, output=Output.IMAGE))
    # Hole pixels were zeroed for the engine, so it returns 0.2; matching brings them to the ring's 100.
    assert np.abs(res.pixels[mask > 0].astype(int) - 100).max() <= 1


def test_poisson_blend_removes_a_seam():
    img = photo_like(96, 96)
    mask = rect_mask(96, 96, (30, 30, 30, 30))
    engine = RecordingEngine(colour=(1.0, 0.0, 1.0))  # a flat magenta fill: a hard seam with alpha
    flat = fill_region(engine, request(img, mask, output=Output.IMAGE)).pixels.astype(int)
    smooth = fill_region(engine, request(img, mask, output=Output.IMAGE, blend=Blend.POISSON)).pixels.astype(int)

    def seam(out):  # jump across the hole's left edge
        return np.abs(out[35:55, 30] - out[35:55, 29]).mean()

    assert seam(smooth) < seam(flat) / 4


def test_large_image_with_three_regions_touches_only_them():
    img = np.zeros((4000, 6000, 3), np.uint8)
    img[:] = (90, 140, 60)
    img[::7] = (80, 120, 50)
    mask = rect_mask(4000, 6000, (100, 100, 300, 200), (3000, 2000, 250, 250), (5600, 3700, 300, 250))
    engine = RecordingEngine()
    engine.size = SizeRules(multiple=8, minimum=32, native=256)
    res = fill_region(engine, request(img, mask, output=Output.IMAGE))
    assert len(engine.calls) == 3
    diff = np.any(res.pixels != img, axis=2)
    assert not diff[mask == 0].any()
    assert diff[mask > 0].mean() > 0.9


def test_hole_at_image_border():
    img = photo_like(64, 64)
    mask = rect_mask(64, 64, (0, 0, 20, 64))
    res = fill_region(DiffusionEngine(), request(img, mask, output=Output.IMAGE))
    assert np.array_equal(res.pixels[mask == 0], img[mask == 0])


def test_unfillable_masks_raise():
    img = photo_like(32, 32)
    with pytest.raises(MaskError, match="nothing"):
        fill_region(DiffusionEngine(), request(img, np.zeros((32, 32), np.uint8)))
    with pytest.raises(MaskError, match="whole image"):
        fill_region(DiffusionEngine(), request(img, np.full((32, 32), 255, np.uint8)))
    mask = rect_mask(32, 32, (1, 1, 30, 30))
    with pytest.raises(MaskError, match="after growing"):
        fill_region(DiffusionEngine(), request(img, mask, grow=5))


def test_progress_reaches_one_and_cancel_stops():
    import threading

    from backend.engines.base import Cancelled

    seen = []
    img, mask = photo_like(64, 64), rect_mask(64, 64, (5, 5, 5, 5), (40, 40, 5, 5))
    fill_region(DiffusionEngine(), request(img, mask), Progress(lambda f, m: seen.append(f)))
    assert seen == sorted(seen) and seen[-1] == 1.0
    stop = threading.Event()
    stop.set()
    with pytest.raises(Cancelled):
        fill_region(DiffusionEngine(), request(img, mask), Progress(cancel=stop))


def test_options_are_validated():
    from backend.engines.base import OptionError

    img, mask = photo_like(32, 32), rect_mask(32, 32, (5, 5, 5, 5))
    with pytest.raises(OptionError, match="unknown"):
        fill_region(DiffusionEngine(), request(img, mask, params={"nope": 1}))
    with pytest.raises(OptionError, match="<="):
        fill_region(DiffusionEngine(), request(img, mask, params={"sweeps": 1000}))
    assert InpaintOptions(seed=1).params == {}
