"""Nearest-patch search (PatchMatch) on any C-channel tensor, fully vectorised.

For every query patch, find the source patch with the smallest sum of squared
differences (SSD). The patchmatch engine runs it on RGB pyramids; learned
methods can run it on feature maps (e.g. a patch-swap layer on 256-channel
features), so nothing here knows about images or holes.

    m = nearest_patches(query, source, query_mask, source_mask, patch_size=3,
                        iterations=4, generator=torch.Generator().manual_seed(0))
    m.query, m.source, m.distance   # flat centres y * W + x, and the SSD
    m.field()                       # (H, W, 2) source centre (y, x) per query, -1 elsewhere

`SourcePatches(source, mask, patch_size, basis=...).search(query, ...)`
prepares the source side once for repeated searches (one per EM step);
`upsample_field` carries a field to the next finer pyramid level, to be
passed as `init`.

How it avoids a Python loop over pixels:

- Patches become vectors (`patch_features`): the unfolded patch, or its
  projection on a basis, either the leading principal components of the
  input's patches (`pca_basis`, any channel count) or a fixed low-frequency
  DCT in opponent colours (`dct_basis`, RGB). Trying a candidate is then
  one row gather and a short difference.
- Propagation runs on all queries at once, jump-flood style: for step = k,
  k/2, ..., 1 every query tries what its neighbours at distance `step`
  matched, shifted by the same step. Random search samples around each
  match with radii halving down to 1, plus one candidate drawn among all
  valid sources.
- Small problems (coarse pyramid levels, small feature maps) are solved
  exactly by brute force, as matrix products in chunks (`brute_force`),
  which also takes per-pixel weights (e.g. to ignore unknown pixels).

Patches are addressed by their centre pixel, as flat indices y * W + x, and
must lie wholly inside their image: centres closer than patch_size // 2 to
the border are never queries or sources (pad the input to match those).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

Tensor = torch.Tensor

# Brute force when (queries x sources x vector length) stays under this.
EXACT_BUDGET = 3e8
# Entries of the query x source distance matrix computed at once.
_CHUNK = 2**22


@dataclass
class Matches:
    """Nearest source patch of each query patch.

    query:    (N,) long, flat index y * W + x of each query patch centre
    source:   (N,) long, flat index y * Ws + x of its matched source patch centre
    distance: (N,) float, SSD between the two patches (in feature space)
    query_size, source_size: (H, W) of the two images
    """

    query: Tensor
    source: Tensor
    distance: Tensor
    query_size: tuple[int, int]
    source_size: tuple[int, int]

    def field(self) -> Tensor:
        """Dense (H, W, 2) long map of matched source centres (y, x); -1 where no query."""
        h, w = self.query_size
        ws = self.source_size[1]
        out = torch.full((h * w, 2), -1, dtype=torch.long, device=self.query.device)
        out[self.query, 0] = torch.div(self.source, ws, rounding_mode="floor")
        out[self.query, 1] = self.source % ws
        return out.view(h, w, 2)


def box_count(mask: Tensor, size: int) -> Tensor:
    """(H, W) number of set pixels of mask (H, W) in the size x size window around each pixel.

    Windows are clipped at the border. Summed-area table: constant cost per
    pixel whatever the window (pooling with large kernels is slow on CPU).
    """
    h, w = mask.shape
    r = size // 2
    table = F.pad(mask.to(torch.int32).cumsum(0).cumsum(1), (1, 0, 1, 0))
    y0 = (torch.arange(h, device=mask.device) - r).clamp(0, h)
    y1 = (torch.arange(h, device=mask.device) + r + 1).clamp(0, h)
    x0 = (torch.arange(w, device=mask.device) - r).clamp(0, w)
    x1 = (torch.arange(w, device=mask.device) + r + 1).clamp(0, w)
    return (table[y1][:, x1] - table[y0][:, x1] - table[y1][:, x0] + table[y0][:, x0])


def valid_centres(mask: Tensor, patch_size: int) -> Tensor:
    """(H, W) bool: centres whose whole patch lies inside the image and inside `mask`."""
    r = patch_size // 2
    h, w = mask.shape
    out = box_count(~mask.bool(), patch_size) == 0
    out[:r] = False
    out[h - r :] = False
    out[:, :r] = False
    out[:, w - r :] = False
    return out


def _patch_offsets(width: int, patch_size: int, device: torch.device) -> Tensor:
    """(p*p,) flat offsets of a patch's pixels from its centre, row by row."""
    k = torch.arange(patch_size, device=device) - patch_size // 2
    return (k[:, None] * width + k[None, :]).reshape(-1)


