"""ISNet's loss terms on top of the shared ones (backend/training/losses.py)."""
from __future__ import annotations

import torch

# torchvision VGG19 `features` indices (methods.md §6): perceptual on relu1_1..relu5_1,
# style on relu2_2, relu3_4, relu4_4, relu5_2 (official code).
PERCEPTUAL_TAPS = (1, 6, 11, 20, 29)
STYLE_TAPS = (8, 17, 26, 31)
VGG_TAPS = tuple(sorted(PERCEPTUAL_TAPS + STYLE_TAPS))


def split_taps(feats: list[torch.Tensor], vgg19: bool) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """(perceptual, style) activations from one pass of the feature network.

    VGG19 (real or random) returns VGG_TAPS in order; any other feature network
    returns its own five taps, shallow to deep: all five feed the perceptual term
    and the deepest four the style term, mirroring ISNet's choice of depths.
    """
    if not vgg19:
        return feats, feats[1:]
    at = dict(zip(VGG_TAPS, feats))
    return [at[i] for i in PERCEPTUAL_TAPS], [at[i] for i in STYLE_TAPS]


def hole_normalised_l1(out: torch.Tensor, target: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
    """Mean |out - target| over all pixels divided by the batch's hole fraction (official code).

    The paper says only "L1 distance"; dividing by the hole fraction keeps the term's
    weight steady across small and large holes.
    """
    return (out - target).abs().mean() / hole.mean().clamp_min(1e-3)
