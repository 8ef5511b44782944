"""The default `auto` engine: thin regions to the smooth fill, the rest to patchmatch, per connected region."""
from __future__ import annotations

import numpy as np
import pytest
import requests
import torch
from conftest import photo_like, png, rect_mask

from backend.classical import ENGINES
from backend.classical.auto import AutoEngine, region_choices
from backend.classical.patchmatch import PatchMatchEngine
from backend.engines.base import InpaintOptions, OptionError, Progress
from backend.engines.poisson import harmonic_fill
from backend.engines.region import fill_region
from backend.request import FillRequest, Output
from backend.training.metrics import texture_sharpness


def tiled(size: int, period: int = 12) -> torch.Tensor:
    tile = torch.rand(1, 3, period, period, generator=torch.Generator().manual_seed(5))
    return tile.repeat(1, 1, size // period + 1, size // period + 1)[..., :size, :size]


def scratch_and_blob(size: int = 192) -> torch.Tensor:
    hole = torch.zeros(1, 1, size, size)
    hole[..., 30:33, 20:170] = 1  # a 3 px scratch
    hole[..., 100:160, 60:120] = 1  # a 60 px blob
    return hole


def test_auto_is_the_default_engine():
    assert ENGINES[0] is AutoEngine


def test_region_choices_by_width():
    hole = np.zeros((64, 200), bool)
    hole[5:8, 10:190] = True  # 3 px wide
    hole[20:26, 10:190] = True  # 6 px wide: still thin at the default 3 px
    hole[40:48, 10:60] = True  # 8 px wide
    labels, choices = region_choices(hole, 3.0)
    assert choices == ["diffusion", "diffusion", "patchmatch"]
    assert labels[6, 100] == 1 and labels[44, 30] == 3
    assert region_choices(hole, 0.0)[1] == ["patchmatch"] * 3


def test_scratch_goes_to_the_smooth_fill_and_blob_to_patchmatch():
    image, hole = tiled(192), scratch_and_blob()
    options = InpaintOptions(seed=0)
    out = AutoEngine().inpaint(image * (1 - hole), hole, options, Progress())
    assert options.choices == ["diffusion", "patchmatch"]
    scratch = torch.zeros_like(hole, dtype=torch.bool)
    scratch[..., 30:33, 20:170] = True
    smooth = harmonic_fill(image * (1 - hole), 1 - hole).clamp(0, 1)
    assert torch.allclose(out[scratch.expand_as(out)], smooth[scratch.expand_as(out)])
    blob = torch.zeros_like(hole)
    blob[..., 100:160, 60:120] = 1
    # The blob is rebuilt with texture; the smooth fill there would be flat.
    assert float(texture_sharpness(out, image, blob)) > 0.8
    assert float(texture_sharpness(torch.where(blob > 0, smooth, image), image, blob)) < 0.5


def test_fill_region_reports_the_choice_per_region():
    img = photo_like(160, 240, seed=4)
    mask = np.zeros((160, 240), np.float32)
    mask[20:23, 10:230] = 1  # scratch
    mask[80:130, 90:150] = 1  # blob
    result = fill_region(AutoEngine(), FillRequest(img, mask, output=Output.LAYER, seed=1))
    assert result.choices == ["diffusion", "patchmatch"]


def test_response_headers_name_the_engine_per_region(server):
    img = photo_like(160, 240, seed=4)
    mask = rect_mask(160, 240, (10, 20, 220, 3), (90, 80, 60, 50))
    r = server.post_fill(img, mask, seed=1)
    assert r.status_code == 200, r.text
    assert r.headers["X-Model"] == "auto"
    assert r.headers["X-Engine-Choices"] == "diffusion,patchmatch"
    plain = server.post_fill(img, mask, seed=1, model="patchmatch")
    assert "X-Engine-Choices" not in plain.headers
    body = requests.post(server.url + "/api/v1/inpaint", headers={"Accept": "application/json"},
                         files={"image": ("i.png", png(img)), "mask": ("m.png", png(mask))}, timeout=60).json()
    assert body["choices"] == ["diffusion", "patchmatch"]



def _recorded_patch_calls(monkeypatch) -> list[tuple[int, torch.Tensor, torch.Tensor | None]]:
    """Each call auto makes to patchmatch: (patch size, the hole it fills, the sampling area it gets)."""
    calls = []
    inpaint = PatchMatchEngine.inpaint

    def record(self, image, hole, options, progress):
        calls.append((options.params["patch_size"], hole.clone(), None if options.source is None else options.source.clone()))
        return inpaint(self, image, hole, options, progress)

    monkeypatch.setattr(PatchMatchEngine, "inpaint", record)
    return calls


def test_strokes_are_rebuilt_with_small_patches_and_wide_areas_with_larger_ones(monkeypatch):
    image = photo_like(320, 320, seed=2)
    image = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
    hole = torch.zeros(1, 1, 320, 320)
    hole[..., 20:36, 20:300] = 1  # a brush stroke 16 px wide
    hole[..., 120:280, 80:240] = 1  # a wide area
    calls = _recorded_patch_calls(monkeypatch)
    engine = AutoEngine()
    options = InpaintOptions(seed=0, params=engine.parse_params({}))
    out = engine.inpaint(image * (1 - hole), hole, options, Progress())
    assert options.choices == ["patchmatch", "patchmatch"]
    (first, stroke, source), (second, area, later) = calls
    assert (first, second) == (5, 7)
    assert int(stroke.sum()) == 16 * 280 and int(area.sum()) == 160 * 160
    # The stroke may not copy from the wide area, still unfilled; the area may copy from the filled stroke.
    assert bool((source[..., 120:280, 80:240] == 0).all()) and bool((source[..., :100, :] == 1).all())
    assert later is None
    assert torch.equal(out * (1 - hole), image * (1 - hole))
    assert 0.7 < float(texture_sharpness(out, image, hole))  # rebuilt from patches, not smoothed


def test_a_patch_size_given_is_used_for_every_region(monkeypatch):
    image = torch.rand(1, 3, 200, 200, generator=torch.Generator().manual_seed(0))
    hole = torch.zeros(1, 1, 200, 200)
    hole[..., 10:24, 10:190] = 1
    hole[..., 80:180, 50:150] = 1
    calls = _recorded_patch_calls(monkeypatch)
    engine = AutoEngine()
    engine.inpaint(image * (1 - hole), hole, InpaintOptions(seed=0, params=engine.parse_params({"patch_size": 9})),
                   Progress())
    assert [(c[0], int(c[1].sum())) for c in calls] == [(9, int(hole.sum()))]
    with pytest.raises(OptionError, match="odd or 0"):
        engine.parse_params({"patch_size": 8})
