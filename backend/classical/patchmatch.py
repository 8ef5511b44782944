"""Exemplar-based completion: coarse-to-fine PatchMatch with EM voting.

In the spirit of Wexler et al. 2007 (space-time completion), with Barnes et
al. 2009's PatchMatch for the search (backend.classical.nnf):

1. Pyramid: halve the crop while its smaller side stays >= `min_size`
   (fewer levels when the hole is already thin). Coarse pixels average only
   known pixels. Two texture channels (Newson et al. 2014) ride along with
   the colours so that busy areas do not match flat ones.
2. Coarsest level: fill the hole ring by ring from its border inward
   ("onion peel"), each pixel copied from the source patch that best
   matches its known surroundings, so edges and stripes entering the hole
   continue instead of being blurred away by a smooth first guess.
3. Each level but the full-resolution one: a few EM iterations. Search the
   nearest source patch for every patch overlapping the hole, then vote:
   each hole pixel becomes the weighted mean of what the patches covering
   it say, patches that contain more known pixels weighing much more.
4. Going one level finer, the match field is doubled (not searched afresh)
   and voted once; at full resolution that vote is the result, after a
   gradient-domain touch-up that evens out colour seams at the border.

All levels are mirror-padded by the patch radius so border pixels get whole
patches. Known pixels are returned untouched. Everything is tensor ops (no
Python loop over pixels), identical on CPU and CUDA; memory stays around a
few tens of floats per pixel of the crop.
"""
from __future__ import annotations

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
# Votes (patch pixels) handled at once.
_VOTE_CHUNK = 2**21


def _pool_level(image: Tensor, hole: Tensor, level: int) -> tuple[Tensor, Tensor]:
    """Image and hole at 1 / 2**level size, pooled straight from full resolution.

    A coarse pixel is known when at least half of its footprint is, and its
    value averages only known pixels: hole content never leaks into sources,
    and thin holes stay thin instead of swelling level after level.
    """
    if level == 0:
        return image * (1.0 - hole), hole
    f = 1 << level
    h, w = image.shape[-2:]
    pad = (0, -w % f, 0, -h % f)
    known = 1.0 - hole
    inside = F.avg_pool2d(F.pad(torch.ones_like(hole), pad), f)
    known_share = F.avg_pool2d(F.pad(known, pad), f)
    values = F.avg_pool2d(F.pad(image * known, pad), f) / known_share.clamp(min=1e-6)
    coarse_hole = (known_share < 0.5 * inside).to(image.dtype)
    return values * (1.0 - coarse_hole), coarse_hole


def _pool_source(source: Tensor, level: int) -> Tensor:
    """(1, 1, h, w) sampling area at 1 / 2**level size: a coarse pixel is in it only when all its footprint is,
    so nothing it averages comes from outside."""
    if level == 0:
        return source
    f = 1 << level
    h, w = source.shape[-2:]
    return -F.max_pool2d(F.pad(-source, (0, -w % f, 0, -h % f), value=0.0), f)


def _dilate(mask: Tensor, radius: int) -> Tensor:
    """Square dilation of an (H, W) bool mask."""
    return box_count(mask, 2 * radius + 1) > 0 if radius > 0 else mask


