"""CISI-net recipes: the paper's setting, a CPU-sized one, and the paper's internal-analysis variants."""
from __future__ import annotations

from typing import Any

PAPER: dict[str, Any] = {
    # Shorter side resized to 286, random 256x256 crops, random mirroring; batch 4, 500k iterations.
    "size": 256, "crop_fraction": [256 / 286, 256 / 286], "batch": 4, "steps": 500_000,
    "val_every": 5000, "save_every": 5000,
    # Test holes: a central 128x128 square or several random rectangles; training pairs two random corruptions
    # of one image. With this ratio range `centre` draws the 128x128 square (a quarter of the area).
    "mask_kinds": {"centre": 0.5, "boxes": 0.5}, "mask_ratio": [0.1, 0.4],
    # Adam with lr 1e-4 (the betas are lost from the text; MUNIT's, which the networks follow).
    "lr": 1e-4, "betas": [0.5, 0.999],
    # Widths and depths are not in the paper: MUNIT's at 256x256 (methods.md §1.2). The inferred-content
    # encoder's dilation rates are not given either: GLCIC's 2, 4, 8, 16, one per residual block.
    "dim": 64, "downsample": 2, "blocks": 4, "style_dim": 8, "mlp_dim": 256, "style_downsample": 4,
    "dilations": [2, 4, 8, 16],
    "ice_head": "conv",  # the ICE's last block: a plain convolution, so its code can equal the SCE's signed one
    "d_scales": 3, "d_dim": 64, "d_layers": 4,
    # Weighted masks: 5 on the hole, 1 on the known region. A feature cell counts as hole when more
    # than half of its 1/9-filtered value comes from the hole (the threshold is not given); a
    # discriminator patch counts when it holds any hole pixel ("patches which overlap with the holes").
    "hole_weight": 5.0, "known_weight": 1.0, "feature_threshold": 0.5, "patch_threshold": 0.0,
    # Term weights are not given: MUNIT's (image 10, latent 1, adversarial 1), and pool1-3 summed with
    # equal weights. The perceptual term reads the offline VGG-16 (ImageNet VGG-16 fine-tuned for edges,
    # Caffe input scale). On the open photos a flat mean-colour fill moves the summed pool1-3
    # activations ~126x as much as the pixels in [-1, 1] (a 2 px blur ~300x): 10/126 gives the
    # perceptual term the L1 term's weight on flat fills and more on blurry ones. `features=vgg16` reads the
    # paper's torchvision ImageNet VGG-16 (vgg16-397923af.pth), its activations put on the HED scale.
    "w_l1": 10.0, "w_perceptual": 10.0 / 126, "w_adv": 1.0, "w_content": 1.0, "w_style": 1.0,
    "features": "vgg16-hed", "features_path": None,
    # The internal analysis (paper §"Internal Analysis"): switches for its three experiments.
    "separate": True,  # content/style separation (False: one fully convolutional encoder-decoder)
    "latent_guidance": True,  # the content code of the corrupted image is guided by the self-content code
}

# A size for hours on a CPU: 128x128 crops at half the widths (a sixteenth of the paper's compute per
# image), random scales for variety from a few photos, and the editors' selection shapes besides the paper's.
SMALL: dict[str, Any] = {
    **PAPER, "size": 128, "crop_fraction": [0.3, 1.0], "dim": 32, "mlp_dim": 128, "d_dim": 32,
    "mask_kinds": {"centre": 0.25, "boxes": 0.35, "strokes": 0.2, "blobs": 0.2}, "mask_ratio": [0.1, 0.4],
    "steps": 20_000, "val_every": 500, "save_every": 250,
}

# Exp 1: no separation, no latent guidance, no weighting. Exp 2: separation only. Exp 3: separation
# and latent guidance, no weighting. The full model adds the weighted loss.
ABLATIONS: dict[str, dict[str, Any]] = {
    "exp1": {"separate": False, "latent_guidance": False, "hole_weight": 1.0},
    "exp2": {"separate": True, "latent_guidance": False, "hole_weight": 1.0},
    "exp3": {"separate": True, "latent_guidance": True, "hole_weight": 1.0},
}

RECIPES: dict[str, dict[str, Any]] = {
    "paper": PAPER, "small": SMALL,
    **{name: {**PAPER, **switches} for name, switches in ABLATIONS.items()},
    **{f"small-{name}": {**SMALL, **switches} for name, switches in ABLATIONS.items()},
}
