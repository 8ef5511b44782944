"""A coarse-to-fine Laplace solver in torch, used for smooth fills and Poisson blending.

Both problems reduce to the same one: given values on known pixels, find the
harmonic (membrane) interpolation on unknown pixels. Solving it on a pyramid
(masked averages going down, Jacobi sweeps going up) converges in a handful of
sweeps per level instead of the O(N) sweeps plain Jacobi needs on big holes.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def _jacobi(x: torch.Tensor, values: torch.Tensor, known: torch.Tensor, sweeps: int) -> torch.Tensor:
    """Replace every unknown pixel by the mean of its 4 neighbours, `sweeps` times.

    Only the box around the unknown pixels (plus a one-pixel frame of known
    ones) is touched: in a crop the hole is typically a quarter of the area.
    """
    rows = (known < 0.5).any(dim=-1).flatten(0, -2).any(dim=0).nonzero()
    if rows.numel() == 0:
        return x
    cols = (known < 0.5).any(dim=-2).flatten(0, -2).any(dim=0).nonzero()
    h, w = x.shape[-2:]
    y0, y1 = max(0, int(rows[0]) - 1), min(h, int(rows[-1]) + 2)
    x0, x1 = max(0, int(cols[0]) - 1), min(w, int(cols[-1]) + 2)
    win = x[..., y0:y1, x0:x1]
    k = known[..., y0:y1, x0:x1]
    unknown = 1.0 - k
    fixed = values[..., y0:y1, x0:x1] * k
    for _ in range(sweeps):
        p = F.pad(win, (1, 1, 1, 1), mode="replicate")
        avg = p[..., :-2, 1:-1] + p[..., 2:, 1:-1]
        avg += p[..., 1:-1, :-2]
        avg += p[..., 1:-1, 2:]
        win = torch.addcmul(fixed, unknown, avg, value=0.25)
    out = x.clone()
    out[..., y0:y1, x0:x1] = win
    return out


def harmonic_fill(values: torch.Tensor, known: torch.Tensor, sweeps: int = 6, coarsest: int = 8) -> torch.Tensor:
    """Harmonic interpolation of `values` into the pixels where `known` is 0.

    values: (B, C, H, W); known: (B, 1, H, W) with 1 on known pixels.
    Known pixels are returned unchanged. Where a region has no known pixel at
    all, it gets the mean of the known pixels of the image (0 if none).
    """
    known = (known > 0.5).to(values.dtype)
    h, w = values.shape[-2:]
    if min(h, w) <= coarsest:
        count = known.sum(dim=(-2, -1), keepdim=True)
        mean = (values * known).sum(dim=(-2, -1), keepdim=True) / count.clamp(min=1)
        x = values * known + mean * (1 - known)
        return _jacobi(x, values, known, sweeps=4 * max(h, w))

    # Pull: masked 2x2 averages, so a coarse pixel is known if any fine pixel was.
    hp, wp = h + h % 2, w + w % 2
    v = F.pad(values * known, (0, wp - w, 0, hp - h))
    k = F.pad(known, (0, wp - w, 0, hp - h))
    ksum = F.avg_pool2d(k, 2)
    coarse_known = (ksum > 0).to(values.dtype)
    coarse_values = F.avg_pool2d(v, 2) / ksum.clamp(min=1e-6)
    coarse = harmonic_fill(coarse_values, coarse_known, sweeps, coarsest)

    # Push: upsample as the starting point, then smooth at this level.
    up = F.interpolate(coarse, size=(hp, wp), mode="bilinear", align_corners=False)[..., :h, :w]
    x = values * known + up * (1 - known)
    return _jacobi(x, values, known, sweeps)


def poisson_blend(fill: torch.Tensor, target: torch.Tensor, hole: torch.Tensor, sweeps: int = 6) -> torch.Tensor:
    """Gradient-domain paste: keep the gradients of `fill` inside the hole, match `target` at its border.

    The solution is fill + c where c is harmonic inside the hole and equals
    target - fill outside it, which is what harmonic_fill computes.
    """
    correction = harmonic_fill(target - fill, 1.0 - hole, sweeps=sweeps)
    return fill + correction * hole
