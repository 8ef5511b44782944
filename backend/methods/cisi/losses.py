"""CISI-net's loss terms: hole-weighted L1 and perceptual loss, and LSGAN counted on hole patches only.

Where the hole lies in a feature map comes from the paper's mask network: the binary pixel
mask goes through convolutions whose filter elements are all 1/9 and the same pooling as
VGG-16, and the result is thresholded at the layer in question. The discriminator's patches
are found the same way, with the discriminator's kernels and strides.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from backend.methods.cisi.model import next_scale

# VGG-16 `features` indices of pool1, pool2 and pool3 (the paper's perceptual layers) and
# the number of 3x3 convolutions in front of each pool.
VGG16_POOLS = (4, 9, 16)
VGG16_CONVS = (2, 2, 3)


def feature_masks(hole: torch.Tensor, threshold: float) -> list[torch.Tensor]:
    """The hole at pool1, pool2 and pool3: 1/9 filters and 2x2 max pools, then `threshold`.

    At the image border the filter averages only the pixels inside: with zero padding the frame
    would count as known and a hole touching the border would fade out of the mask."""
    m, out = hole.float(), []
    for convs in VGG16_CONVS:
        for _ in range(convs):
            m = F.avg_pool2d(m, 3, 1, 1, count_include_pad=False)
        m = F.max_pool2d(m, 2)
        out.append((m > threshold).float())
    return out


def patch_masks(hole: torch.Tensor, scales: int, layers: int, threshold: float = 0.0) -> list[torch.Tensor]:
    """Which score of each discriminator scale comes from a patch that overlaps the hole.

    The mask follows the discriminator's path: shrunk between scales as the image is, then
    averaged with each 4x4 stride-2 kernel. Above 0 = the patch holds at least one hole pixel."""
    m, out = hole.float(), []
    for i in range(scales):
        if i:
            m = next_scale(m)
        p = m
        for _ in range(layers):
            p = F.avg_pool2d(p, 4, 2, 1, count_include_pad=False)
        out.append((p > threshold).float())
    return out


def weights(mask: torch.Tensor, hole_weight: float, known_weight: float) -> torch.Tensor:
    return mask * hole_weight + (1 - mask) * known_weight


def weighted_l1(out: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Paper eq. 7: the L1 norm of W_p * (out - target), as a mean over the elements."""
    return (weight * (out - target).abs()).mean()


def weighted_perceptual(feats_out: list[torch.Tensor], feats_gt: list[torch.Tensor], masks: list[torch.Tensor],
                        hole_weight: float, known_weight: float) -> torch.Tensor:
    """Paper eq. 8: the same with W_f at each of pool1..pool3, summed over the layers."""
    return sum(weighted_l1(a, b, weights(m, hole_weight, known_weight)) for a, b, m in zip(feats_out, feats_gt, masks))


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (x * mask).sum() / mask.sum().clamp_min(1.0)


def lsgan_d(real: list[torch.Tensor], fake: list[torch.Tensor], masks: list[torch.Tensor]) -> torch.Tensor:
    """Discriminator: (D(real) - 1)^2 + D(fake)^2 over the hole patches, summed over scales (paper eq. 9)."""
    return sum(masked_mean((r - 1) ** 2, m) + masked_mean(f ** 2, m) for r, f, m in zip(real, fake, masks))


def lsgan_g(fake: list[torch.Tensor], masks: list[torch.Tensor]) -> torch.Tensor:
    """Generator: (D(fake) - 1)^2 over the hole patches, summed over scales."""
    return sum(masked_mean((f - 1) ** 2, m) for f, m in zip(fake, masks))
