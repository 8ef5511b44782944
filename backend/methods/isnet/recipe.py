"""ISNet training recipes. "paper" is the paper plus the official code where the paper is silent (methods.md §5)."""
from __future__ import annotations

from typing import Any

PAPER: dict[str, Any] = {
    "size": 256, "batch": 6,  # official config.yml.example: 256x256 crops, batch 6
    "steps": 500_000,  # official: 100 "epochs" x 5000 iterations
    "val_every": 5000, "save_every": 5000,  # the official evaluate/save interval (one "epoch")
    "blocks": 4,  # residual blocks per branch and stage; the paper's Table 2 tries 1 to 4
    "init": "official",  # N(0, 0.001) as the official code; "kaiming" learns far faster on short schedules (model.py)
    "lr": 1e-4, "d_lr": 1e-5, "betas": [0.0, 0.9],  # official Adam (D2G_LR 0.1); no decay
    # Paper eq. 2 weights; the adversarial term is the hinge loss (paper eq. 3; the official YAML says nsgan).
    "w_l1": 1.0, "w_adv": 0.1, "w_perceptual": 0.1, "w_style": 250.0, "w_fm": 10.0,
    # What D sees for a fake. The paper's eq. 3 writes D(I_pred * (1 - M)), M = 0 on the hole;
    # read literally every fake would be black outside the hole while reals are whole photos, a
    # giveaway that teaches D nothing about the fill. We read it as the prediction in the hole
    # pasted into the photo (the composite the paper scores). "output" = the official code's raw
    # output; "hole" = the literal product.
    "d_fake": "composite",
    # VGG19 with ImageNet weights and no input normalisation (official code); relu taps in losses.py.
    "features": "vgg19", "features_path": None,
    # Official masks are NVIDIA irregular masks (free-form strokes), evaluated at 10-50 % holes.
    # Our generator's strokes are the analogue; some object-shaped blobs serve object removal.
    "mask_kinds": {"strokes": 0.8, "blobs": 0.2}, "mask_ratio": [0.1, 0.5],
}

# A schedule that fits hours on a CPU or one GPU instead of ~500k steps: the paper's losses, weights,
# optimiser and masks, with the smallest stage depth of Table 2, He-normal init (model.py says why),
# 128 px crops, and the offline VGG16 (HED) as the loss network. That network takes 0-255 input, so its
# activations are 255x VGG19's on [0,1]: the perceptual weight is divided by 255, the style weight by 255^2.
SHORT: dict[str, Any] = {
    **PAPER, "size": 128, "steps": 20_000, "val_every": 500, "save_every": 500, "blocks": 1, "init": "kaiming",
    "features": "vgg16-hed", "w_perceptual": PAPER["w_perceptual"] / 255, "w_style": PAPER["w_style"] / 255**2,
}

RECIPES: dict[str, dict[str, Any]] = {"paper": PAPER, "short": SHORT}
