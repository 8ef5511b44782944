"""Infer-Match-Translate recipes: the paper's setting and a CPU-sized one."""
from __future__ import annotations

from typing import Any

PAPER: dict[str, Any] = {
    # Image2Feature trains at 256x256; so does Feature2Image here (the paper adds 512x512 for it; train a
    # second run with --set size=512 to match). Batch size is not given. The paper stops early on a
    # held-out loss after about a day per model on a GTX 1080 Ti; the validation PSNR plays that role.
    "size": 256, "batch": 8, "steps": 200_000, "val_every": 2000, "save_every": 2000,
    # Random holes of 32-128 px anywhere in 256x256 (COCO) and a central 224x224 in 512x512 (ImageNet): the
    # centre hole keeps that share of the side at any crop size (112 px at 256).
    "mask_kinds": {"boxes": 0.5, "centre": 0.5}, "mask_ratio": [0.0156, 0.25],
    "mask_ratios": {"centre": [(224 / 512) ** 2, (224 / 512) ** 2]},
    # Adam, lr_G1 2e-3, lr_D1 2e-4, lr_G2 2e-4, lr_D2 2e-4, beta1 0.5 ("momentum 0.5"; beta2 not given).
    "lr_g1": 2e-3, "lr_d1": 2e-4, "lr_g2": 2e-4, "lr_d2": 2e-4, "betas": [0.5, 0.999],
    # Both losses: 10 x perceptual + 1 x adversarial (the standard log GAN loss).
    "w_perceptual": 10.0, "w_adv": 1.0,
    # Image2Feature's feature mask: the hole, with more weight on the hole cells at its boundary
    # (the value is not given).
    "boundary_weight": 2.0,
    # G1: pix2pixHD's global generator widths (64 after the first conv, 256 in the residual blocks);
    # every residual block dilated, the rate is not given. G2's widths follow pix2pix's U-Net.
    "g1_dim": 64, "g1_blocks": 9, "g1_dilation": 2,
    "g2_widths": [256, 256, 512, 512, 512, 512, 512], "g2_tail": [128, 64],
    "d_dim": 64, "d1_layers": 3, "d2_layers": 2,
    # The feature space: relu3_1 of VGG19 in the paper. vgg16-hed works offline (VGG16 and VGG19 are the
    # same network up to relu3_1; HED fine-tuned it for edges). The activations are divided by their RMS,
    # so the loss weights meet terms of about unit size whichever network it is (HED's Caffe-scale
    # activations are ~57x VGG19's): "auto" measures it on the first training batch and the run keeps
    # that number (in its config, which serving reads); a number sets it.
    "features": "vgg16-hed", "features_path": None, "feature_scale": "auto",
    # Feature2Image trains on patch-swapped ground-truth features. From step `mixture_from` on, a
    # fraction `mixture` of each batch gets patch-swapped Image2Feature features instead (the paper's
    # optional fine-tuning on a mixture); 0 leaves it off.
    "mixture": 0.0, "mixture_from": 0,
    # Serving: crops up to this side are filled at their own size through the scales (larger ones
    # are scaled down to it). Image2Feature runs at the training size; each scale above doubles.
    "serve_size": 1024,
    # Validation fills with the paper's tone adjustment (serving's default too; the `tone` option).
    "tone": "align",
}

# Hours on a CPU: 128x128 crops at half the widths, random scales for variety from a few photos, and
# the editors' selection shapes beside the paper's holes.
SMALL: dict[str, Any] = {
    **PAPER, "size": 128, "batch": 4, "steps": 20_000, "val_every": 250, "save_every": 250,
    "crop_fraction": [0.3, 1.0],
    "mask_kinds": {"boxes": 0.35, "centre": 0.25, "strokes": 0.2, "blobs": 0.2}, "mask_ratio": [0.05, 0.3],
    "g1_dim": 32, "g2_widths": [128, 128, 256, 256, 256, 256, 256], "g2_tail": [64, 32], "d_dim": 32,
}

RECIPES: dict[str, dict[str, Any]] = {"paper": PAPER, "small": SMALL}
