"""Recipes for Yeh et al.'s DCGAN: the paper's and a narrower one that trains on a CPU."""
from __future__ import annotations

from typing import Any

PAPER: dict[str, Any] = {
    # §4.1: 64x64 images, random horizontal flips (the trainer flips every crop).
    "size": 64, "width": 64,
    # Scene crops covering 10-100 % of a photo's shorter side: serving hands the DCGAN a square
    # of context around each selection, anything from a detail to the whole picture.
    "crop_fraction": [0.1, 1.0],
    # "We follow the training procedure in [32]" (Radford et al.): Adam 2e-4, beta1 0.5, batch 128.
    "batch": 128, "lr": 2e-4, "betas": [0.5, 0.999], "steps": 50_000,
    "val_every": 1000, "save_every": 1000,
    # §3.2 inference: prior weight 0.003, window 7 (the 1500 Adam iterations on z are a serving
    # option). The paper gives no Adam step size for z; 0.01 is what the public completion code uses.
    "prior_weight": 0.003, "window": 7, "z_lr": 0.01,
    # Validation runs a short search (a full one per validation image would dwarf training).
    "val_iterations": 100, "val_candidates": 4,
    # The hole masks only matter for validation (the DCGAN trains on complete images): the
    # paper's central block and random pattern, both about a quarter of the image.
    "mask_kinds": {"centre": 0.5, "pattern": 0.5}, "mask_ratio": [0.22, 0.28],
}

# Half the width (a quarter of the compute): trains and searches about 4x faster on a CPU.
SMALL: dict[str, Any] = {**PAPER, "width": 32, "batch": 64, "steps": 20_000}

RECIPES: dict[str, dict[str, Any]] = {"paper": PAPER, "small": SMALL}
