"""Pictures people would rather look at than read: sample grids and loss curves."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from backend.images import encode_png


def show_hole(image: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
    """The input as the model saw it, hole painted light grey."""
    return image * (1 - hole) + 0.85 * hole


def grid(rows: list[list[torch.Tensor]], pad: int = 4) -> np.ndarray:
    """Tile (3,H,W) tensors in [0,1] into a uint8 HxWx3 picture with white gutters."""
    h, w = rows[0][0].shape[-2:]
    cols = max(len(r) for r in rows)
    out = np.full((len(rows) * (h + pad) + pad, cols * (w + pad) + pad, 3), 255, np.uint8)
    for i, row in enumerate(rows):
        for j, t in enumerate(row):
            tile = (t.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255 + 0.5).astype(np.uint8)
            y, x = pad + i * (h + pad), pad + j * (w + pad)
            out[y:y + h, x:x + w] = tile
    return out


def sample_grid(samples: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]], path: Path) -> None:
    """One row per sample: input | output | ground truth."""
    if not samples:
        return
    rows = [[show_hole(img, hole), out, img] for img, hole, out in samples]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode_png(grid(rows), compression=6))


def tiles(images: torch.Tensor, path: Path, per_row: int = 8) -> None:
    """Images (N,3,H,W) in [0,1] in rows of `per_row`, e.g. what a generative model draws from noise."""
    rows = [list(images[i:i + per_row]) for i in range(0, len(images), per_row)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode_png(grid(rows, pad=2), compression=6))


def loss_curves(log: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    losses = [r for r in log if "loss" in r]
    vals = [r for r in log if "val" in r]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for key in sorted({k for r in losses for k in r["loss"]}):
        pts = [(r["step"], r["loss"][key]) for r in losses if key in r["loss"]]
        ax1.plot(*zip(*pts), label=key, linewidth=1)
    ax1.set_xlabel("step")
    ax1.set_title("training losses")
    if losses:
        ax1.legend(fontsize=8)
    if vals:
        ax2.plot([r["step"] for r in vals], [r["val"]["psnr"] for r in vals], "o-", label="hole PSNR (dB)")
        ax3 = ax2.twinx()
        ax3.plot([r["step"] for r in vals], [r["val"]["ssim"] for r in vals], "s--", color="tab:orange", label="hole SSIM")
        ax3.set_ylabel("SSIM")
        ax2.set_ylabel("PSNR (dB)")
        ax2.legend(loc="upper left", fontsize=8)
        ax3.legend(loc="lower right", fontsize=8)
    ax2.set_xlabel("step")
    ax2.set_title("validation")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