def level_count(hole: Tensor, patch_size: int, min_size: int) -> int:
    """Pyramid levels: halve while the smaller side stays >= min_size and the hole is thicker than a patch."""
    levels = 1
    while min(hole.shape[-2:]) >> levels >= min_size:
        coarse = _pool_level(hole, hole, levels - 1)[1]
        if not bool((~_dilate(coarse[0, 0] < 0.5, patch_size // 2)).any()):
            break  # eroding the hole by a patch radius empties it: thin enough already
        levels += 1
    return levels


def texture_features(image: Tensor, hole: Tensor, window: int) -> Tensor:
    """(1, 2, H, W): mean |d/dx| and |d/dy| of the grey image over a window, known pixels only.

    Newson et al. (2014)'s texture features. Pooled down the pyramid with the
    colours, they tell a coarse patch how busy the fine texture beneath it
    is, so a busy area (roofs, foliage) does not match flat sand or water
    that happens to have the same mean colour.
    """
    grey = image.mean(1, keepdim=True)
    known = 1.0 - hole
    gx = F.pad((grey[..., :, 1:] - grey[..., :, :-1]).abs() * known[..., :, 1:] * known[..., :, :-1], (0, 1))
    gy = F.pad((grey[..., 1:, :] - grey[..., :-1, :]).abs() * known[..., 1:, :] * known[..., :-1, :], (0, 0, 0, 1))
    kx = F.pad(known[..., :, 1:] * known[..., :, :-1], (0, 1))
    ky = F.pad(known[..., 1:, :] * known[..., :-1, :], (0, 0, 0, 1))
    r = window // 2
    pool = lambda t: F.avg_pool2d(F.pad(t, (r, r, r, r), mode="replicate"), window, stride=1)
    return torch.cat([pool(gx) / pool(kx).clamp(min=1e-6), pool(gy) / pool(ky).clamp(min=1e-6)], 1) * known


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


def onion_peel(image: Tensor, hole: Tensor, source: Tensor, patch_size: int, max_sources: int | None = None) -> Tensor:
    """Fill the hole of image (C, H, W) ring by ring from its border inward.

    Each ring pixel copies the centre of the source patch that best matches
    the pixels already known or filled around it (unknown pixels ignored).
    Edges and stripes entering the hole are carried in from every side,
    where a smooth fill would blur them away. The search is exact over a
    grid of sources thinned to about `max_sources` (default PEEL_SOURCES,
    0 = no thinning), then refined among the 8 neighbours of the winner.
    Hole pixels too close to the border to centre a patch keep their value.
    """
    c, h, w = image.shape
    ok = valid_centres(source, patch_size)
    if not bool(ok.any()):
        return image
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
    est = image.clone()
    flat = est.view(c, h * w)
    sf = gather_patches(est, src, patch_size)  # sources are known pixels: fixed during the peel
    fits = valid_centres(torch.ones_like(hole), patch_size)
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
            final: bool, reach: int | None, anchors: Tensor | None = None) -> Tensor:
    """The estimate after a vote (trust: per-centre weights); after the final one, seams are evened out
    against the known pixels in `anchors` (default: all known pixels)."""
    votes, covered = vote(est, matches, patch_size, None if trust is None else trust[matches.query], reach=reach)
    if final:
        # Gradient-domain touch-up: what the patches say about the known
        # pixels around the hole minus what is really there, spread smoothly
        # over the hole, removes brightness and colour seams.
        # Known pixels outside a sampling area give no residual: their colour must not seep in either.
        residual = torch.where(covered & (~hole if anchors is None else anchors), est - votes, torch.zeros_like(est))
        votes = votes + harmonic_fill(residual[None], (~hole).to(est.dtype)[None, None])[0]
    return torch.where(hole & covered, votes, est)


def em_schedule(levels: int, iterations: int) -> list[int]:
    """EM iterations per level, coarsest first: `iterations`, then halving.

    The full-resolution level (when there is more than one) gets none: its
    doubled match field, voted once, already carries the texture, and
    searching again there mostly pulls matches towards flat areas.
    """
    counts = [max(1, iterations >> i) for i in range(levels)]
    if levels > 1:
        counts[-1] = 0
    return counts


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
) -> Tensor:
    """Fill `hole` (1, 1, H, W; 1 = fill) in `image` (1, C, H, W); see the module docstring.

    iterations: EM iterations at the coarsest level (halving at each finer one).
    search_iterations: PatchMatch iterations per EM search.
    band: if given, source patches come only from known pixels within this
        many pixels (at full resolution) of the hole.
    source: (1, 1, H, W), if given patches are copied only from where it is
        > 0.5, wholly inside it at every pyramid level (fewer levels where a
        coarse one would hold no whole patch); SourceTooSmall when even full
        resolution holds none.
    min_size: the coarsest level's smaller side stays at least this.
    texture: weight of the texture features (0 = colours only; RGB only).
    anchor_power, anchor_floor: a match votes with weight
        (share of known pixels in its query patch + floor) ** power.
    """
    r = patch_size // 2
    hole = (hole > 0.5).to(image.dtype)
    if not bool(hole.any()):
        return image.clone()
    if min(image.shape[-2:]) < patch_size:  # not even one whole patch: fill smoothly
        return harmonic_fill(image, 1.0 - hole).clamp(0, 1)
    levels = level_count(hole, patch_size, max(min_size, 3 * patch_size))
    allowed = None
    if source is not None:
        allowed = ((source > 0.5) & (hole < 0.5)).to(image.dtype)
        has_patch = lambda level: bool(valid_centres(_pad(_pool_source(allowed, level), r)[0, 0] > 0.5, patch_size).any())  # noqa: E731
        if not has_patch(0):
            raise SourceTooSmall(f"the sampling area holds no whole {patch_size}x{patch_size} patch of known pixels")
        while levels > 1 and not has_patch(levels - 1):
            levels -= 1
    schedule = em_schedule(levels, iterations)
    colours = image.shape[1]
    work = image
    if texture > 0 and colours == 3:
        work = torch.cat([image, texture * texture_features(image, hole, patch_size)], 1)

    estimate = None  # (1, C, h, w) result of the level above, unpadded
    field = None  # its match field, in that level's padded coordinates
    for n, level in enumerate(range(levels - 1, -1, -1)):
        if progress is not None:
            progress(n / levels, f"level {n + 1} of {levels}")
        # The full-resolution level only votes: the texture channels have done their job.
        img, hl = _pool_level(work if level > 0 or schedule[n] else image, hole, level)
        h, w = img.shape[-2:]
        if estimate is None:
            estimate = harmonic_fill(img, 1.0 - hl)
        else:
            up = F.interpolate(estimate[:, : img.shape[1]], size=(h, w), mode="bilinear", align_corners=False)
            estimate = torch.where(hl > 0.5, up, img)
        # Each level is worked on mirror-padded, so border pixels get whole patches.
        est = _pad(estimate, r)[0]
        hole_b = _pad(hl, r)[0, 0] > 0.5
        # Centres of all patches that overlap the hole, kept whole patches inside the padded
        # level: a hole at the image border, mirrored into the pad, would otherwise put
        # centres within r of the edge (the r of padding already lets every real pixel be one).
        queries = _dilate(hole_b, r) & valid_centres(torch.ones_like(hole_b), patch_size)
        source = ~hole_b
        anchors = None
        if allowed is not None:
            source &= _pad(_pool_source(allowed, level), r)[0, 0] > 0.5
            anchors = source
        if band is not None:
            banded = source & _dilate(hole_b, max(band >> level, 2 * patch_size))
            if bool(valid_centres(banded, patch_size).any()):
                source = banded  # else the band is too thin to hold a patch: use the whole crop
        # Patches that see more of the real image are trusted more in the vote.
        trust = (box_count(~hole_b, patch_size).reshape(-1).to(est.dtype) / patch_size**2 + anchor_floor) ** anchor_power
        last_level = level == 0

        n_em = schedule[n]
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
            seed = _field_matches(field, queries, source_ok)
            # The doubled field's matches were found a level up: trusting them
            # equally spreads the copied texture evenly.
            est = _settle(est, hole_b, seed, patch_size, None, last_level and n_em == 0, None, anchors)
        if n_em:
            # Source patches lie wholly in known pixels: describe them once per level.
            sources = SourcePatches(est, source, patch_size, dims=24 if colours != 3 else None, basis=basis)
        for step in range(n_em):
            if progress is not None:
                progress((n + step / n_em) / levels, f"level {n + 1} of {levels}")
            matches = sources.search(est, queries, iterations=search_iterations, generator=generator, init=field)
            if matches.query.numel() == 0:
                break  # no source patch fits anywhere: keep the smooth fill
            final = last_level and step == n_em - 1
            # Between searches, vote only with the 3x3 middle of each patch: a
            # sharper estimate steers the next search to coherent copies
            # instead of flat areas; the final vote uses whole patches.
            est = _settle(est, hole_b, matches, patch_size, trust, final, None if final else 1, anchors)
            field = matches.field()
        if field is None:
            field = torch.full((*hole_b.shape, 2), -1, dtype=torch.long, device=image.device)
        estimate = est[None, :, r : r + h, r : r + w]
    return torch.where(hole > 0.5, estimate[:, :colours], image).clamp(0, 1)


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
