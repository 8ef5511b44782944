"""Neural-features GAN recipes: the paper's own 24x24 setting and a larger free-form one."""
from __future__ import annotations

from typing import Any

PAPER: dict[str, Any] = {
    # §4.1: images cropped and scaled to 24x24; an 8x8 hole fixed at the centre; flip, shift and rotation.
    "size": 24, "mask_kinds": {"centre": 1.0}, "mask_ratio": [1 / 9, 1 / 9],
    "crop_fraction": [0.5, 1.0],  # ImageNet-style thumbnails: a crop covers half to all of the shorter side
    "rotate": 10.0,  # degrees; the paper names rotation without an angle
    # §3.5 "similar to DCGAN": Adam 2e-4, beta1 0.5, batch 64 (no numbers in the paper).
    "batch": 64, "lr": 2e-4, "betas": [0.5, 0.999],
    "steps": 20_000, "val_every": 1000, "save_every": 1000,
    # §4: L = L2 + 200 L_b1 + 200 L_b2 + 0.05 L_n. The paper gives no reduction or pixel range. Each term is a
    # mean over its elements, pixels in [0, 1] and conv3 features on that scale (the Caffe-scale HED
    # activations / 255): then every term gets a real share of the generator's gradient. Measured at
    # init on a batch of 64 open-photo crops (24 px, centre hole), gradient norms relative to L2's:
    # 200 L_b1 0.11, 200 L_b2 2.0, 0.05 L_n 0.09 (the large recipe: 0.32, 4.2, 0.03). Per-image sums on 0-255 pixels gave the GAN terms
    # 1e-9 to 1e-8 of L2's: they did nothing.
    "w_l2": 1.0, "w_global": 200.0, "w_local": 200.0, "w_feature": 0.05,
    # The "conv3" neural features: conv3_1 (pre-ReLU, features index 10), the same sub-network in VGG16
    # and VGG19. vgg16-hed works offline; vgg19 reads torchvision's ImageNet file (features.py).
    "features": "vgg16-hed", "features_path": None,
    "local_size": 8,  # the local discriminator sees the hole's box: the 8x8 hole itself (Table 4 gives no size)
}

# The tables' own numbers fit 64x64 (model.py), and serving meets free-form selections:
# 64x64 scene crops with strokes, boxes and blobs, the local discriminator on a 32x32 window
# centred on the hole's box (half the image, as GLCIC's local crop).
LARGE: dict[str, Any] = {
    **PAPER, "size": 64, "batch": 32, "mask_kinds": {"strokes": 0.5, "boxes": 0.2, "blobs": 0.3}, "mask_ratio": [0.05, 0.4],
    "crop_fraction": [0.1, 1.0], "local_size": 32, "steps": 20_000,
}

RECIPES: dict[str, dict[str, Any]] = {"paper": PAPER, "large": LARGE}
