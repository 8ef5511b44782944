"""Patch-swap time on relu3_1 feature maps, next to the plain one-shot form and the PatchMatch search, in one run.

The paper swaps a 64x64x256 map (a 256x256 image with a 128x128 hole) in about 0.1 s. Here the
map is the offline VGG16's relu3_1 of a photo-like image with a centred hole of half the side,
at 64x64x256 and 128x128x256 (256 and 512 px images). Compared, on the same map:

- `swap`: backend/methods/imt/swap.py, the bank convolved in chunks over the box around the hole;
- `one-shot`: the textbook form, every known patch a filter convolved over the whole map at once,
  argmax, a one-hot map and its transposed convolution (what chunking and the box avoid);
- `patchmatch`: the classical engine's nearest-patch search (backend/classical/nnf.py) on the same
  features: approximate, and SSD rather than correlation, for scale.

The median of --repeats runs after a warm-up, in ms; on CUDA also the peak memory.

    python benchmarks/patch_swap_speed.py [--sizes 64,128] [--device cpu] [--repeats 5]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from method_speed import median_ms  # noqa: E402

from backend.classical.nnf import nearest_patches  # noqa: E402
from backend.methods.imt.swap import feature_hole, patch_swap  # noqa: E402
from backend.service import pick_device  # noqa: E402
from backend.training.features import vgg_layers  # noqa: E402
from tests.conftest import photo_like  # noqa: E402


def one_shot(features: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
    """Chen & Schmidt's style swap as written: all filters at once over the whole map."""
    f, m = features[0], hole[0, 0] > 0
    padded_hole = F.pad(hole, (1, 1, 1, 1), mode="reflect")
    touching = F.max_pool2d(padded_hole, 3, 1)[0, 0] > 0
    windows = F.unfold(F.pad(features, (1, 1, 1, 1), mode="reflect"), 3)[0].T  # (cells, C*9)
    bank = windows[(~touching).flatten()]
    filters = bank.view(-1, f.shape[0], 3, 3)
    normed = filters / filters.flatten(1).norm(dim=1).clamp_min(1e-8).view(-1, 1, 1, 1)
    scores = F.conv2d(F.pad(features, (1, 1, 1, 1), mode="reflect"), normed)[0]  # (K, H, W)
    onehot = F.one_hot(scores.argmax(0), len(bank)).permute(2, 0, 1)[None].float() * touching
    pasted = F.conv_transpose2d(onehot, filters, padding=1)[0]
    count = F.conv_transpose2d(onehot, torch.ones(len(bank), 1, 3, 3, device=f.device), padding=1)[0]
    return torch.where(m, pasted / count.clamp_min(1), f)[None]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="64,128", help="feature-map sides")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--skip-one-shot-above", type=int, default=128, help="its memory grows with the map squared")
    args = ap.parse_args()
    device = pick_device(args.device)
    vgg = vgg_layers("vgg16-hed", (11,)).to(device)
    print(f"device {device}, {torch.get_num_threads()} CPU threads")
    print("| map | hole cells | known patches | swap ms | one-shot ms | patchmatch ms | one-shot / swap | swap max diff vs one-shot |")
    print("|---|---|---|---|---|---|---|---|")
    for side in (int(s) for s in args.sizes.split(",")):
        image = torch.from_numpy(photo_like(side * 4, side * 4, seed=3)).permute(2, 0, 1)[None].float().div(255).to(device)
        with torch.no_grad():
            features = vgg(image)[0] / 20
        hole = torch.zeros(1, 1, side * 4, side * 4, device=device)
        hole[..., side:3 * side, side:3 * side] = 1
        fhole = feature_hole(hole, 4)
        known = int((F.max_pool2d(F.pad(fhole, (1, 1, 1, 1), mode="reflect"), 3, 1) == 0).sum())
        peak = {}

        def timed(name, fn):
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            ms = median_ms(fn, args.repeats, device)
            if device.type == "cuda":
                peak[name] = torch.cuda.max_memory_allocated(device) / 2**20
            return ms

        with torch.no_grad():
            swap_ms = timed("swap", lambda: patch_swap(features, fhole))
            ours = patch_swap(features, fhole)
            if side <= args.skip_one_shot_above:
                shot_ms = timed("one-shot", lambda: one_shot(features, fhole))
                diff = f"{float((one_shot(features, fhole) - ours).abs().max()):.1e}"
            else:
                shot_ms, diff = float("nan"), "-"
            query = F.pad(features, (1, 1, 1, 1), mode="reflect")[0]
            padded_hole = F.pad(fhole, (1, 1, 1, 1))[0, 0]
            qmask = padded_hole > 0
            smask = F.max_pool2d(padded_hole[None, None], 3, 1, padding=1)[0, 0] == 0
            gen = torch.Generator(device=device)
            pm_ms = timed("patchmatch", lambda: nearest_patches(query, query_mask=qmask, source_mask=smask, patch_size=3,
                                                                generator=gen.manual_seed(0)))
        print(f"| {side}x{side}x256 | {int(fhole.sum())} | {known} | {swap_ms:.0f} | {shot_ms:.0f} | {pm_ms:.0f} | "
              f"{shot_ms / swap_ms:.1f} | {diff} |")
        if peak:
            print("  peak MiB: " + ", ".join(f"{k} {v:.0f}" for k, v in peak.items()))


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
