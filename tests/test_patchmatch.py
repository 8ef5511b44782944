"""The patchmatch engine and its nearest-patch search (backend.classical.nnf)."""
import math
import threading

import numpy as np
import pytest
import torch

from backend.classical import ENGINES
from backend.classical.nnf import (
    Matches,
    SourcePatches,
    box_count,
    dct_basis,
    nearest_patches,
    upsample_field,
    valid_centres,
)
import backend.classical.patchmatch as patchmatch
from backend.classical.patchmatch import (
    WORK_SIZE,
    PatchMatchEngine,
    _block_means_from_estimate,
    _estimate_on_box,
    _feather_seams,
    _pick_by_cost,
    _pick_by_estimate,
    complete,
    onion_peel,
)
from backend.engines.base import Cancelled, InpaintOptions, OptionError, Progress
from backend.engines.sampling import SourceTooSmall
from backend.training.metrics import texture_sharpness


def tiled(size: int = 128, period: int = 16, seed: int = 1) -> torch.Tensor:
    """(1, 3, size, size) image tiling one random period x period pattern (every pixel independent)."""
    tile = torch.rand(3, period, period, generator=torch.Generator().manual_seed(seed))
    reps = -(-size // period)
    return tile.repeat(1, reps, reps)[None, :, :size, :size].contiguous()


def box_hole(size: int, *boxes: tuple[int, int, int, int]) -> torch.Tensor:
    hole = torch.zeros(1, 1, size, size)
    for y0, y1, x0, x1 in boxes:
        hole[..., y0:y1, x0:x1] = 1.0
    return hole


def fill(image, hole, seed=0, **params):
    engine = PatchMatchEngine("cpu")
    options = InpaintOptions(seed=seed, params=engine.parse_params(params))
    return engine.inpaint(image * (1 - hole), hole, options, Progress())


def hole_error(out, truth, hole):
    return float((out - truth).abs().mean(1, keepdim=True)[hole > 0].mean())


# ----------------------------------------------------------------------------- engine


def test_patchmatch_is_a_builtin_engine():
    assert PatchMatchEngine in ENGINES
    assert PatchMatchEngine.id == "patchmatch" and PatchMatchEngine.kind == "classical"


def test_same_seed_gives_identical_output():
    image = torch.rand(1, 3, 96, 96, generator=torch.Generator().manual_seed(3))
    hole = box_hole(96, (30, 60, 20, 70))
    a = fill(image, hole, seed=7)
    b = fill(image, hole, seed=7)
    assert torch.equal(a, b)
    assert not torch.equal(a, fill(image, hole, seed=8))  # the seed does drive the search


def test_periodic_texture_is_continued_exactly():
    image = tiled()
    hole = box_hole(128, (50, 78, 40, 70))  # 28 x 30: under two periods each way
    out = fill(image, hole)
    assert hole_error(out, image, hole) < 0.02


def test_known_pixels_are_returned_unchanged():
    image = torch.rand(1, 3, 80, 90, generator=torch.Generator().manual_seed(4))
    hole = torch.zeros(1, 1, 80, 90)
    hole[..., 20:50, 30:60] = 1
    out = fill(image, hole)
    known = hole.expand_as(image) == 0
    assert torch.equal(out[known], image[known])
    assert out.shape == image.shape and 0 <= out.min() and out.max() <= 1


@pytest.mark.parametrize("box", [(0, 30, 98, 128), (60, 90, 0, 20), (100, 128, 40, 70)], ids=["corner", "left", "bottom"])
def test_holes_touching_the_border(box):
    image = tiled()
    hole = box_hole(128, box)
    out = fill(image, hole)
    assert hole_error(out, image, hole) < 0.02


def test_several_separate_regions_are_all_filled():
    image = tiled()
    hole = box_hole(128, (10, 24, 10, 28), (60, 74, 80, 98), (100, 114, 30, 48))
    out = fill(image, hole)
    for box in ((10, 24, 10, 28), (60, 74, 80, 98), (100, 114, 30, 48)):
        one = box_hole(128, box)
        assert hole_error(out, image, one) < 0.02, box


def test_smooth_gradient_stays_close_to_the_ramp():
    # Sky-like ramp: copied patches carry values from around the hole only, so
    # the fill cannot be exact, but the seam touch-up must keep it near the
    # ramp (a flat fill with the border's mean colour is about 0.1 off).
    ys, xs = torch.meshgrid(torch.linspace(0, 1, 120), torch.linspace(0, 1, 120), indexing="ij")
    image = torch.stack([ys, xs, 0.5 * (ys + xs)])[None]
    hole = box_hole(120, (40, 80, 40, 80))
    assert hole_error(fill(image, hole), image, hole) < 0.05


def test_band_sampling_and_options():
    image = tiled()
    hole = box_hole(128, (50, 78, 40, 70))
    out = fill(image, hole, sampling="band", band=24, patch_size=9, iterations=2, search=1)
    assert hole_error(out, image, hole) < 0.02
    with pytest.raises(OptionError):
        fill(image, hole, patch_size=8)
    with pytest.raises(OptionError):
        PatchMatchEngine("cpu").parse_params({"sampling": "everywhere"})


def test_progress_is_reported_and_cancel_stops_the_fill():
    image, hole = tiled(64), box_hole(64, (20, 40, 20, 40))
    seen = []
    engine = PatchMatchEngine("cpu")
    options = InpaintOptions(params=engine.parse_params({}))
    engine.inpaint(image, hole, options, Progress(lambda f, m: seen.append(f)))
    assert seen and seen[-1] == 1.0 and seen == sorted(seen)
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        engine.inpaint(image, hole, options, Progress(cancel=cancel))


def test_degenerate_inputs():
    image = torch.rand(1, 3, 40, 40)
    empty = torch.zeros(1, 1, 40, 40)
    assert torch.equal(complete(image, empty), image)
    everything = torch.ones(1, 1, 40, 40)
    out = complete(image, everything)  # nothing to copy from: a flat fill, no crash
    assert out.shape == image.shape and torch.isfinite(out).all()
    tiny = torch.rand(1, 3, 5, 6)
    tiny_hole = torch.zeros(1, 1, 5, 6)
    tiny_hole[..., 1:3, 2:4] = 1
    assert complete(tiny, tiny_hole).shape == tiny.shape


def test_larger_crop_uses_the_pyramid():
    # 256 px: two levels, so the doubled match field and its vote are exercised.
    image = tiled(256)
    hole = box_hole(256, (100, 150, 90, 140))
    assert hole_error(fill(image, hole), image, hole) < 0.02


def test_periodic_texture_keeps_its_period_and_sharpness():
    image = tiled(256, period=12)  # every pixel of the tile independent: any averaging shows
    hole = box_hole(256, (90, 170, 80, 160))
    out = fill(image, hole)
    inner = out[..., 90:158, 80:160]
    assert (inner - out[..., 102:170, 80:160]).abs().max() < 0.02  # one period down, the same pixels
    assert hole_error(out, image, hole) < 0.02
    assert 0.95 < float(texture_sharpness(out, image, hole)) < 1.05
    blurred = torch.nn.functional.avg_pool2d(out, 3, stride=1, padding=1, count_include_pad=False)
    assert float(texture_sharpness(torch.where(hole > 0, blurred, out), image, hole)) < 0.7  # what a blur scores


def test_grain_is_copied_not_averaged_away():
    # A smooth photo-like image with sensor noise: no patch repeats, so patches covering a
    # pixel disagree; a mean of them would smooth the grain away, real copies keep it.
    g = torch.Generator().manual_seed(3)
    smooth = torch.nn.functional.interpolate(torch.rand(1, 3, 16, 16, generator=g), size=(256, 256), mode="bicubic",
                                             align_corners=False)
    image = (smooth + 0.05 * torch.randn(1, 3, 256, 256, generator=g)).clamp(0, 1)
    hole = box_hole(256, (90, 170, 80, 160))
    assert 0.85 < float(texture_sharpness(fill(image, hole), image, hole)) < 1.2


def test_huge_crop_is_solved_at_its_working_size_and_finished_at_full_size(monkeypatch):
    image = tiled(2048, period=16)[..., :1536, :]
    hole = torch.zeros(1, 1, 1536, 2048)
    hole[..., 700:900, 900:1140] = 1
    searched = []
    search = SourcePatches.search
    monkeypatch.setattr(SourcePatches, "search", lambda self, query, *a, **k: searched.append(query.shape[-2:]) or
                        search(self, query, *a, **k))
    steps = []
    out = complete(image * (1 - hole), hole, generator=torch.Generator().manual_seed(0),
                   progress=Progress(lambda f, m: steps.append(m)))
    # 2048 x 1536 halves three times to 256 x 192: one level there (its smaller side
    # cannot halve again above min_size), then the full-resolution finish.
    assert list(dict.fromkeys(steps)) == ["level 1 of 1", "full resolution"]
    assert searched and all(max(s) <= WORK_SIZE + 6 for s in searched)  # patch radius 3 of padding
    assert hole_error(out, image, hole) < 0.02  # full-size texture, continued exactly
    assert 0.95 < float(texture_sharpness(out, image, hole)) < 1.05


def test_blocks_copied_at_a_large_working_scale_take_the_estimates_brightness_and_keep_their_texture():
    """At camera size each 8x8 block is one copy, and neighbouring copies differ in brightness (a mosaic at
    100 %): every block's mean must follow the smooth estimate, the texture inside it stay as copied."""
    f, h, w = 8, 40, 48
    hole2 = torch.zeros(h, w, dtype=torch.bool)
    hole2[8:32, 8:40] = True
    py, px = torch.nonzero(hole2, as_tuple=True)
    g = torch.Generator().manual_seed(0)
    texture = 0.05 * torch.randn(3, py.numel(), generator=g)
    offsets = torch.rand(3, h // f, w // f, generator=g)  # each block copied from a place of its own brightness
    values = 0.4 + texture + offsets[:, py // f, px // f]
    estimate = torch.linspace(0.3, 0.6, w).expand(3, h, w).contiguous()  # smooth, as the working estimate is
    out = _block_means_from_estimate(values, hole2, py, px, slice(0, h), slice(0, w), estimate, f)
    cell = (py // f) * (w // f) + px // f
    for c in torch.unique(cell):
        at = cell == c
        assert torch.allclose(out[:, at].mean(1), estimate[:, py[at], px[at]].mean(1), atol=1e-5)
        assert torch.allclose(out[:, at] - out[:, at].mean(1, keepdim=True),
                              values[:, at] - values[:, at].mean(1, keepdim=True), atol=1e-5)


def test_seam_between_two_copied_regions_follows_the_estimate_not_the_block_grid():
    """At camera size (8x8 blocks) each block copies from where its working pixel's match points; where a dark
    and a bright copied area meet, choosing by the matches' costs puts the seam on the block grid (a staircase
    at 100 %). Chosen per pixel against the working estimate, the seam follows the estimate's transition."""
    f, pad, h, w = 8, 3, 12, 12
    H, W = h * f, w * f
    image = torch.zeros(3, H, W)
    image[:, :, : W // 2] = 0.2  # known rows on top: a dark area on the left, a bright one on the right
    image[:, :, W // 2 :] = 0.8
    hole = torch.zeros(H, W, dtype=torch.bool)
    hole[4 * f :, :] = True
    hp, wp = h + 2 * pad, w + 2 * pad
    # The working estimate: a smooth transition along a slanted line through the hole, bright above it.
    gy, gx = torch.meshgrid(torch.arange(hp) - pad + 0.5, torch.arange(wp) - pad + 0.5, indexing="ij")
    level = 0.2 + 0.6 * torch.sigmoid((0.4 * gx - gy + 6.0) / 0.6)
    known = torch.zeros(hp, wp, dtype=torch.bool)
    known[pad : pad + 4, pad : pad + w] = True
    estimate = torch.where(known, torch.where(gx < w / 2, 0.2, 0.8), level).expand(3, hp, wp).contiguous()
    # Each hole working pixel matches a source on the side its own centre is on: the seam of the copies
    # follows the block grid.
    shift_y = torch.zeros(hp * wp, dtype=torch.long)
    shift_x = torch.zeros(hp * wp, dtype=torch.long)
    cost_of = torch.full((hp * wp,), math.inf)
    for y in range(4, h):
        for x in range(w):
            at = (y + pad) * wp + x + pad
            bright = float(level[y + pad, x + pad]) > 0.5
            shift_y[at], shift_x[at] = 1 - y, (w - 3 if bright else 2) - x  # to row 1, column 2 or w - 3
            cost_of[at] = 0.0
    py, px = torch.nonzero(hole, as_tuple=True)
    rows, cols = slice(0, H), slice(0, W)
    est_box = _estimate_on_box(estimate, rows, cols, f, pad)
    side = est_box[0, py, px] > 0.5  # where the estimate puts the bright area, pixel by pixel
    args = (shift_y, shift_x, cost_of, hole.reshape(-1))
    by_estimate = _pick_by_estimate(py, px, rows, cols, *args, estimate, est_box, f, pad, (H, W), (hp, wp))
    by_cost = _pick_by_cost(py, px, *args, f, pad, 1, (H, W), (hp, wp))
    wrong = lambda pick: float(((image[0].reshape(-1)[pick] > 0.5) != side).float().mean())
    assert (by_estimate >= 0).all() and (by_cost >= 0).all()
    assert wrong(by_cost) > 0.02  # the staircase
    assert wrong(by_estimate) < 0.25 * wrong(by_cost)


def test_seams_between_copies_are_blended_and_the_copies_inside_stay_sharp():
    """Two copies meet at a hard edge: the hole's left half copies a dark area, its right half (another shift)
    a bright one. Next to the seam the pixels blend both; further in, every pixel is its copy exactly."""
    g = torch.Generator().manual_seed(0)
    H, W = 40, 96
    image = 0.2 + 0.05 * torch.rand(1, 3, H, W, generator=g)
    image[..., :20, 48:] += 0.6  # a bright area in the known rows, right of column 48
    hole = torch.zeros(H, W, dtype=torch.bool)
    hole[20:, :64] = True
    py, px = torch.nonzero(hole, as_tuple=True)
    pick = torch.where(px < 32, (py - 20) * W + px, (py - 20) * W + px + 16)  # dark | bright, no seam in the source
    values = _feather_seams(image, pick, py, px, slice(0, H), slice(0, W), hole.reshape(-1), 2)
    copies = image[0].reshape(3, -1)[:, pick]
    far = ((px < 30) | (px > 33)) & (py >= 22)  # over 2 px from the seam and from the hole's top
    assert torch.allclose(values[:, far], copies[:, far], atol=1e-6)
    near = (px == 32) & (py >= 22)
    assert bool(((values[:, near] > 0.3) & (values[:, near] < 0.75)).all())  # neither dark nor bright: blended


def test_onion_peel_on_noise_like_texture_keeps_to_its_budget_and_every_phase_of_a_fine_period(monkeypatch):
    """Without the DCT (noise-like texture) the peel searches exactly, and its cost grows with hole x sources: a
    budget caps the pairs compared. The sources kept must still hold every phase of a fine random tiling, so
    the hole is continued exactly; a regular grid of them would alias the period (a 2-step grid keeps a
    quarter of the phases, and the neighbours of a wrong phase are no nearer in noise)."""
    image = tiled(96, period=12, seed=4)[0]
    hole = torch.zeros(96, 96, dtype=torch.bool)
    hole[36:60, 30:66] = True
    compared = []
    exact = patchmatch.brute_force
    monkeypatch.setattr(patchmatch, "brute_force", lambda q, s, w=None: compared.append(q.shape[0] * s.shape[0]) or
                        exact(q, s, w))
    budget = 2 * 10**6  # a tenth of what comparing every hole pixel with every source would take
    out = onion_peel(image * ~hole, hole, ~hole, 7, max_sources=0, pairs=budget)
    assert 0 < sum(compared) <= budget
    assert float((out - image).abs()[:, hole].mean()) < 0.02  # a 1,200-source grid: 0.30


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_runs_on_cuda():
    image = tiled().cuda()
    hole = box_hole(128, (50, 78, 40, 70)).cuda()
    engine = PatchMatchEngine("cuda")
    options = InpaintOptions(params=engine.parse_params({}))
    out = engine.inpaint(image * (1 - hole), hole, options, Progress())
    assert out.is_cuda and hole_error(out, image, hole) < 0.02


# ----------------------------------------------------------------------------- nnf


def smooth_noise(channels: int, h: int, w: int, g: torch.Generator) -> torch.Tensor:
    coarse = torch.rand(1, channels, h // 4, w // 4, generator=g)
    return torch.nn.functional.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=False)[0]


def planted(channels: int, seed: int = 0):
    """A smooth random source, and a query image holding a 24x24 block copied from (40, 50) of it.

    Smooth like photos and feature maps, so that PatchMatch's random search
    has a slope to follow (in white noise nothing but the exact spot is near).
    """
    g = torch.Generator().manual_seed(seed)
    source = smooth_noise(channels, 96, 112, g)
    query = smooth_noise(channels, 64, 64, g)
    query[:, 20:44, 10:34] = source[:, 40:64, 50:74]
    return source, query


@pytest.mark.parametrize("channels,dims", [(3, None), (3, 24), (16, 24)])
def test_nnf_finds_a_planted_copy(channels, dims):
    source, query = planted(channels)
    mask = torch.zeros(64, 64, dtype=torch.bool)
    mask[23:41, 13:31] = True  # centres whose 7x7 patch lies inside the copied block
    m = nearest_patches(query, source, query_mask=mask, patch_size=7, iterations=6,
                        generator=torch.Generator().manual_seed(0), dims=dims, exact=False)
    qy, qx = m.query // 64, m.query % 64
    sy, sx = m.source // 112, m.source % 112
    hit = (sy == qy + 20) & (sx == qx + 40)
    assert m.query.numel() == int(mask.sum())
    assert hit.float().mean() > 0.95
    assert m.distance[hit].max() < 1e-4


def test_nnf_exact_search_agrees_and_respects_the_source_mask():
    source, query = planted(3)
    mask = torch.zeros(64, 64, dtype=torch.bool)
    mask[30, 20] = True
    m = nearest_patches(query, source, query_mask=mask, exact=True, dims=None)
    assert int(m.source[0]) == (30 + 20) * 112 + (20 + 40)
    # Forbid the copied area: the match must move out of it.
    allowed = torch.ones(96, 112, dtype=torch.bool)
    allowed[40:64, 50:74] = False
    m2 = nearest_patches(query, source, query_mask=mask, source_mask=allowed, exact=True, dims=None)
    y, x = int(m2.source[0]) // 112, int(m2.source[0]) % 112
    assert valid_centres(allowed, 7)[y, x]
    assert m2.distance[0] > 0.1


def test_nnf_query_weights_ignore_unknown_pixels():
    source, query = planted(3)
    mask = torch.zeros(64, 64, dtype=torch.bool)
    mask[30, 20] = True
    spoiled = query.clone()
    spoiled[:, 30:34, 17:24] = 0.0  # the lower part of the patch around (30, 20)
    weights = torch.ones(64, 64)
    weights[30:34, 17:24] = 0.0
    m = nearest_patches(spoiled, source, query_mask=mask, query_weights=weights, exact=True)
    assert int(m.source[0]) == 50 * 112 + 60


def test_nnf_is_deterministic_and_field_roundtrips():
    source, query = planted(3)
    run = lambda: nearest_patches(query, source, iterations=2, generator=torch.Generator().manual_seed(5), exact=False)
    a, b = run(), run()
    assert torch.equal(a.source, b.source)
    field = a.field()
    assert field.shape == (64, 64, 2)
    assert torch.equal(field.reshape(-1, 2)[a.query, 0] * 112 + field.reshape(-1, 2)[a.query, 1], a.source)
    assert (field[0, 0] == -1).all()  # a border pixel is no patch centre


def test_search_resumes_from_an_initial_field():
    source, query = planted(3)
    mask = torch.zeros(64, 64, dtype=torch.bool)
    mask[23:41, 13:31] = True
    index = SourcePatches(source, patch_size=7, basis=dct_basis(7))
    truth = torch.full((64, 64, 2), -1, dtype=torch.long)
    ys, xs = torch.meshgrid(torch.arange(64), torch.arange(64), indexing="ij")
    truth[..., 0], truth[..., 1] = ys + 20, xs + 40
    m = index.search(query, mask, iterations=1, generator=torch.Generator().manual_seed(0), init=truth, exact=False)
    assert (m.distance < 1e-4).all()


def test_upsample_field_doubles_matches():
    field = torch.full((4, 5, 2), -1, dtype=torch.long)
    field[1, 2] = torch.tensor([3, 4])
    up = upsample_field(field, (8, 10))
    assert up[2, 4].tolist() == [6, 8] and up[3, 5].tolist() == [7, 9]
    assert (up[0, 0] == -1).all()
    # With padding, the doubling applies to unpadded coordinates.
    padded = upsample_field(field + (field >= 0) * 0, (8 + 2 * 3, 10 + 2 * 3), pad=3)
    assert padded.shape == (14, 16, 2)


def test_box_count_matches_a_direct_count():
    mask = torch.rand(17, 23, generator=torch.Generator().manual_seed(2)) > 0.6
    counts = box_count(mask, 5)
    padded = torch.nn.functional.pad(mask.float(), (2, 2, 2, 2))
    direct = torch.nn.functional.avg_pool2d(padded[None, None], 5, stride=1)[0, 0] * 25
    assert torch.equal(counts, direct.round().int())


def test_matches_is_empty_without_a_valid_source():
    query = torch.rand(3, 20, 20)
    m = nearest_patches(query, source_mask=torch.zeros(20, 20, dtype=torch.bool))
    assert isinstance(m, Matches) and m.query.numel() == 0


# ----------------------------------------------------------------------------- sampling area


def _red_left(size: int = 80):
    """Grey noise with a red left part that the hole reaches into: a fill copies red unless told not to."""
    g = torch.Generator().manual_seed(0)
    image = torch.rand(1, 3, size, size, generator=g) * 0.3 + 0.35
    image[..., : size * 2 // 5] = torch.tensor([0.9, 0.1, 0.1]).view(1, 3, 1, 1) + 0.05 * torch.rand(1, 3, size, size * 2 // 5, generator=g)
    hole = box_hole(size, (size // 3, size * 2 // 3, size * 3 // 8, size * 5 // 8))
    return image, hole


def _red_count(out: torch.Tensor, hole: torch.Tensor) -> int:
    px = out[0][:, hole[0, 0] > 0]
    return int(((px[0] > 0.6) & (px[1] < 0.3)).sum())


def test_sampling_area_keeps_what_lies_outside_it_out_of_the_fill():
    image, hole = _red_left()
    assert _red_count(complete(image * (1 - hole), hole, generator=torch.Generator().manual_seed(1)), hole) > 50
    source = torch.zeros_like(hole)
    source[..., image.shape[-1] // 2 :] = 1.0  # the grey right half only
    out = complete(image * (1 - hole), hole, source=source, generator=torch.Generator().manual_seed(1))
    assert _red_count(out, hole) == 0
    assert torch.equal(out[hole.expand_as(out) == 0], image[hole.expand_as(image) == 0])


def test_engine_reads_the_sampling_area_from_its_options():
    image, hole = _red_left()
    source = torch.zeros_like(hole)
    source[..., image.shape[-1] // 2 :] = 1.0
    engine = PatchMatchEngine("cpu")
    options = InpaintOptions(seed=1, params=engine.parse_params({}), source=source)
    assert engine.copies_patches
    assert _red_count(engine.inpaint(image * (1 - hole), hole, options, Progress()), hole) == 0


def test_sampling_area_without_a_whole_patch_is_refused():
    image, hole = _red_left()
    source = torch.zeros_like(hole)
    source[..., 5:10, 60:66] = 1.0  # 5 rows: no 7x7 patch fits
    with pytest.raises(SourceTooSmall, match="7x7"):
        complete(image * (1 - hole), hole, source=source)


def test_fill_keeps_to_the_colours_of_the_picture():
    # A gradient with a sharp two-tone checker in blue, framed by transparency to fill (a canvas extension):
    # the copied checker over a smooth base must not overshoot either tone.
    from backend.engines.region import fill_region
    from backend.request import FillRequest, Output

    w, h, f = 128, 96, 12
    y, x = np.mgrid[: h - 2 * f, : w - 2 * f]
    picture = np.stack([x / w, y / h, 0.35 + 0.3 * ((x // 4 + y // 4) % 2), np.ones_like(x, float)], -1)
    image = np.zeros((h, w, 4), np.uint8)
    image[f:-f, f:-f] = (picture * 255 + 0.5).astype(np.uint8)
    clear = image[..., 3] == 0
    result = fill_region(PatchMatchEngine(), FillRequest(image, np.zeros((h, w), np.float32), output=Output.LAYER,
                                                         seed=1, fill_transparent=True))
    blue, known = result.pixels[clear, 2].astype(int), image[~clear, 2].astype(int)
    # (Red and green are gradients: continuing them a little past the picture's edge is right.)
    assert known.min() - 1 <= blue.min() and blue.max() <= known.max() + 1
