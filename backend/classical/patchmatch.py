"""Exemplar-based completion: coarse-to-fine PatchMatch with EM voting, finished by copying real pixels.

In the spirit of Wexler et al. 2007 (space-time completion), with Barnes et
al. 2009's PatchMatch for the search (backend.classical.nnf):

1. Working image: the crop pooled by a power of two, at least once when the
   hole is thick enough for a coarser level, and more while its longer side
   exceeds WORK_SIZE. All the searching happens there and above, so the cost
   of a 24-megapixel photo is that of a small crop plus one pass over the
   hole at full size. Coarse pixels average only known pixels. Two texture
   channels (Newson et al. 2014) ride along with the colours so that busy
   areas do not match flat ones.
2. Pyramid over the working image: halve while its smaller side stays >=
   `min_size` (fewer levels when the hole is already thin).
3. Coarsest level: fill the hole ring by ring from its border inward
   ("onion peel"), each pixel copied from the source patch that best
   matches its known surroundings, so edges and stripes entering the hole
   continue instead of being blurred away by a smooth first guess.
4. Every level down to the working image: a few EM iterations. Search the
   nearest source patch for every patch overlapping the hole, then vote:
   each hole pixel becomes the weighted mean of what the patches covering
   it say, patches that contain more known pixels weighing much more. Going
   one level finer, the match field is doubled and voted once first.
5. Full resolution (`finish`): the working image's match field, scaled up,
   says where each patch comes from; every hole pixel copies the real source
   pixel of the covering patch whose match agrees best with the working
   estimate at low frequencies. No pixel is a mean of several patches, so the
   texture is as sharp as the source's; comparing low frequencies only keeps
   that choice from favouring flat patches, which resemble a blurred estimate
   best. The copies' lowest frequencies (below twice the working scale)
   are then swapped for the working estimate's: that vote of many patches is
   closer to the truth there on average, and the texture above stays a real
   copy. From a working scale of 4 up, a pixel instead takes the match of
   whichever of its four nearest working pixels copies from where the
   estimate agrees best with the estimate at the pixel, so the seam between
   two copied areas follows the estimate rather than the block grid; and each
   block of one copy takes the estimate's mean, so neighbouring copies of
   different brightness do not tile a mosaic. From 8 up, each seam is also
   blended over a few pixels (what the neighbours' shifts say a pixel should
   be, averaged), where it would otherwise be a hard edge at 100 %; inside a
   copied area every neighbour says the same and the copy stays as sharp.
   A gradient-domain touch-up finally spreads the colour mismatch at the
   hole's border smoothly over the hole (it adds a smooth field, so it keeps
   the copied texture).

The working levels are mirror-padded by the patch radius so border pixels get
whole patches. Known pixels are returned untouched. Everything is tensor ops
(no Python loop over pixels), identical on CPU and CUDA; memory stays around a
few tens of floats per pixel of the working image, and per hole pixel at full
resolution.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from backend.classical.nnf import (
    Matches,
    SourcePatches,
    box_count,
    brute_force,
    dct_basis,
    gather_patches,
    upsample_field,
    valid_centres,
)
from backend.engines.base import Engine, InpaintOptions, Param, Progress
from backend.engines.poisson import harmonic_fill
from backend.engines.sampling import SourceTooSmall

Tensor = torch.Tensor

# The onion peel searches exactly among about this many source patches (then refines).
PEEL_SOURCES = 4096
# Without the grid (noise-like texture) the peel compares at most this many (hole pixel, source) pairs: about
# 5 s on 2 CPU cores. The largest such peel on the test split at 512 px (fur, 1.4e8 pairs) stays exact.
PEEL_PAIRS = 15 * 10**7
# The working image's longer side is at most this (a power-of-two fraction of the crop).
WORK_SIZE = 384
# At full resolution a pixel copies from the best of the patches centred within this distance.
FINISH_REACH = 1
# The finish takes from the working estimate the frequencies below this many times the working scale.
LOW_BAND = 2
# From this working scale up, each block the finish copies gets the working estimate's mean.
BLOCK_MEANS_FROM = 4
# From this working scale up, the finish picks each pixel's source by the estimate, not by the patches' costs.
SEAMS_BY_ESTIMATE_FROM = 4
# From this working scale up, seams between copies are blended over factor / 8 px on each side.
FEATHER_FROM = 8
# Below this spread (squared colour range) of the four nearest working pixels' sources, no choice is made.
SEAM_SPREAD = 3 * 0.03**2
# Votes (patch pixels) handled at once.
_VOTE_CHUNK = 2**21


def _pool_level(image: Tensor, hole: Tensor, level: int, any_hole: bool = False) -> tuple[Tensor, Tensor]:
    """Image and hole at 1 / 2**level size, pooled straight from the given resolution.

    A coarse pixel's value averages only known pixels, so hole content never
    leaks into sources. It is known when at least half of its footprint is,
    so thin holes stay thin instead of swelling level after level; with
    any_hole, only when all of it is (the working image: every hole pixel
    below it must be solved there).
    """
    if level == 0:
        return image * (1.0 - hole), hole
    f = 1 << level
    # ceil_mode: a footprint cut by the image's edge averages the pixels it has.
    known = 1.0 - hole
    known_share = F.avg_pool2d(known, f, ceil_mode=True)
    values = F.avg_pool2d(image * known, f, ceil_mode=True) / known_share.clamp(min=1e-6)
    limit = 1.0 - 0.5 / f**2 if any_hole else 0.5
    coarse_hole = (known_share < limit).to(image.dtype)
    return values * (1.0 - coarse_hole), coarse_hole


def _pool_source(source: Tensor, level: int) -> Tensor:
    """(1, 1, h, w) sampling area at 1 / 2**level size: a coarse pixel is in it only when all its footprint is,
    so nothing it averages comes from outside."""
    if level == 0:
        return source
    f = 1 << level
    h, w = source.shape[-2:]
    return -F.max_pool2d(F.pad(-source, (0, -w % f, 0, -h % f), value=0.0), f)


def _holds_patch(allowed: Tensor, level: int, patch_size: int) -> bool:
    """Whether the sampling area, pooled to 1 / 2**level and mirror-padded as the levels are, holds a whole patch."""
    return bool(valid_centres(_pad(_pool_source(allowed, level), patch_size // 2)[0, 0] > 0.5, patch_size).any())


def _dilate(mask: Tensor, radius: int) -> Tensor:
    """Square dilation of an (H, W) bool mask (a row pass, then a column pass)."""
    if radius <= 0:
        return mask
    k = 2 * radius + 1
    rows = F.max_pool2d(mask[None, None].to(torch.float32), (1, k), 1, (0, radius))
    return F.max_pool2d(rows, (k, 1), 1, (radius, 0))[0, 0] > 0


def _box(mask: Tensor, margin: int) -> tuple[slice, slice]:
    """Rows and columns of the bounding box of an (H, W) bool mask's set pixels, grown by margin (clamped)."""
    rows, cols = torch.nonzero(mask.any(1)).squeeze(1), torch.nonzero(mask.any(0)).squeeze(1)
    h, w = mask.shape
    return (slice(max(0, int(rows[0]) - margin), min(h, int(rows[-1]) + margin + 1)),
            slice(max(0, int(cols[0]) - margin), min(w, int(cols[-1]) + margin + 1)))


