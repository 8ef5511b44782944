"""Quality measured on the hole: PSNR, SSIM and L1, per image; and PSNR and SSIM of the whole image.

The whole-image numbers are what some papers report (known pixels count as
perfect there, so they run higher); the hole numbers are what we compare on.
PSNR and SSIM reward a blurred fill over a sharp one that is slightly off, so
`eval` adds two perceptual numbers: texture sharpness (the fill's gradient
energy against the truth's) and a feature distance (LPIPS-like, on VGG16
features).

All take (B,3,H,W) tensors in [0,1] and a (B,1,H,W) hole mask and return a
(B,) tensor, so training validation, `eval` and the benchmarks report the
same numbers.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def _hole_mean(values: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
    weight = hole.expand_as(values)
    return (values * weight).sum(dim=(1, 2, 3)) / weight.sum(dim=(1, 2, 3)).clamp(min=1)


def masked_l1(pred: torch.Tensor, target: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
    return _hole_mean((pred - target).abs(), hole)


def hole_psnr(pred: torch.Tensor, target: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
    mse = _hole_mean((pred - target) ** 2, hole)
    return 10 * torch.log10(1.0 / mse.clamp(min=1e-10))


def _gaussian(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float64) - size // 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return (g / g.sum()).float()


def ssim_map(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-pixel SSIM (Wang et al. 2004: 11x11 Gaussian window, sigma 1.5, K1 0.01, K2 0.03), per channel."""
    c = pred.shape[1]
    g = _gaussian().to(pred)
    kx = g.view(1, 1, 1, -1).repeat(c, 1, 1, 1)
    ky = g.view(1, 1, -1, 1).repeat(c, 1, 1, 1)

    def blur(x):
        x = F.pad(x, (5, 5, 5, 5), mode="reflect")
        return F.conv2d(F.conv2d(x, kx, groups=c), ky, groups=c)

    mu_p, mu_t = blur(pred), blur(target)
    var_p = blur(pred * pred) - mu_p**2
    var_t = blur(target * target) - mu_t**2
    cov = blur(pred * target) - mu_p * mu_t
    c1, c2 = 0.01**2, 0.03**2
    return ((2 * mu_p * mu_t + c1) * (2 * cov + c2)) / ((mu_p**2 + mu_t**2 + c1) * (var_p + var_t + c2))


def hole_ssim(pred: torch.Tensor, target: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
    """SSIM computed on the whole image (windows see the border) and averaged over hole pixels."""
    return _hole_mean(ssim_map(pred, target), hole)


def all_metrics(pred: torch.Tensor, target: torch.Tensor, hole: torch.Tensor) -> dict[str, torch.Tensor]:
    everywhere = torch.ones_like(hole)
    ssim = ssim_map(pred, target)  # the costly part: once for both averages
    return {"psnr": hole_psnr(pred, target, hole), "ssim": _hole_mean(ssim, hole),
            "l1": masked_l1(pred, target, hole),
            "psnr_image": hole_psnr(pred, target, everywhere), "ssim_image": _hole_mean(ssim, everywhere)}


def _gradient_magnitude(x: torch.Tensor) -> torch.Tensor:
    """(B, 1, H-1, W-1) forward-difference gradient magnitude of the grey image."""
    grey = x.mean(1, keepdim=True)
    gx = grey[..., :-1, 1:] - grey[..., :-1, :-1]
    gy = grey[..., 1:, :-1] - grey[..., :-1, :-1]
    return (gx * gx + gy * gy).sqrt()


def texture_sharpness(pred: torch.Tensor, target: torch.Tensor, hole: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """Mean gradient magnitude of the fill inside the hole over the truth's there: 1.0 = as textured as the truth.

    Only differences between hole pixels count, so a seam at the hole's border
    is not taken for texture (holes too thin to hold one such pair fall back
    to every hole pixel). A blur scores well under 1, noise over 1.
    """
    inner = hole[..., :-1, :-1] * hole[..., :-1, 1:] * hole[..., 1:, :-1]
    empty = inner.sum(dim=(1, 2, 3), keepdim=True) == 0
    inner = torch.where(empty, hole[..., :-1, :-1], inner)
    return _hole_mean(_gradient_magnitude(pred), inner) / _hole_mean(_gradient_magnitude(target), inner).clamp(min=eps)


def unit_features(net: torch.nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """`net`'s activations of x, each position's channel vector scaled to unit length (as LPIPS does)."""
    return [f / (f.norm(dim=1, keepdim=True) + 1e-10) for f in net(x.contiguous(memory_format=torch.channels_last))]


def feature_distance(pred: list[torch.Tensor], target: list[torch.Tensor], hole: torch.Tensor) -> torch.Tensor:
    """LPIPS-like distance over the hole between two images' `unit_features` (0 = same features).

    Per layer, the squared distance between the two unit vectors at each
    position (0..4), averaged over the hole pooled to that layer's size (a
    position counts by the share of hole under it); then the mean over layers.
    Zhang et al. (2018) learn a weight per channel; here every channel counts alike.
    """
    total = torch.zeros(hole.shape[0], device=hole.device)
    for a, b in zip(pred, target):
        total += _hole_mean((a - b).pow(2).sum(1, keepdim=True), F.adaptive_avg_pool2d(hole, a.shape[-2:]))
    return total / len(pred)
