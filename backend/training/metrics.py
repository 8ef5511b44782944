"""Quality measured on the hole: PSNR, SSIM and L1, per image; and PSNR and SSIM of the whole image.

The whole-image numbers are what some papers report (known pixels count as
perfect there, so they run higher); the hole numbers are what we compare on.

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
