"""Loss terms the inpainting papers share: perceptual, style, hinge adversarial, feature matching."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def perceptual(feats_out: list[torch.Tensor], feats_gt: list[torch.Tensor]) -> torch.Tensor:
    """Mean L1 distance of activations, summed over layers."""
    return sum(F.l1_loss(a, b) for a, b in zip(feats_out, feats_gt))


def gram(f: torch.Tensor) -> torch.Tensor:
    b, c, h, w = f.shape
    f = f.reshape(b, c, h * w)
    return f @ f.transpose(1, 2) / (c * h * w)


def style(feats_out: list[torch.Tensor], feats_gt: list[torch.Tensor]) -> torch.Tensor:
    """L1 distance of Gram matrices (computed in float32: they overflow in half precision)."""
    return sum(F.l1_loss(gram(a.float()), gram(b.float())) for a, b in zip(feats_out, feats_gt))


def hinge_d(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()


def hinge_g(fake_logits: torch.Tensor) -> torch.Tensor:
    return -fake_logits.mean()


def feature_matching(feats_fake: list[torch.Tensor], feats_real: list[torch.Tensor]) -> torch.Tensor:
    """L1 between the discriminator's intermediate activations on fake and (detached) real images."""
    return sum(F.l1_loss(a, b.detach()) for a, b in zip(feats_fake, feats_real))
