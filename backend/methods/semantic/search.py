"""Inference of Yeh et al. (§3.2): search the latent code whose image fits the context, then blend.

z_hat = argmin_z  ||W * (G(z) - y)||_1  +  lambda * log(1 - D(G(z)))
with W the importance weights of eq. 2, Adam on z clipped to [-1, 1] after every
step, many candidate codes per image searched side by side and the one with the
lowest loss kept. Poisson blending (§3.3) is left to the caller.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from backend.methods.semantic.model import FAKE, Discriminator, Generator


def importance_weights(known: torch.Tensor, window: int = 7) -> torch.Tensor:
    """Eq. 2: W_i = sum_{j in N(i)} (1 - M_j) / |N(i)| for a known pixel i, 0 for a missing one.

    known: (B, 1, H, W), M = 1 on known pixels. N(i) is the window x window square centred
    on i, cut to the image, so |N(i)| is smaller at the border. The weight is the share of
    missing pixels around a known pixel: context right next to the hole counts most, and
    context far from it (more than window // 2 pixels away) not at all.
    """
    if window < 1 or window % 2 == 0:
        raise ValueError(f"the window must be a positive odd number, got {window}")
    known = (known > 0.5).float()
    box = torch.ones(1, 1, window, window, device=known.device)
    missing = F.conv2d(1.0 - known, box, padding=window // 2)
    count = F.conv2d(torch.ones_like(known), box, padding=window // 2)
    return known * missing / count


@dataclass
class SearchResult:
    z: torch.Tensor  # (B, z_dim): the best code of each image
    image: torch.Tensor  # (B, 3, H, W) in [-1, 1]: G(z) of the best code
    loss: torch.Tensor  # (B,): its total loss
    first_loss: torch.Tensor  # (B,): the best total loss at the first iteration (for logging and tests)


def search_latent(G: Generator, D: Discriminator, target: torch.Tensor, known: torch.Tensor, *,
                  iterations: int = 1500, candidates: int = 16, prior_weight: float = 0.003, window: int = 7,
                  lr: float = 0.01, generator: torch.Generator | None = None,
                  progress: Callable[[int], None] | None = None) -> SearchResult:
    """Find, for each image, the code whose G(z) best fits its known pixels.

    target: (B, 3, 64, 64) in [-1, 1]; known: (B, 1, 64, 64), 1 on known pixels.
    The B x candidates codes form one batch. Adam's update is element-wise, so each
    code follows exactly the path it would follow searched alone. G and D stay in
    eval mode (running BN statistics), so candidates do not influence each other.
    `progress(i)` is called every few iterations (and may raise to cancel).
    """
    b = target.shape[0]
    device = target.device
    weights = importance_weights(known, window).repeat_interleave(candidates, 0)
    y = target.repeat_interleave(candidates, 0)
    z0 = torch.rand(b * candidates, G.z_dim, generator=generator, device=device if generator is None else generator.device)
    z = (z0.to(device) * 2 - 1).requires_grad_(True)  # uniform in [-1, 1], as z was drawn in training
    opt = torch.optim.Adam([z], lr=lr)
    first = None
    for i in range(iterations):
        loss = _loss(G, D, z, y, weights, prior_weight)
        if first is None:
            first = loss.detach().view(b, candidates).min(1).values
        # Gradients for z only (the networks' own stay untouched). The per-code losses are
        # independent, so the gradient of their sum is each code's own gradient.
        z.grad, = torch.autograd.grad(loss.sum(), z)
        opt.step()
        with torch.no_grad():
            z.clamp_(-1.0, 1.0)
        if progress is not None and (i % 10 == 0 or i == iterations - 1):
            progress(i + 1)
    with torch.no_grad():
        final = _loss(G, D, z, y, weights, prior_weight).view(b, candidates)
        best = final.argmin(1)
        pick = torch.arange(b, device=device) * candidates + best
        z_best = z.detach()[pick]
        image = G(z_best)
    if first is None:  # zero iterations: the random start is the answer
        first = final.min(1).values
    return SearchResult(z_best, image, final.min(1).values, first)


def _loss(G: Generator, D: Discriminator, z: torch.Tensor, y: torch.Tensor, weights: torch.Tensor,
          prior_weight: float) -> torch.Tensor:
    """Per-code context loss (an L1 norm: summed over pixels) plus the prior loss."""
    x = G(z)
    context = (weights * (x - y)).abs().flatten(1).sum(1)
    prior = torch.log_softmax(D(x).float(), dim=1)[:, FAKE]  # log(1 - D(G(z))), D(.) = P(real)
    return context + prior_weight * prior