def gather_patches(x: Tensor, centres: Tensor, patch_size: int) -> Tensor:
    """(N, C * p * p) the patches around flat `centres` of x (C, H, W), in conv-weight order."""
    c, h, w = x.shape
    idx = centres[:, None] + _patch_offsets(w, patch_size, x.device)[None, :]
    return x.reshape(c, h * w)[:, idx].permute(1, 0, 2).reshape(centres.numel(), -1)


def pca_basis(images: list[Tensor], patch_size: int, dims: int, max_samples: int = 4096) -> Tensor:
    """(dims, C, p, p): the leading principal directions of the images' patches, as conv weights.

    Patches are sampled on a regular grid, so the basis is deterministic.
    """
    samples = []
    for x in images:
        c, h, w = x.shape
        r = patch_size // 2
        stride = max(1, int(math.sqrt((h - 2 * r) * (w - 2 * r) * len(images) / max_samples)))
        ys = torch.arange(r, h - r, stride, device=x.device)
        xs = torch.arange(r, w - r, stride, device=x.device)
        samples.append(gather_patches(x, (ys[:, None] * w + xs[None, :]).reshape(-1), patch_size))
    patches = torch.cat(samples).double()
    patches -= patches.mean(0, keepdim=True)
    cov = patches.T @ patches / max(patches.shape[0] - 1, 1)
    _, vectors = torch.linalg.eigh(cov)
    basis = vectors[:, -dims:].flip(1).T.to(images[0].dtype)  # largest variance first
    return basis.reshape(dims, images[0].shape[0], patch_size, patch_size).contiguous()


