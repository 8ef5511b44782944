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
    # §4: L = L2 + 200 L_b1 + 200 L_b2 + 0.05 L_n. The paper gives no reduction or pixel range. L2 and L_n are
    # sums over each image's elements (eq. 2 writes L_n as one) with pixels in [0, 1] and conv3 features on that
    # scale (the Caffe-scale HED activations / 255); the log-GAN terms are means over their logit maps. Gradient
    # norms at the generator relative to L2's, measured on 64 open-photo crops (24 px, centre hole) at steps
    # 0 / 25 / 50 of training: 200 L_b1 8e-5 / 0.010 / 0.073, 200 L_b2 0.0014 / 0.37 / 0.34, 0.05 L_n 0.58 /
    # 0.45 / 0.50: the GAN terms grow in as the discriminators learn. Sums on 0-255 pixels left them at 1e-9 to
    # 1e-8 (inert); means over every element let them outweigh L2 3,000-50,000x within 400 steps.
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

# The paper's setting and losses, one schedule change where it is silent: the GAN terms ramp in over
# the first 4000 steps (on a few dozen photos the discriminators soon win against a young generator and
# the fill drifts from the photo: validation hole PSNR fell from 19.1 dB at step 300 to 16.1 at step 1000
# with the paper's weights from the start). No EMA: averaged weights of this BatchNorm generator do not fit
# the averaged BatchNorm statistics (at step 1000 the average validated 14.4 dB, the weights 19.5).
WARMUP: dict[str, Any] = {**PAPER, "gan_warmup": 4000}

RECIPES: dict[str, dict[str, Any]] = {"paper": PAPER, "large": LARGE, "warmup": WARMUP}