def level_count(hole: Tensor, patch_size: int, min_size: int, at_most: int | None = None) -> int:
    """Pyramid levels: halve while the smaller side stays >= min_size and the hole is thicker than a patch."""
    levels = 1
    while min(hole.shape[-2:]) >> levels >= min_size and (at_most is None or levels < at_most):
        coarse = (_pool_level(hole, hole, levels - 1)[1] if levels > 1 else hole)[0, 0] > 0.5
        inside = coarse[_box(coarse, patch_size)]  # the test is local to the hole: skip the rest of a large crop
        if not bool((~_dilate(~inside, patch_size // 2)).any()):
            break  # eroding the hole by a patch radius empties it: thin enough already
        levels += 1
    return levels


def texture_features(image: Tensor, hole: Tensor, window: int, factor: int = 1) -> Tensor:
    """(1, 2, H / factor, W / factor): mean |d/dx| and |d/dy| of the grey image over a window, known pixels only.

    Newson et al. (2014)'s texture features. Pooled down the pyramid with the
    colours, they tell a coarse patch how busy the fine texture beneath it
    is, so a busy area (roofs, foliage) does not match flat sand or water
    that happens to have the same mean colour. The gradients are taken at
    full resolution and pooled by `factor` at once; the window then shrinks
    by that factor, so it covers about the same pixels.
    """
    grey = image.mean(1)
    known = 1.0 - hole
    k = known[:, 0]
    # |d/dx|, |d/dy| where both pixels are known, and where that is so; written in place (large crops).
    parts = image.new_zeros(1, 4, *image.shape[-2:])
    torch.mul(k[..., :, 1:], k[..., :, :-1], out=parts[:, 2, :, :-1])
    torch.mul(k[..., 1:, :], k[..., :-1, :], out=parts[:, 3, :-1, :])
    torch.sub(grey[..., :, 1:], grey[..., :, :-1], out=parts[:, 0, :, :-1]).abs_().mul_(parts[:, 2, :, :-1])
    torch.sub(grey[..., 1:, :], grey[..., :-1, :], out=parts[:, 1, :-1, :]).abs_().mul_(parts[:, 3, :-1, :])
    if factor > 1:
        parts = F.avg_pool2d(parts, factor, ceil_mode=True)
        # Known as in the working image: the whole footprint is (see _pool_level's any_hole).
        known = (F.avg_pool2d(known, factor, ceil_mode=True) >= 1.0 - 0.5 / factor**2).to(image.dtype)
    window = max(1, window // factor) | 1
    if window > 1:
        r = window // 2
        parts = F.avg_pool2d(F.pad(parts, (r, r, r, r), mode="replicate"), window, stride=1)
    return parts[:, :2] / parts[:, 2:].clamp(min=1e-6) * known


def _pad(x: Tensor, r: int) -> Tensor:
    """Mirror r pixels out of every side, so border pixels get whole patches around them."""
    return F.pad(x, (r, r, r, r), mode="reflect") if r else x


def vote(image: Tensor, matches: Matches, patch_size: int, weight: Tensor | None = None,
         reach: int | None = None) -> tuple[Tensor, Tensor]:
    """What the matched patches say each pixel should be: their weighted mean.

    image: (C, H, W), the current estimate, which source pixels are read
    from; weight: (N,) one weight per match (default equal); reach: only the
    pixels within this distance of a patch's centre vote (default: all).
    Returns (votes (C, H, W), covered (H, W) bool); votes are 0 where no
    query patch covers the pixel.
    """
    c, h, w = image.shape
    r = patch_size // 2 if reach is None else reach
    # (HW, C + 1) pixels with a constant channel: one gather and one
    # scatter-add per patch row carry both the colours and the weight total.
    pixels = torch.cat([image.reshape(c, h * w), torch.ones_like(image[:1].reshape(1, h * w))]).T.contiguous()
    acc = torch.zeros_like(pixels)
    weight = torch.ones_like(matches.distance) if weight is None else weight
    k = torch.arange(-r, r + 1, device=image.device)[:, None]
    chunk = max(1, _VOTE_CHUNK // (2 * r + 1))
    for start in range(0, matches.query.numel(), chunk):  # bounded temporaries on big crops
        query = matches.query[start : start + chunk]
        source = matches.source[start : start + chunk]
        wt = weight[start : start + chunk].repeat(2 * r + 1)[:, None]
        for dy in range(-r, r + 1):  # one patch row at a time
            offsets = dy * w + k
            tgt = (query[None, :] + offsets).reshape(-1)
            src = (source[None, :] + offsets).reshape(-1)
            acc.index_add_(0, tgt, pixels.index_select(0, src).mul_(wt))
    total = acc[:, c]
    votes = (acc[:, :c] / total.clamp(min=1e-30)[:, None]).T.reshape(c, h, w)
    return votes, (total > 0).view(h, w)


def dct_keeps_detail(image: Tensor, source_ok: Tensor, basis: Tensor, patch_size: int, share: float = 0.8) -> bool:
    """Whether the DCT projection keeps `share` of the SSD between the image's source patches.

    True for photographs (patch differences live in low frequencies); false
    for noise-like textures (grain, fine tiled patterns), where comparing
    projections would not tell patches apart and whole patches are needed.
    Measured on pairs of source patches spread evenly over the image.
    """
    src = torch.nonzero(source_ok.reshape(-1)).squeeze(1)
    if src.numel() < 4:
        return True
    pick = src[torch.linspace(0, src.numel() - 1, min(src.numel() // 2 * 2, 2048), device=src.device).long()]
    patches = gather_patches(image, pick, patch_size)
    half = patches.shape[0] // 2
    diff = patches[:half] - patches[half : 2 * half]
    kept = (diff @ basis.flatten(1).T).pow(2).sum()
    return bool(kept >= share * diff.pow(2).sum())


def onion_peel(image: Tensor, hole: Tensor, source: Tensor, patch_size: int, max_sources: int | None = None,
               pairs: int = PEEL_PAIRS) -> Tensor:
    """Fill the hole of image (C, H, W) ring by ring from its border inward.

    Each ring pixel copies the centre of the source patch that best matches
    the pixels already known or filled around it (unknown pixels ignored).
    Edges and stripes entering the hole are carried in from every side,
    where a smooth fill would blur them away. The search is exact over a
    grid of sources thinned to about `max_sources` (default PEEL_SOURCES,
    0 = no grid), then refined among the 8 neighbours of the winner.
    Without the grid (noise-like texture, where a neighbour of a good source
    is no better than any other) the search is exact over a random subset of
    the sources small enough for `pairs` comparisons in all: a random subset
    still holds every phase of a fine periodic pattern, which a grid would
    alias, and the cost of a huge noisy hole stays bounded.
    Hole pixels too close to the border to centre a patch keep their value.
    """
    c, h, w = image.shape
    ok = valid_centres(source, patch_size)
    if not bool(ok.any()):
        return image
    fits = valid_centres(torch.ones_like(hole), patch_size)
    limit = PEEL_SOURCES if max_sources is None else max_sources
    thin = ok
    step = 1
    while limit and int(thin.sum()) > limit:
        step *= 2
        thin = ok.clone()
        thin[torch.arange(h, device=ok.device) % step != 0] = False
        thin[:, torch.arange(w, device=ok.device) % step != 0] = False
    ok_flat = ok.reshape(-1)
    src = torch.nonzero(thin.reshape(-1)).squeeze(1)
    keep = pairs // max(1, int((hole & fits).sum()))
    if not limit and src.numel() > keep:
        chosen = torch.randperm(src.numel(), generator=torch.Generator().manual_seed(0))[: max(keep, 1)]
        src = src[chosen.sort().values.to(src.device)]
    est = image.clone()
    flat = est.view(c, h * w)
    sf = gather_patches(est, src, patch_size)  # sources are known pixels: fixed during the peel
    near = torch.ones(1, 1, 3, 3, dtype=image.dtype, device=image.device)
    ring_offsets = torch.tensor([dy * w + dx for dy in (-1, 0, 1) for dx in (-1, 0, 1)], device=image.device)
    filled = ~hole
    while True:
        ring = (F.conv2d(filled[None, None].to(image.dtype), near, padding=1)[0, 0] > 0) & ~filled
        if not bool(ring.any()):
            break
        q = torch.nonzero((ring & fits).reshape(-1)).squeeze(1)
        if q.numel():
            qf = gather_patches(est, q, patch_size)
            qw = gather_patches(filled[None].to(image.dtype), q, patch_size)
            index, _ = brute_force(qf, sf, qw)
            best = src[index]
            if step > 1:  # refine among the winner's neighbours the thinning skipped
                cand = (best[None, :] + ring_offsets[:, None] * (step // 2)).clamp(0, h * w - 1)
                cand = torch.where(ok_flat[cand], cand, best[None, :])
                patches = gather_patches(est, cand.reshape(-1), patch_size).view(9, q.numel(), c, -1)
                d = ((patches - qf.view(1, -1, c, qw.shape[1])) ** 2 * qw[None, :, None, :]).sum((2, 3))
                best = cand.gather(0, d.argmin(0)[None])[0]
            flat[:, q] = flat[:, best]
        filled = filled | ring
    return est


def _field_matches(field: Tensor, queries: Tensor, source_ok: Tensor) -> Matches:
    """Matches read off a (e.g. upsampled) field, without entries that point at no valid source."""
    h, w = queries.shape
    q = torch.nonzero(queries.reshape(-1)).squeeze(1)
    f = field.reshape(-1, 2)[q]
    ok = (f[:, 0] >= 0) & (f[:, 0] < h) & (f[:, 1] >= 0) & (f[:, 1] < w)
    src = f[:, 0].clamp(0, h - 1) * w + f[:, 1].clamp(0, w - 1)
    ok &= source_ok.reshape(-1)[src]
    return Matches(q[ok], src[ok], torch.zeros_like(src[ok], dtype=torch.float32), (h, w), (h, w))


def _settle(est: Tensor, hole: Tensor, matches: Matches, patch_size: int, trust: Tensor | None,
            reach: int | None) -> Tensor:
    """The estimate after a vote (trust: per-centre weights)."""
    votes, covered = vote(est, matches, patch_size, None if trust is None else trust[matches.query], reach=reach)
    return torch.where(hole & covered, votes, est)


def em_schedule(levels: int, iterations: int) -> list[int]:
    """EM iterations per working level, coarsest first: `iterations`, then halving, at least one each."""
    return [max(1, iterations >> i) for i in range(levels)]


def working_scale(size: tuple[int, int], levels: int, patch_size: int, work_size: int = WORK_SIZE) -> int:
    """Halvings from the crop to the working image (see the module docstring).

    At least one when the hole allows a coarser level (levels > 1), more while
    the longer side exceeds work_size; never so many that the smaller side
    drops under three patches.
    """
    k = 1 if levels > 1 else 0
    while max(size) >> k > work_size and min(size) >> (k + 1) >= 3 * patch_size:
        k += 1
    return k


def low_frequency_distance(image: Tensor, matches: Matches, patch_size: int, chunk: int = 2**16) -> Tensor:
    """(N,) SSD between each query patch of image (C, H, W) and its matched source patch, at low frequencies.

    Both patches are projected on the mean and the two first cosines (DCT
    u + v <= 1) of every channel: how well the two agree in colour and slope,
    whatever finer texture either holds.
    """
    c = image.shape[0]
    p = patch_size
    n = torch.arange(p, dtype=torch.float64)
    flat = torch.full((p,), 1 / math.sqrt(p), dtype=torch.float64)
    wave = torch.cos(math.pi * (2 * n + 1) / (2 * p)) * math.sqrt(2 / p)
    shapes = [flat[:, None] * flat[None, :], wave[:, None] * flat[None, :], flat[:, None] * wave[None, :]]
    basis = torch.zeros(3 * c, c, p, p, dtype=torch.float64)
    for ch in range(c):
        for i, shape in enumerate(shapes):
            basis[3 * ch + i, ch] = shape
    basis = basis.flatten(1).T.to(image.device, image.dtype)
    out = torch.empty(matches.query.numel(), dtype=image.dtype, device=image.device)
    for start in range(0, out.numel(), chunk):
        q = gather_patches(image, matches.query[start : start + chunk], patch_size) @ basis
        s = gather_patches(image, matches.source[start : start + chunk], patch_size) @ basis
        out[start : start + chunk] = (q - s).pow_(2).sum(1)
    return out


def _reflect(i: Tensor, n: int) -> Tensor:
    """Indices mirrored back into 0..n-1, as F.pad's reflect mode lays them out."""
    i = torch.where(i < 0, -i, i)
    return torch.where(i >= n, 2 * (n - 1) - i, i).clamp(0, n - 1)


def finish(image: Tensor, hole: Tensor, matches: Matches, cost: Tensor, factor: int, pad: int,
           estimate: Tensor, patch_size: int, reach: int = FINISH_REACH, allowed: Tensor | None = None) -> Tensor:
    """The full-resolution result (1, C, H, W): every hole pixel copies one real pixel of `image`.

    matches: the working image's (mirror-padded by `pad`). A full-resolution
        patch inherits the match of the working pixel it lies in, scaled by
        `factor`: the shift from it to its source is `factor` times its
        working pixel's.
    cost: (N,) how far each match is from the working estimate (lower is better).
    estimate: (C, h, w) the padded working estimate, for pixels no match can serve.
    Each pixel copies what the covering patch of lowest cost says, among the
    patches centred within `reach` of it (from SEAMS_BY_ESTIMATE_FROM up: by
    the estimate, see _pick_by_estimate); source pixels in the hole never
    count. Then the mismatch between the copies and the known pixels of a ring
    around the hole is spread smoothly over the hole (harmonic interpolation),
    which evens out colour seams without smoothing the copied texture. Work
    and memory scale with the hole, not with the image.
    allowed: (1, 1, H, W) the sampling area, if any: pixels are copied only
        from it, and known pixels outside it give no residual (their colour
        must not seep in through the touch-up either).
    """
    c, H, W = image.shape[1:]
    dev = image.device
    hole2 = hole[0, 0] > 0.5
    ring = patch_size // 2
    rows, cols = _box(hole2, ring + 1)
    sub_hole = hole2[rows, cols]
    py, px = torch.nonzero(_dilate(sub_hole, ring), as_tuple=True)
    py, px = py + rows.start, px + cols.start
    # Per working pixel (padded grid): its match as a shift in unpadded working pixels, and its cost.
    hp, wp = matches.query_size
    h, w = -(-H // factor), -(-W // factor)
    sy = _reflect(torch.div(matches.source, wp, rounding_mode="floor") - pad, h)
    sx = _reflect(matches.source % wp - pad, w)
    shift_y = torch.zeros(hp * wp, dtype=torch.long, device=dev)
    shift_x = torch.zeros_like(shift_y)
    shift_y[matches.query] = sy - (torch.div(matches.query, wp, rounding_mode="floor") - pad)
    shift_x[matches.query] = sx - (matches.query % wp - pad)
    cost_of = torch.full((hp * wp,), math.inf, dtype=cost.dtype, device=dev)
    cost_of[matches.query] = cost
    in_hole = hole2.reshape(-1)
    if allowed is not None:
        in_hole = in_hole | (allowed[0, 0] < 0.5).reshape(-1)  # outside the sampling area: never a source
    est_box = _estimate_on_box(estimate, rows, cols, factor, pad).to(image.dtype)
    if factor >= SEAMS_BY_ESTIMATE_FROM:
        pick = _pick_by_estimate(py, px, rows, cols, shift_y, shift_x, cost_of, in_hole, estimate, est_box, factor,
                                 pad, (H, W), (hp, wp))
    else:
        pick = _pick_by_cost(py, px, shift_y, shift_x, cost_of, in_hole, factor, pad, reach, (H, W), (hp, wp))
    if factor >= FEATHER_FROM:
        values = _feather_seams(image, pick, py, px, rows, cols, in_hole, factor // 8)
    else:
        values = image[0].reshape(c, H * W)[:, pick.clamp(min=0)]
    missing = pick < 0
    if bool(missing.any()):  # e.g. no source patch fits anywhere: the working estimate, smoothly scaled up
        values[:, missing] = est_box[:, py[missing] - rows.start, px[missing] - cols.start]
    values = _low_from_estimate(image, hole2, values, py, px, rows, cols, est_box, factor)
    if factor >= BLOCK_MEANS_FROM:
        values = _block_means_from_estimate(values, hole2, py, px, rows, cols, est_box, factor)
    # Gradient-domain touch-up on the hole's box. The correction is smooth: at a large
    # factor it is solved on the box pooled by factor / 2 and scaled back up.
    known = ~hole2[py, px]
    anchor = known if allowed is None else known & (allowed[0, 0, py, px] > 0.5)
    residual = torch.zeros(1, c, *sub_hole.shape, dtype=image.dtype, device=dev)
    residual[0, :, py[anchor] - rows.start, px[anchor] - cols.start] = image[0][:, py[anchor], px[anchor]] - values[:, anchor]
    known_box = (~sub_hole).to(image.dtype)[None, None]
    level = max(0, factor.bit_length() - 2)
    coarse, coarse_hole = _pool_level(residual, 1.0 - known_box, level)
    correction = harmonic_fill(coarse, 1.0 - coarse_hole)
    if level:
        correction = F.interpolate(correction, scale_factor=1 << level, mode="bilinear", align_corners=False)
    fill = ~known
    fy, fx = py[fill] - rows.start, px[fill] - cols.start
    out = image.clone()
    touched = values[:, fill] + correction[0][:, fy, fx]
    # Like the low-frequency swap, the smooth correction must not take a colour past the range of the known
    # pixels around (on a fine two-tone pattern it can overshoot); a copy already outside keeps its value.
    touched = _within_known_range(touched, values[:, fill], image[0][:, py[known], px[known]])
    out[0][:, py[fill], px[fill]] = touched.clamp(0, 1)
    return out


def _pick_by_cost(py: Tensor, px: Tensor, shift_y: Tensor, shift_x: Tensor, cost_of: Tensor, in_hole: Tensor,
                  factor: int, pad: int, reach: int, size: tuple[int, int], padded: tuple[int, int]) -> Tensor:
    """Each pixel's source (flat index, -1: none): what the covering patch of lowest cost says, among the
    patches centred within `reach` of it."""
    H, W = size
    hp, wp = padded
    best = torch.full(py.shape, math.inf, dtype=cost_of.dtype, device=py.device)
    pick = torch.full(py.shape, -1, dtype=torch.long, device=py.device)
    # The working pixels holding the centres of the patches that cover a pixel, row and column ranges.
    ylo, yhi = torch.div(py - reach, factor, rounding_mode="floor"), torch.div(py + reach, factor, rounding_mode="floor")
    xlo, xhi = torch.div(px - reach, factor, rounding_mode="floor"), torch.div(px + reach, factor, rounding_mode="floor")
    span = 2 * reach // factor + 2
    for a in range(span):
        cy = ylo + a
        for b in range(span):
            cx = xlo + b
            ok = (cy <= yhi) & (cx <= xhi) & (cy >= 0) & (cy * factor < H) & (cx >= 0) & (cx * factor < W)
            at = (cy + pad).clamp(0, hp - 1) * wp + (cx + pad).clamp(0, wp - 1)
            src = (py + factor * shift_y[at]).clamp(0, H - 1) * W + (px + factor * shift_x[at]).clamp(0, W - 1)
            score = torch.where(ok & ~in_hole[src], cost_of[at], math.inf)
            better = score < best
            best = torch.where(better, score, best)
            pick = torch.where(better, src, pick)
    return pick


def _sample_estimate(estimate: Tensor, y: Tensor, x: Tensor, factor: int, pad: int) -> Tensor:
    """(C, *y.shape) the padded working estimate (C, he, we), bilinear at full-resolution pixels (y, x)."""
    he, we = estimate.shape[1:]
    gy = ((y.to(estimate.dtype) + 0.5) / factor + pad) / he * 2 - 1
    gx = ((x.to(estimate.dtype) + 0.5) / factor + pad) / we * 2 - 1
    grid = torch.stack([gx, gy], -1).reshape(1, 1, -1, 2)
    return F.grid_sample(estimate[None], grid, mode="bilinear", align_corners=False)[0, :, 0].reshape(-1, *y.shape)


def _pick_by_estimate(py: Tensor, px: Tensor, rows: slice, cols: slice, shift_y: Tensor, shift_x: Tensor,
                      cost_of: Tensor, in_hole: Tensor, estimate: Tensor, est_box: Tensor, factor: int, pad: int,
                      size: tuple[int, int], padded: tuple[int, int]) -> Tensor:
    """Each pixel's source (flat index, -1: none) among the shifts of its four nearest working pixels: the
    one whose source's low frequencies (the working estimate there) agree best with the estimate at the pixel.

    At a large factor the shift changes only between working pixels, and choosing by the patches' costs
    puts the seam where two copied regions meet (a pale area beside grey plumage) on the block grid: a
    staircase at 100 %. Chosen per pixel against the smooth estimate, it follows the estimate's own
    transition instead."""
    H, W = size
    hp, wp = padded
    h, w = -(-H // factor), -(-W // factor)
    wy = torch.div(2 * py + 1 - factor, 2 * factor, rounding_mode="floor")  # the working pixel above-left
    wx = torch.div(2 * px + 1 - factor, 2 * factor, rounding_mode="floor")

    def sources(cy: Tensor, cx: Tensor, py: Tensor, px: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        at = (cy.clamp(0, h - 1) + pad) * wp + (cx.clamp(0, w - 1) + pad)
        sy, sx = py + factor * shift_y[at], px + factor * shift_x[at]
        ok = (sy >= 0) & (sy < H) & (sx >= 0) & (sx < W)
        src = sy.clamp(0, H - 1) * W + sx.clamp(0, W - 1)
        # A source outside the hole, of a working pixel with a match.
        return src, ok & ~in_hole[src] & torch.isfinite(cost_of[at]), sy, sx

    # Where the four neighbours' sources hold about the same low frequencies (most of the hole) the choice
    # does not matter: the pixel keeps its own working pixel's. Told apart on the working grid, cheaply.
    gy = torch.arange(-1, h + 1, device=py.device).clamp(0, h - 1)
    gx = torch.arange(-1, w + 1, device=py.device).clamp(0, w - 1)
    at = (gy[:, None] + pad) * wp + gx[None, :] + pad
    sy = (gy[:, None] + shift_y[at] + pad).clamp(0, estimate.shape[1] - 1)
    sx = (gx[None, :] + shift_x[at] + pad).clamp(0, estimate.shape[2] - 1)
    colour = torch.where(torch.isfinite(cost_of[at]), estimate[:, sy, sx], math.inf)  # (C, h + 2, w + 2)
    corners = torch.stack([colour[:, :-1, :-1], colour[:, 1:, :-1], colour[:, :-1, 1:], colour[:, 1:, 1:]])
    spread = (corners.amax(0) - corners.amin(0)).nan_to_num(math.inf).pow(2).sum(0)  # (h + 1, w + 1)
    same = spread <= SEAM_SPREAD
    src, ok, _, _ = sources(torch.div(py, factor, rounding_mode="floor"), torch.div(px, factor, rounding_mode="floor"),
                            py, px)
    pick = torch.where(ok, src, -1)
    todo = torch.nonzero(~(same[wy + 1, wx + 1] & ok)).squeeze(1)
    if todo.numel():
        step = torch.tensor([0, 1], device=py.device)
        qy, qx = py[todo], px[todo]
        src, ok, sy, sx = sources(wy[todo][None, :] + step.repeat_interleave(2)[:, None],
                                  wx[todo][None, :] + step.repeat(2)[:, None], qy, qx)  # (4, n): the neighbours
        target = est_box[:, qy - rows.start, qx - cols.start]
        d = (_sample_estimate(estimate, sy, sx, factor, pad) - target[:, None]).pow_(2).sum(0)
        best, which = torch.where(ok, d, math.inf).min(0)
        pick[todo] = torch.where(torch.isfinite(best), src.gather(0, which[None])[0], -1)
    return pick


def _feather_seams(image: Tensor, pick: Tensor, py: Tensor, px: Tensor, rows: slice, cols: slice, in_hole: Tensor,
                   reach: int) -> Tensor:
    """(C, N) each pixel's copy, averaged with what its neighbours' sources say it should be (their shift
    applied at the pixel), for neighbours up to `reach` px away along the rows and columns. Where neighbours
    copy from one place (inside a copied area) they all say the same and nothing changes; along a seam
    between two copies the two are blended over a few pixels instead of meeting at a hard edge."""
    c, H, W = image.shape[1:]
    flat = image[0].reshape(c, H * W)
    bh, bw = rows.stop - rows.start, cols.stop - cols.start
    fy, fx = py - rows.start, px - cols.start
    dense = torch.full((bh, bw), -1, dtype=torch.long, device=pick.device)
    dense[fy, fx] = pick
    ok = pick >= 0
    total = torch.where(ok, 1.0, 0.0).to(image.dtype)
    acc = flat[:, pick.clamp(min=0)] * total
    for d in range(1, reach + 1):
        for dy, dx in ((0, d), (0, -d), (d, 0), (-d, 0)):
            ny, nx = fy + dy, fx + dx
            inside = (ny >= 0) & (ny < bh) & (nx >= 0) & (nx < bw)
            n = dense[ny.clamp(0, bh - 1), nx.clamp(0, bw - 1)]
            sy = torch.div(n, W, rounding_mode="floor") - dy
            sx = n % W - dx
            good = inside & (n >= 0) & (sy >= 0) & (sy < H) & (sx >= 0) & (sx < W)
            src = sy.clamp(0, H - 1) * W + sx.clamp(0, W - 1)
            good &= ~in_hole[src] & ok
            weight = good.to(image.dtype)
            acc += flat[:, src] * weight
            total += weight
    return acc / total.clamp(min=1)


def _block_means_from_estimate(values: Tensor, hole2: Tensor, py: Tensor, px: Tensor, rows: slice, cols: slice,
                               est_box: Tensor, factor: int) -> Tensor:
    """Each factor x factor block of copies shifted to the working estimate's mean over that block.

    At a large factor every block is one copy from wherever its working pixel's match points, and
    neighbouring copies differ in brightness: a mosaic at 100 %. Their means then follow the smooth
    estimate; what varies inside a block, the copied texture, stays as it was."""
    fill = hole2[py, px]
    fy, fx = py[fill], px[fill]
    ny, nx = -(-hole2.shape[0] // factor), -(-hole2.shape[1] // factor)
    cell = torch.div(fy, factor, rounding_mode="floor") * nx + torch.div(fx, factor, rounding_mode="floor")
    count = torch.zeros(ny * nx, dtype=values.dtype, device=values.device).index_add_(
        0, cell, torch.ones_like(cell, dtype=values.dtype))
    delta = torch.zeros(values.shape[0], ny * nx, dtype=values.dtype, device=values.device)
    delta.index_add_(1, cell, est_box[:, fy - rows.start, fx - cols.start] - values[:, fill])
    out = values.clone()
    out[:, fill] = values[:, fill] + (delta / count.clamp(min=1))[:, cell]
    return out


def _estimate_on_box(estimate: Tensor, rows: slice, cols: slice, factor: int, pad: int) -> Tensor:
    """(C, h, w) the padded working estimate (C, he, we), bilinearly scaled up onto the full-resolution box."""
    def axis(span: slice, n: int) -> Tensor:
        at = torch.arange(span.start, span.stop, dtype=estimate.dtype, device=estimate.device)
        return ((at + 0.5) / factor + pad) / n * 2 - 1  # grid_sample's coordinates, align_corners=False

    grid = torch.stack(torch.meshgrid(axis(cols, estimate.shape[2]), axis(rows, estimate.shape[1]), indexing="xy"), -1)
    return F.grid_sample(estimate[None], grid[None], mode="bilinear", align_corners=False)[0]


def _within_known_range(values: Tensor, copies: Tensor, known: Tensor) -> Tensor:
    """values (C, N) kept within the per-channel range of the known pixels (C, M), or of the copy (C, N) where
    that already lies outside: a smooth field added to a sharp copy must not overshoot at its extremes."""
    if not known.shape[1]:  # the whole crop is hole: nothing to keep to
        return values
    lo, hi = known.amin(1, keepdim=True), known.amax(1, keepdim=True)
    return torch.maximum(torch.minimum(values, torch.maximum(hi, copies)), torch.minimum(lo, copies))


def _low_from_estimate(image: Tensor, hole2: Tensor, values: Tensor, py: Tensor, px: Tensor, rows: slice, cols: slice,
                       est_box: Tensor, factor: int) -> Tensor:
    """The copies (C, N) at (py, px) with their lowest frequencies taken from the working estimate instead.

    The working estimate is a vote of many patches: at low frequencies it is
    closer to the truth, on average, than any single copy, while the copy
    carries the real texture. Only frequencies below LOW_BAND times the
    working scale (at least 2 px) are swapped, so the texture stays whole.
    est_box: the working estimate on the box (_estimate_on_box).
    """
    box = image[0][:, rows, cols].clone()
    hole_box = hole2[rows, cols]
    fy, fx = py - rows.start, px - cols.start
    fill = hole_box[fy, fx]
    box[:, fy[fill], fx[fill]] = values[:, fill]
    bh, bw = box.shape[-2:]
    est_box = torch.where(hole_box, est_box, box)
    s = LOW_BAND * max(2, factor)
    low = lambda t: F.interpolate(F.avg_pool2d(t[None], s, ceil_mode=True), size=(bh, bw), mode="bilinear",
                                  align_corners=False)[0]
    delta = low(est_box) - low(box)
    swapped = values[:, fill] + delta[:, fy[fill], fx[fill]]
    # The swap must not take a colour past the range of the known pixels around (a smooth field added
    # to a sharp copy can overshoot at its extremes); a copy already outside that range keeps its own value.
    swapped = _within_known_range(swapped, values[:, fill], box[:, ~hole_box])
    out = values.clone()
    out[:, fill] = swapped
    return out


def _solve(work: Tensor, hole: Tensor, patch_size: int, iterations: int, search_iterations: int,
           band: int | None, generator: torch.Generator | None, progress: Progress | None, min_size: int,
           colours: int, anchor_power: float, anchor_floor: float, scale: int,
           allowed: Tensor | None = None) -> tuple[Tensor, Matches | None, int]:
    """Coarse-to-fine EM on the working image (allowed: the full-resolution sampling area, if any).

    Returns its padded estimate (C, h, w), the last matches (None: no source
    patch fits anywhere) and the number of levels.
    """
    r = patch_size // 2
    levels = level_count(hole, patch_size, min_size)
    while allowed is not None and levels > 1 and not _holds_patch(allowed, scale + levels - 1, patch_size):
        levels -= 1  # a coarser level would hold no whole patch of the sampling area
    schedule = em_schedule(levels, iterations)
    estimate = None  # (1, C, h, w) result of the level above, unpadded
    field = None  # its match field, in that level's padded coordinates
    matches = None
    for n, level in enumerate(range(levels - 1, -1, -1)):
        if progress is not None:
            progress(n / (levels + 1), f"level {n + 1} of {levels}")
        img, hl = _pool_level(work, hole, level)
        h, w = img.shape[-2:]
        if estimate is None:
            estimate = harmonic_fill(img, 1.0 - hl)
        else:
            up = F.interpolate(estimate, size=(h, w), mode="bilinear", align_corners=False)
            estimate = torch.where(hl > 0.5, up, img)
        # Each level is worked on mirror-padded, so border pixels get whole patches.
        est = _pad(estimate, r)[0]
        hole_b = _pad(hl, r)[0, 0] > 0.5
        # Centres of all patches that overlap the hole, kept whole patches inside the padded
        # level: a hole at the image border, mirrored into the pad, would otherwise put
        # centres within r of the edge (the r of padding already lets every real pixel be one).
        queries = _dilate(hole_b, r) & valid_centres(torch.ones_like(hole_b), patch_size)
        source = ~hole_b
        if allowed is not None:
            source &= _pad(_pool_source(allowed, level + scale), r)[0, 0] > 0.5
        if band is not None:
            banded = source & _dilate(hole_b, max(band >> (level + scale), 2 * patch_size))
            if bool(valid_centres(banded, patch_size).any()):
                source = banded  # else the band is too thin to hold a patch: use the whole crop
        # Patches that see more of the real image are trusted more in the vote.
        trust = (box_count(~hole_b, patch_size).reshape(-1).to(est.dtype) / patch_size**2 + anchor_floor) ** anchor_power

        source_ok = valid_centres(source, patch_size)
        basis = None
        if colours == 3:
            basis = dct_basis(patch_size, extra_channels=est.shape[0] - 3, device=est.device, dtype=est.dtype)
            if not dct_keeps_detail(est, source_ok, basis, patch_size):
                basis = None  # noise-like texture: compare whole patches, search them all
        if field is None:
            est = onion_peel(est, hole_b, source, patch_size, None if basis is not None else 0)
        else:
            field = upsample_field(field, tuple(hole_b.shape), pad=r)
            # The doubled field's matches were found a level up: trusting them
            # equally spreads the copied texture evenly.
            est = _settle(est, hole_b, _field_matches(field, queries, source_ok), patch_size, None, None)
        # Source patches lie wholly in known pixels: describe them once per level.
        sources = SourcePatches(est, source, patch_size, dims=24 if colours != 3 else None, basis=basis)
        n_em = schedule[n]
        for step in range(n_em):
            if progress is not None:
                progress((n + step / n_em) / (levels + 1), f"level {n + 1} of {levels}")
            found = sources.search(est, queries, iterations=search_iterations, generator=generator, init=field)
            if found.query.numel() == 0:
                break  # no source patch fits anywhere: keep the smooth fill
            matches = found
            # Vote only with the 3x3 middle of each patch: a sharper estimate
            # steers the next search to coherent copies instead of flat areas.
            est = _settle(est, hole_b, matches, patch_size, trust, 1)
            field = matches.field()
        if field is None:
            field = torch.full((*hole_b.shape, 2), -1, dtype=torch.long, device=work.device)
        estimate = est[None, :, r : r + h, r : r + w]
    return est, matches, levels


def complete(
    image: Tensor,
    hole: Tensor,
    patch_size: int = 7,
    iterations: int = 6,
    search_iterations: int = 2,
    band: int | None = None,
    source: Tensor | None = None,
    generator: torch.Generator | None = None,
    progress: Progress | None = None,
    min_size: int = 100,
    texture: float = 2.0,
    anchor_power: float = 4.0,
    anchor_floor: float = 0.02,
    work_size: int = WORK_SIZE,
) -> Tensor:
    """Fill `hole` (1, 1, H, W; 1 = fill) in `image` (1, C, H, W); see the module docstring.

    iterations: EM iterations at the coarsest level (halving at each finer one).
    search_iterations: PatchMatch iterations per EM search.
    band: if given, source patches come only from known pixels within this
        many pixels (at full resolution) of the hole.
    source: (1, 1, H, W), if given patches are copied only from where it is
        > 0.5, wholly inside it at every level (a finer working image and
        fewer levels where a coarse one would hold no whole patch);
        SourceTooSmall when even full resolution holds none.
    min_size: the coarsest level's smaller side stays at least this.
    texture: weight of the texture features (0 = colours only; RGB only).
    anchor_power, anchor_floor: a match votes with weight
        (share of known pixels in its query patch + floor) ** power.
    work_size: the working image's longer side stays at most this.
    """
    r = patch_size // 2
    hole = (hole > 0.5).to(image.dtype)
    if not bool(hole.any()):
        return image.clone()
    if min(image.shape[-2:]) < patch_size:  # not even one whole patch: fill smoothly
        return harmonic_fill(image, 1.0 - hole).clamp(0, 1)
    min_size = max(min_size, 3 * patch_size)
    scale = working_scale(tuple(image.shape[-2:]), level_count(hole, patch_size, min_size, at_most=2), patch_size,
                          work_size)
    allowed = None
    if source is not None:
        allowed = ((source > 0.5) & (hole < 0.5)).to(image.dtype)
        if not _holds_patch(allowed, 0, patch_size):
            raise SourceTooSmall(f"the sampling area holds no whole {patch_size}x{patch_size} patch of known pixels")
        while scale > 0 and not _holds_patch(allowed, scale, patch_size):
            scale -= 1
    colours = image.shape[1]
    work, work_hole = _pool_level(image, hole, scale, any_hole=True)
    if texture > 0 and colours == 3:
        work = torch.cat([work, texture * texture_features(image, hole, patch_size, 1 << scale)], 1)
    est, matches, levels = _solve(work, work_hole, patch_size, iterations, search_iterations, band, generator,
                                  progress, min_size, colours, anchor_power, anchor_floor, scale, allowed)
    if progress is not None:
        progress(levels / (levels + 1), "full resolution")
    if matches is None:  # nothing to copy from anywhere: the smooth working estimate, scaled up
        none = torch.zeros(0, dtype=torch.long, device=image.device)
        matches = Matches(none, none, none.to(image.dtype), tuple(est.shape[-2:]), tuple(est.shape[-2:]))
    cost = low_frequency_distance(est[:colours], matches, patch_size)
    return finish(image, hole, matches, cost, 1 << scale, r, est[:colours], patch_size, allowed=allowed)


class PatchMatchEngine(Engine):
    id = "patchmatch"
    method = "patchmatch"
    kind = "classical"
    copies_patches = True
    description = (
        "Rebuilds the selection from patches of the surrounding image (PatchMatch + EM voting). "
        "Best for texture and background: grass, sky, walls, water. No model needed."
    )
    params = {
        "patch_size": Param(int, 7, "patch width in pixels (odd): larger keeps bigger structures, smaller fits tighter", 3, 21, odd=True),
        "sampling": Param(str, "image", "where patches come from: the whole crop, or a band of known pixels around the selection", choices=("image", "band")),
        "band": Param(int, 64, "band width in pixels when sampling is 'band'", 4, 4096),
        "iterations": Param(int, 6, "EM (search + vote) iterations at the coarsest level, halved at each finer one", 1, 30),
        "search": Param(int, 2, "PatchMatch iterations per search", 1, 20),
    }

    def inpaint(self, image: Tensor, hole: Tensor, options: InpaintOptions, progress: Progress) -> Tensor:
        p = options.params
        patch_size = p.get("patch_size", 7)
        band = p.get("band", 64) if p.get("sampling", "image") == "band" else None
        out = complete(
            image, hole, patch_size=patch_size, iterations=p.get("iterations", 6),
            search_iterations=p.get("search", 2), band=band, source=options.source,
            generator=options.generator(image.device), progress=progress,
        )
        progress(1.0, "done")
        return out