def dct_basis(patch_size: int, luma_order: int = 4, chroma_order: int = 1, extra_channels: int = 0,
              device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> Tensor:
    """(D, 3, p, p) conv weights: low-frequency 2D DCT of RGB patches in opponent colours.

    A fixed stand-in for `pca_basis` on natural RGB images (whose patch
    principal components are close to DCT functions): no eigen-decomposition,
    identical for every image. The colour transform and the DCT are both
    orthonormal, so the SSD of the kept coefficients is the part of the
    patch SSD carried by luminance frequencies u + v <= luma_order and
    chroma frequencies u + v <= chroma_order (21 values for 4 and 1). With
    fewer, the detail that tells a repeating pattern's phases apart is lost
    (a wallpaper fill turns to mush); more only slow the search down.
    Channels after the first three (extra_channels) contribute their patch
    mean (the DC term) only.
    """
    p = patch_size
    n = torch.arange(p, dtype=torch.float64)
    freq = torch.arange(p, dtype=torch.float64)[:, None]
    cosines = torch.cos(math.pi * (2 * n[None, :] + 1) * freq / (2 * p)) * math.sqrt(2 / p)
    cosines[0] = math.sqrt(1 / p)
    colours = torch.tensor([[1.0, 1.0, 1.0], [1.0, -1.0, 0.0], [1.0, 1.0, -2.0]], dtype=torch.float64)
    colours /= colours.norm(dim=1, keepdim=True)  # luminance and two opponent chroma axes
    weights = [
        colours[c][:, None, None] * (cosines[u][:, None] * cosines[s - u][None, :])[None]
        for c, order in enumerate((luma_order, chroma_order, chroma_order))
        for s in range(min(order, 2 * p - 2) + 1)
        for u in range(s + 1)
        if u < p and s - u < p
    ]
    basis = torch.stack(weights)
    if extra_channels:
        rgb = F.pad(basis, (0, 0, 0, 0, 0, extra_channels))
        dc = torch.zeros(extra_channels, 3 + extra_channels, p, p, dtype=torch.float64)
        for i in range(extra_channels):
            dc[i, 3 + i] = 1.0 / p
        basis = torch.cat([rgb, dc])
    return basis.to(device, dtype).contiguous()


def patch_features(x: Tensor, patch_size: int, basis: Tensor | None = None) -> Tensor:
    """(H * W, D): one feature row per pixel of x (C, H, W), the image zero-padded at its border.

    D = C * p * p (the unfolded patch) without a basis, else the basis's
    (D, C, p, p) projection of it.
    """
    c, h, w = x.shape
    r = patch_size // 2
    if basis is None:
        feats = F.unfold(x[None], patch_size, padding=r)[0]  # (C*p*p, H*W)
        return feats.T.contiguous()
    # Channels-last: a much faster convolution on CPU, and its output already has one row per pixel.
    x = x[None].contiguous(memory_format=torch.channels_last)
    feats = F.conv2d(x, basis, padding=r)
    return feats.permute(0, 2, 3, 1).reshape(h * w, -1).contiguous()


def brute_force(qf: Tensor, sf: Tensor, qw: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Exact nearest row of sf for each row of qf: (row index, SSD).

    qw: optional (N, P) per-pixel weights of the query patches, shared by the
    C = D / P channels, making the SSD sum_i w_i |q_i - s_i|^2 (e.g. zero on
    pixels not known yet). The SSD is expanded into matrix products.
    """
    n, d = qf.shape
    if qw is None:
        s_term = (sf * sf).sum(1)[None, :]
        q_term = (qf * qf).sum(1)
    else:
        p = qw.shape[1]
        s_term = None  # (N, Ns) per chunk: weights @ channel-summed source squares
        s_sq = (sf * sf).view(sf.shape[0], d // p, p).sum(1)
        wq = qf * qw.repeat(1, d // p)
        q_term = (wq * qf).sum(1)
    chunk = max(1, _CHUNK // max(sf.shape[0], 1))
    best_i, best_d = [], []
    for start in range(0, n, chunk):
        stop = start + chunk
        if qw is None:
            dist = torch.addmm(s_term, qf[start:stop], sf.T, alpha=-2.0)
        else:
            dist = torch.addmm(qw[start:stop] @ s_sq.T, wq[start:stop], sf.T, alpha=-2.0)
        value, index = dist.min(1)
        best_i.append(index)
        best_d.append(value)
    distance = (torch.cat(best_d) + q_term).clamp_(min=0)
    return torch.cat(best_i), distance


class _PatchMatch:
    """PatchMatch state: query j (flat pixel q_flat[j]) matched to flat source pixel match[j] at SSD dist[j].

    Candidates are flat indices: a shift that runs off the side of a row
    lands on the next row, which is just another candidate to evaluate,
    so no bounds are tracked beyond the ends of the image. A dense copy of
    the match field (-1 off the queries) tells what a neighbour matched.
    """

    # Candidates scored at once: bounds the (k, N, D) temporary.
    GROUP = 1

    def __init__(self, qf: Tensor, q_flat: Tensor, q_size: tuple[int, int], sf: Tensor, s_ok: Tensor,
                 s_size: tuple[int, int], generator: torch.Generator | None, qw: Tensor | None):
        self.qf, self.qw, self.sf, self.s_ok = qf, qw, sf, s_ok
        self.q_flat, self.q_size, self.s_size = q_flat, q_size, s_size
        self.generator = generator
        self.s_list = torch.nonzero(s_ok).squeeze(1)
        self.field = torch.full((q_size[0] * q_size[1],), -1, dtype=torch.long, device=qf.device)
        self.match = self.dist = None

    def _randint(self, low: int, high: int, k: int = 1) -> Tensor:
        return torch.randint(low, high, (k, self.qf.shape[0]), generator=self.generator, device=self.qf.device)

    def _random_sources(self, k: int = 1) -> Tensor:
        return self.s_list[self._randint(0, self.s_list.numel(), k)]

    def _score(self, cand: Tensor) -> Tensor:
        """(k, N) SSD of each query to each of its k candidate sources; inf where not a valid source."""
        cand = cand.clamp(0, self.s_ok.numel() - 1)
        k, n = cand.shape
        diff = self.sf.index_select(0, cand.reshape(-1)).view(k, n, -1) - self.qf[None]
        diff.mul_(diff)
        if self.qw is None:
            d = diff.sum(2)
        else:
            d = (diff.view(k, n, -1, self.qw.shape[1]) * self.qw[None, :, None, :]).sum((2, 3))
        return d.masked_fill_(~self.s_ok[cand], math.inf)

    def offer(self, cand: Tensor) -> None:
        """Keep, per query, the best of its current match and the (k, N) candidates (-1 = none)."""
        for start in range(0, cand.shape[0], self.GROUP):
            c = cand[start : start + self.GROUP]
            d = self._score(c).masked_fill_(c < 0, math.inf)
            best, which = d.min(0)
            better = best < self.dist
            self.match = torch.where(better, c.gather(0, which[None])[0], self.match)
            self.dist = torch.where(better, best, self.dist)

    def start(self, init: Tensor | None) -> None:
        """Start from `init` (flat sources, -1 = none) where valid, else from random sources."""
        self.match = self._random_sources()[0]
        self.dist = self._score(self.match[None])[0]
        if init is not None:
            self.offer(init[None])

    def propagate(self, jump: int, stride: int = 1) -> None:
        """Jump flood: try the neighbours' matches at distances jump, jump/2, ..., stride."""
        wq, ws = self.q_size[1], self.s_size[1]
        last = self.field.numel() - 1
        step = max(jump, stride)
        while step >= stride:
            self.field[self.q_flat] = self.match
            cand = []
            for dy, dx in ((step, 0), (-step, 0), (0, step), (0, -step)):
                neighbour = self.field[(self.q_flat + dy * wq + dx).clamp(0, last)]
                cand.append(torch.where(neighbour >= 0, neighbour - (dy * ws + dx), -1))
            self.offer(torch.stack(cand))
            step //= 2

    def random_search(self, radius: int) -> None:
        """Candidates in windows of radius R, R/2, ..., 1 around the match, and one anywhere."""
        radii = []
        while radius >= 1:
            radii.append(radius)
            radius //= 2
        if radii:
            r = torch.tensor(radii, device=self.qf.device)[:, None]
            k = len(radii)
            # Uniform in [-r, r] per window, drawn as fractions so one call covers all radii.
            u = torch.rand((2, k, self.qf.shape[0]), generator=self.generator, device=self.qf.device)
            dy = (u[0] * (2 * r + 1)).long() - r
            dx = (u[1] * (2 * r + 1)).long() - r
            self.offer(self.match[None] + dy * self.s_size[1] + dx)
        self.offer(self._random_sources())


class SourcePatches:
    """The source side of a search, prepared once and searched many times.

    Holds the projection and the feature rows of every valid source patch,
    so repeated searches against the same source (one per EM iteration)
    only compute the query side afresh.

    source: (C, Hs, Ws) or (1, C, Hs, Ws).
    mask: (Hs, Ws) bool, pixels source patches may cover; a source patch
        lies wholly inside it (default: the whole image).
    patch_size: odd patch width.
    dims: compare projections on this many principal components when a
        patch holds more values (None: the exact SSD on whole patches).
    basis: (D, C, p, p) projection to use instead of computing one.
    """

    def __init__(self, source: Tensor, mask: Tensor | None = None, patch_size: int = 7,
                 dims: int | None = 24, basis: Tensor | None = None):
        if patch_size < 1 or patch_size % 2 == 0:
            raise ValueError(f"patch_size must be odd and positive, got {patch_size}")
        source = source[0] if source.dim() == 4 else source
        self.patch_size = patch_size
        self.size = tuple(source.shape[-2:])
        if mask is None:
            mask = torch.ones(self.size, dtype=torch.bool, device=source.device)
        self.ok = valid_centres(mask, patch_size).reshape(-1)
        if basis is None and dims is not None and source.shape[0] * patch_size**2 > dims:
            basis = pca_basis([source], patch_size, dims)
        self.basis = basis
        self.features = patch_features(source, patch_size, basis)
        self.count = int(self.ok.sum())

    def describe(self, image: Tensor, centres: Tensor) -> Tensor:
        """(N, D) feature rows of the patches of `image` around flat `centres`, as for the sources."""
        image = image[0] if image.dim() == 4 else image
        if centres.numel() > image.shape[-1] * image.shape[-2] // 4:
            return patch_features(image, self.patch_size, self.basis).index_select(0, centres)
        patches = gather_patches(image, centres, self.patch_size)  # few queries: skip the full conv
        return patches if self.basis is None else patches @ self.basis.flatten(1).T

    def search(
        self,
        query: Tensor,
        query_mask: Tensor | None = None,
        iterations: int = 4,
        generator: torch.Generator | None = None,
        init: Tensor | None = None,
        query_weights: Tensor | None = None,
        exact: bool | None = None,
        jump: int | None = None,
        radius: int | None = None,
        stride: int = 1,
    ) -> Matches:
        """The nearest source patch of every query patch centre; see `nearest_patches`."""
        query = query[0] if query.dim() == 4 else query
        h, w = query.shape[-2:]
        hs, ws = self.size
        dev = query.device
        q_ok = valid_centres(torch.ones(h, w, dtype=torch.bool, device=dev), self.patch_size)
        if query_mask is not None:
            q_ok &= query_mask.bool()
        q_flat = torch.nonzero(q_ok.reshape(-1)).squeeze(1)
        if q_flat.numel() == 0 or self.count == 0:
            none = q_flat[:0]
            return Matches(none, none, torch.empty(0, device=dev), (h, w), (hs, ws))
        qf = self.describe(query, q_flat)
        qw = None
        if query_weights is not None:
            if self.basis is not None:
                raise ValueError("query_weights need whole-patch features: build SourcePatches with dims=None")
            qw = gather_patches(query_weights.to(query.dtype)[None], q_flat, self.patch_size)

        if exact is None:
            exact = q_flat.numel() * self.count * qf.shape[1] <= EXACT_BUDGET
        if exact:
            s_idx = torch.nonzero(self.ok).squeeze(1)
            index, dist = brute_force(qf, self.features.index_select(0, s_idx), qw)
            return Matches(q_flat, s_idx[index], dist, (h, w), (hs, ws))

        pm = _PatchMatch(qf, q_flat, (h, w), self.features, self.ok, (hs, ws), generator, qw)
        start = None
        if init is not None:
            yx = init.reshape(-1, 2)[q_flat]
            inside = (yx[:, 0] >= 0) & (yx[:, 0] < hs) & (yx[:, 1] >= 0) & (yx[:, 1] < ws)
            start = torch.where(inside, yx[:, 0] * ws + yx[:, 1], -1)
        pm.start(start)
        first = jump if jump is not None else (4 if init is not None else _pow2_at_most(max(h, w) // 4))
        for it in range(iterations):
            pm.propagate((first if it == 0 else min(first, 2)) * stride, stride)
            pm.random_search(radius if radius is not None else (16 if init is not None else max(hs, ws)))
        return Matches(q_flat, pm.match, pm.dist, (h, w), (hs, ws))


def nearest_patches(
    query: Tensor,
    source: Tensor | None = None,
    query_mask: Tensor | None = None,
    source_mask: Tensor | None = None,
    patch_size: int = 7,
    iterations: int = 4,
    generator: torch.Generator | None = None,
    init: Tensor | None = None,
    dims: int | None = 24,
    basis: Tensor | None = None,
    query_weights: Tensor | None = None,
    exact: bool | None = None,
    jump: int | None = None,
    radius: int | None = None,
    stride: int = 1,
) -> Matches:
    """For every query patch centre, the nearest source patch (SSD).

    query, source: (C, H, W) or (1, C, H, W); source=None searches query itself.
    query_mask: (H, W) bool, centres that need a match (default: all that fit).
    source_mask: (Hs, Ws) bool, pixels source patches may cover; a source
        patch lies wholly inside it (default: the whole source image).
    patch_size: odd patch width.
    iterations: PatchMatch iterations (propagation, then random search).
    generator: torch.Generator for the random choices; same seed, same result.
    init: optional (H, W, 2) long field of source centres (y, x) to start
        from, e.g. `upsample_field` of a coarser level's `Matches.field()`.
    dims: compare projections on this many principal components when a
        patch holds more values (None: always the exact SSD).
    basis: (D, C, p, p) projection to use instead of computing one.
    query_weights: optional (H, W) weight of each query-image pixel in the
        SSD (e.g. 1 on known pixels, 0 on unknown ones); needs whole patches,
        so it turns the projection off.
    exact: True forces brute force, False forbids it, None decides by cost.
    jump: largest propagation step of the first iteration (default: a
        quarter of the image, or 4 when starting from `init`); later ones use 2.
    radius: largest random-search radius (default: the source image size, or
        16 when starting from `init`: far candidates then come from one
        uniformly drawn source per iteration).
    stride: spacing of the queries, when they lie on a grid (propagation then
        looks only at neighbours that are queries too).

    Returns Matches with one entry per query centre (none when no source
    patch fits in source_mask). Use SourcePatches directly to search one
    source many times.
    """
    query = query[0] if query.dim() == 4 else query
    if basis is None and dims is not None and query_weights is None and query.shape[0] * patch_size**2 > dims:
        basis = pca_basis([query] if source is None else [query, source[0] if source.dim() == 4 else source], patch_size, dims)
    index = SourcePatches(query if source is None else source, source_mask, patch_size,
                          dims=None if query_weights is not None else dims, basis=basis)
    return index.search(query, query_mask, iterations, generator, init, query_weights, exact, jump, radius, stride)


def _pow2_at_most(n: int) -> int:
    return 1 << max(0, n.bit_length() - 1) if n >= 1 else 1


def upsample_field(field: Tensor, size: tuple[int, int], pad: int = 0) -> Tensor:
    """Turn a (h, w, 2) match field into one for an image twice as large, of `size` (H, W).

    Fine pixel (y, x) inherits its coarse parent's match, doubled, plus its own
    offset inside the parent, so coherent regions stay coherent. With pad > 0
    both fields are in coordinates of images padded by `pad` on every side
    (the doubling applies to unpadded coordinates). -1 where the parent had none.
    """
    h, w = field.shape[:2]
    dev = field.device
    ys = torch.arange(size[0], device=dev) - pad
    xs = torch.arange(size[1], device=dev) - pad
    py, px = torch.div(ys, 2, rounding_mode="floor"), torch.div(xs, 2, rounding_mode="floor")
    parity = torch.stack(torch.broadcast_tensors((ys - 2 * py)[:, None], (xs - 2 * px)[None, :]), -1)
    parent = field[(py + pad).clamp(0, h - 1)[:, None], (px + pad).clamp(0, w - 1)[None, :]]
    fine = (parent - pad) * 2 + parity + pad
    return torch.where(parent >= 0, fine, torch.full_like(fine, -1))
