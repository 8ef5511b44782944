"""Sampling areas (where patchmatch may copy from) and filling transparent pixels, through the region pipeline."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import photo_like

from backend.classical.diffusion import DiffusionEngine
from backend.classical.patchmatch import PatchMatchEngine
from backend.engines.region import MaskError, fill_region
from backend.engines.sampling import sampling_area
from backend.request import FillRequest, Output, SourcePreset


def _hole(h=60, w=80, box=(20, 40, 30, 50)) -> np.ndarray:
    y0, y1, x0, x1 = box
    hole = np.zeros((h, w), bool)
    hole[y0:y1, x0:x1] = True
    return hole


def _area(hole, preset=None, width=10, source=None):
    return sampling_area(hole, source, preset, width)


def test_no_sampling_area_means_anywhere():
    assert _area(_hole()) is None


@pytest.mark.parametrize("preset, rows, cols", [
    (SourcePreset.SIDES, (20, 40), (20, 60)),  # the hole's rows, 10 px either side of its columns
    (SourcePreset.ABOVE_BELOW, (10, 50), (30, 50)),
    (SourcePreset.AROUND, (10, 50), (20, 60)),
])
def test_presets_pick_the_band_on_their_sides(preset, rows, cols):
    hole = _hole()
    area = _area(hole, preset)
    ys, xs = np.nonzero(area)
    assert (ys.min(), ys.max() + 1) == rows and (xs.min(), xs.max() + 1) == cols
    assert not (area & hole).any()
    if preset is SourcePreset.SIDES:
        assert area[30, 20:30].all() and area[30, 50:60].all() and not area[15, 35] and not area[45, 35]
    elif preset is SourcePreset.ABOVE_BELOW:
        assert area[10:20, 40].all() and area[40:50, 40].all() and not area[30, 25] and not area[30, 55]
    else:
        assert area[15, 40] and area[30, 25] and not area[11, 21]  # a disk's reach: the far corner is out


def test_painted_area_and_preset_must_both_hold():
    hole = _hole()
    painted = np.zeros(hole.shape, np.float32)
    painted[:, :40] = 0.6  # soft values count from 0.5 on
    painted[:, 40:] = 0.4
    area = _area(hole, SourcePreset.SIDES, source=painted)
    assert area[30, 20:30].all() and not area[30, 50:60].any()
    assert not _area(hole, source=painted)[:, 40:].any() and _area(hole, source=painted)[0, :40].all()


def _framed(h=48, w=56, frame=6):
    """An opaque photo inside a transparent frame on all four sides (the RGB under it is black)."""
    img = np.zeros((h, w, 4), np.uint8)
    img[frame:-frame, frame:-frame, :3] = photo_like(h - 2 * frame, w - 2 * frame, seed=4)
    img[frame:-frame, frame:-frame, 3] = 255
    return img


@pytest.mark.parametrize("engine", [PatchMatchEngine, DiffusionEngine])
def test_transparent_frame_is_filled_on_all_four_sides_from_the_inside(engine):
    img = _framed()
    clear = img[:, :, 3] == 0
    req = FillRequest(img, np.zeros(clear.shape, np.float32), output=Output.IMAGE, seed=2, fill_transparent=True)
    out = fill_region(engine("cpu"), req).pixels
    assert (out[:, :, 3] == 255).all()
    inside = img[~clear][:, :3].astype(int)
    lo, hi = inside.min(0), inside.max(0)
    for side in (out[:6], out[-6:], out[:, :6], out[:, -6:]):  # every frame pixel lies in the photo's colour range
        rgb = side[..., :3].reshape(-1, 3).astype(int)
        assert ((rgb >= lo - 8) & (rgb <= hi + 8)).all()
    assert np.array_equal(out[~clear], img[~clear])


def test_transparent_pixels_join_the_mask():
    img = _framed()
    mask = np.zeros(img.shape[:2], np.float32)
    mask[20:26, 20:30] = 1
    out = fill_region(DiffusionEngine("cpu"), FillRequest(img, mask, fill_transparent=True)).pixels
    assert (out[20:26, 20:30, 3] == 255).all() and (out[img[:, :, 3] == 0][:, 3] == 255).all()
    assert (out[30:40, 20:30, 3] == 0).all()


def test_fill_transparent_without_transparent_pixels_is_refused():
    img = _framed()
    img[:, :, 3] = 255
    with pytest.raises(MaskError) as e:
        fill_region(DiffusionEngine("cpu"), FillRequest(img, np.zeros(img.shape[:2], np.float32), fill_transparent=True))
    assert e.value.code == "no_transparent"
    rgb = img[:, :, :3].copy()
    with pytest.raises(MaskError, match="no fully transparent"):
        fill_region(DiffusionEngine("cpu"), FillRequest(rgb, np.zeros(rgb.shape[:2], np.float32), fill_transparent=True))


def test_engines_that_do_not_copy_patches_ignore_the_sampling_area():
    img, mask = photo_like(40, 40, seed=1), np.zeros((40, 40), np.float32)
    mask[15:25, 15:25] = 1
    nowhere = np.zeros((40, 40), np.float32)  # for patchmatch: no patch at all
    req = FillRequest(img, mask, output=Output.IMAGE, source=nowhere)
    assert np.array_equal(fill_region(DiffusionEngine("cpu"), req).pixels,
                          fill_region(DiffusionEngine("cpu"), FillRequest(img, mask, output=Output.IMAGE)).pixels)
    with pytest.raises(MaskError) as e:
        fill_region(PatchMatchEngine("cpu"), req)
    assert e.value.code == "source_too_small" and "context" in e.value.detail
