"""Patch-swap: every 3x3 neural patch touching the hole becomes its best-correlated known patch.

The paper's matching step, done as Chen & Schmidt's style swap:

1. The known patches (3x3 windows holding no hole cell) are normalised and used as
   convolution filters; convolving them over the feature map gives, at every position,
   <p, p'> / |p'|, whose argmax over p' is the normalised cross-correlation's
   <p, p'> / (|p| |p'|) (|p| is the same for every candidate).
2. At each position whose window touches the hole the best filter wins (a one-hot map).
3. The transposed convolution of the one-hot map with the unnormalised patches pastes the
   winners back; dividing by how many pasted patches cover a cell averages the overlaps.

Memory stays bounded on large maps: the filters are made and convolved a chunk at a time
(a running maximum keeps the winner), the convolution covers only the box around the
hole, and step 3 adds the chosen patches at their places instead of convolving a one-hot
map with every patch (the same sum, without multiplying the zeros).

The map is padded by reflection so every cell has a window, border cells included.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

Tensor = torch.Tensor

# Score entries (filters x box cells) computed at once: 64 MiB of float32.
CHUNK_BUDGET = 2**24


def feature_hole(hole: Tensor, stride: int) -> Tensor:
    """The hole at a feature map's resolution: a cell is unknown when any of its pixels is."""
    return F.max_pool2d(hole, stride, stride, ceil_mode=True)


def _windows_touching(mask: Tensor) -> Tensor:
    """(H, W) bool: cells whose reflection-padded 3x3 window holds a nonzero cell of mask (H, W)."""
    padded = F.pad(mask[None, None].float(), (1, 1, 1, 1), mode="reflect")
    return F.max_pool2d(padded, 3, 1)[0, 0] > 0


def _patches_at(padded: Tensor, centres: Tensor, width: int) -> Tensor:
    """(n, C, 3, 3) windows of a padded (C, H+2, W+2) map at flat centres y * W + x."""
    ys, xs = torch.div(centres, width, rounding_mode="floor"), centres % width
    rows = [torch.stack([padded[:, ys + dy, xs + dx] for dx in range(3)], -1) for dy in range(3)]
    return torch.stack(rows, -2).permute(1, 0, 2, 3)


def best_patches(features: Tensor, queries: Tensor, bank: Tensor, sources: Tensor,
                 chunk_budget: int = CHUNK_BUDGET) -> tuple[Tensor, Tensor]:
    """For each query cell, the flat centre of the bank patch with the highest normalised cross-correlation.

    features (C, H, W); queries (H, W) bool; bank (C, Hb, Wb); sources (Hb, Wb) bool.
    Returns (query centres, chosen bank centres), both flat."""
    c, h, w = features.shape
    q = queries.flatten().nonzero().squeeze(1)
    src = sources.flatten().nonzero().squeeze(1)
    if not len(src):
        raise ValueError("patch-swap needs at least one known 3x3 patch: the hole covers the whole feature map")
    ys, xs = torch.div(q, w, rounding_mode="floor"), q % w
    y0, y1, x0, x1 = int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1
    box = F.pad(features[None], (1, 1, 1, 1), mode="reflect")[:, :, y0:y1 + 2, x0:x1 + 2]
    bank_padded = F.pad(bank[None], (1, 1, 1, 1), mode="reflect")[0]
    cells = (y1 - y0) * (x1 - x0)
    step = max(1, chunk_budget // cells)
    best = torch.full((cells,), -torch.inf, device=features.device)
    arg = torch.zeros(cells, dtype=torch.long, device=features.device)
    for start in range(0, len(src), step):
        centres = src[start:start + step]
        filters = _patches_at(bank_padded, centres, bank.shape[-1])
        filters = filters / filters.flatten(1).norm(dim=1).clamp_min(1e-8).view(-1, 1, 1, 1)
        scores = F.conv2d(box, filters.to(box.dtype))[0].flatten(1)  # (chunk, cells)
        value, index = scores.max(0)
        better = value > best
        best = torch.where(better, value.float(), best)
        arg = torch.where(better, centres[index], arg)
    in_box = (ys - y0) * (x1 - x0) + (xs - x0)
    return q, arg[in_box]


def paste_average(features: Tensor, queries: Tensor, chosen: Tensor, bank: Tensor) -> Tensor:
    """The transposed convolution of the one-hot choice map with the unnormalised bank patches,
    divided by the overlap count: (C, H, W) sums of the pasted windows over cells they cover."""
    c, h, w = features.shape
    patches = _patches_at(F.pad(bank[None], (1, 1, 1, 1), mode="reflect")[0], chosen, bank.shape[-1])
    total = features.new_zeros(c, (h + 2) * (w + 2))
    count = features.new_zeros(1, (h + 2) * (w + 2))
    ys, xs = torch.div(queries, w, rounding_mode="floor"), queries % w
    ones = features.new_ones(1, len(queries))
    for dy in range(3):
        for dx in range(3):
            at = (ys + dy) * (w + 2) + xs + dx
            total.index_add_(1, at, patches[:, :, dy, dx].T.to(total.dtype))
            count.index_add_(1, at, ones)
    return (total / count.clamp_min(1)).view(c, h + 2, w + 2)[:, 1:-1, 1:-1]


def patch_swap(features: Tensor, hole: Tensor, bank: Tensor | None = None, chunk_budget: int = CHUNK_BUDGET) -> Tensor:
    """Replace the hole cells of feature maps with averaged best-matching known patches.

    features (B, C, H, W); hole (B, 1, H, W), 1 on cells to fill (`feature_hole` of a pixel hole).
    bank: where the patches come from; by default the features themselves, minus every window
    touching the hole. Style transfer swaps a content map (hole everywhere) against a style image's.
    Cells outside the hole are returned unchanged, and so is a map with no known patch to copy."""
    out = []
    for i in range(features.shape[0]):
        f, m = features[i], hole[i, 0] > 0
        touching = _windows_touching(m)
        b, sources = (f, ~touching) if bank is None else (bank[i], torch.ones_like(bank[i, 0], dtype=torch.bool))
        if not m.any() or not sources.any():
            out.append(f)
            continue
        queries, chosen = best_patches(f, touching, b, sources, chunk_budget)
        out.append(torch.where(m, paste_average(f, queries, chosen, b), f))
    return torch.stack(out)
