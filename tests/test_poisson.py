"""The coarse-to-fine Laplace solver behind the diffusion fill and Poisson blending."""
import torch

from backend.engines.poisson import harmonic_fill, poisson_blend


def test_harmonic_fill_reproduces_a_linear_ramp():
    ramp = torch.linspace(0, 1, 200).view(1, 1, 1, 200).expand(1, 3, 150, 200).contiguous()
    known = torch.ones(1, 1, 150, 200)
    known[..., 30:120, 40:170] = 0  # a big hole: plain Jacobi would need thousands of sweeps
    out = harmonic_fill(ramp, known, sweeps=10)
    assert (out - ramp).abs().max() < 0.02
    assert torch.equal(out[known.expand_as(out) > 0], ramp[known.expand_as(ramp) > 0])


def test_poisson_blend_keeps_gradients_and_matches_border():
    target = torch.full((1, 3, 64, 64), 0.6)
    texture = 0.05 * torch.sin(torch.arange(64.0) / 3).view(1, 1, 1, 64).expand(1, 3, 64, 64)
    fill = 0.2 + texture  # right texture, wrong brightness
    hole = torch.zeros(1, 1, 64, 64)
    hole[..., 16:48, 16:48] = 1
    out = poisson_blend(fill, target, hole)
    inner = out[..., 20:44, 20:44]
    assert (inner.mean() - 0.6).abs() < 0.03  # brightness taken from the surroundings
    grad_out = inner[..., 1:] - inner[..., :-1]
    grad_fill = fill[..., 20:44, 21:44] - fill[..., 20:44, 20:43]
    assert (grad_out - grad_fill).abs().mean() < 0.01  # texture kept
