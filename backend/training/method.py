"""What a learned method brings to training and serving.

A method owns its networks, losses, optimisers and the order of its updates
(one generator step, a GAN's alternating steps, several stages...). The
trainer owns everything else: data, devices, AMP, DDP, EMA, validation,
checkpoints and reports. The two meet through `train_step`, which gets a
StepContext to run backward passes and optimiser steps the trainer's way.
"""
from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from backend.engines.base import InpaintOptions, Param, Progress


def pad_to_multiple(x: torch.Tensor, multiple: int, minimum: int = 0) -> torch.Tensor:
    """Pad right and bottom by reflection up to a multiple, and to at least `minimum` (zeros would read as more hole)."""
    def need(size: int) -> int:
        return max(size + -size % multiple, minimum + -minimum % multiple) - size

    while True:
        need_h, need_w = need(x.shape[-2]), need(x.shape[-1])
        if not (need_h or need_w):
            return x
        # One reflection adds at most size - 1 pixels; repeat for tiny inputs.
        ph, pw = min(need_h, x.shape[-2] - 1), min(need_w, x.shape[-1] - 1)
        if (need_h and not ph) or (need_w and not pw):  # a 1-pixel side has nothing to reflect
            return F.pad(x, (0, need_w, 0, need_h), mode="replicate")
        x = F.pad(x, (0, pw, 0, ph), mode="reflect")


@contextlib.contextmanager
def frozen(*nets: torch.nn.Module):
    """No parameter gradients for `nets` while the loss still flows through them (saves their weight gradients)."""
    states = [[p.requires_grad for p in net.parameters()] for net in nets]
    for net in nets:
        net.requires_grad_(False)
    try:
        yield
    finally:
        for net, state in zip(nets, states):
            for p, s in zip(net.parameters(), state):
                p.requires_grad_(s)


class StepContext:
    """Backward passes and optimiser steps with AMP loss scaling applied uniformly."""

    def __init__(self, optimizers: dict[str, torch.optim.Optimizer], device: torch.device, amp: bool,
                 cpu_bf16: bool = False):
        self.optimizers = optimizers
        self.device = device
        self.amp = amp and device.type == "cuda"
        # bfloat16 on CPUs with native bf16 (AVX512-BF16, AMX): ~1.4x faster convs, no loss scaling needed.
        self.cpu_bf16 = cpu_bf16 and device.type == "cpu"
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)

    def autocast(self):
        if self.amp:
            return torch.autocast("cuda", dtype=torch.float16)
        if self.cpu_bf16:
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def step(self, names: str | tuple[str, ...], loss: torch.Tensor) -> None:
        """Backward `loss` and step optimiser `names` (one or several; their gradients are cleared first)."""
        opts = [self.optimizers[n] for n in ((names,) if isinstance(names, str) else names)]
        for opt in opts:
            opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        for opt in opts:
            self.scaler.step(opt)
        self.scaler.update()


class Method(ABC):
    """Subclass per method (backend/methods/<id>/). Config is a flat dict: the recipe plus CLI overrides."""

    id: str = ""
    description: str = ""
    recipes: dict[str, dict[str, Any]] = {}  # name -> paper defaults; "paper" is the default
    inference_networks: tuple[str, ...] = ("generator",)  # what an exported checkpoint keeps
    multiple: int = 8  # serving pads crops to a multiple of this
    fixed_size: bool = False  # True: the networks take exactly the trained size (serving scales every crop to it)
    params: dict[str, Param] = {}  # serving options (e.g. a search's iterations), validated and listed by the API
    needs_gradients: bool = False  # inference optimises something (e.g. a latent code): serve with autograd on

    def __init__(self, config: dict[str, Any], device: torch.device):
        self.config = config
        self.device = device
        self.nets: dict[str, nn.Module] = self.build_networks()
        for net in self.nets.values():
            net.to(device)

    @classmethod
    def resolve_config(cls, recipe: str | None, overrides: dict[str, Any]) -> dict[str, Any]:
        name = recipe or "paper"
        if name not in cls.recipes:
            raise ValueError(f"method '{cls.id}' has no recipe '{name}' (recipes: {', '.join(cls.recipes)})")
        config = {"recipe": name, **cls.recipes[name]}
        config.update({k: v for k, v in overrides.items() if v is not None})
        return config

    @abstractmethod
    def build_networks(self) -> dict[str, nn.Module]:
        """Every network of the method, by name (e.g. generator, discriminator)."""

    @abstractmethod
    def build_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """Optimisers by name; schedulers go in build_schedulers."""

    def build_schedulers(self, optimizers: dict[str, torch.optim.Optimizer]) -> dict[str, Any]:
        return {}

    @abstractmethod
    def train_step(self, image: torch.Tensor, hole: torch.Tensor, ctx: StepContext, step: int) -> dict[str, float]:
        """One training step on a batch; returns the losses to log (plain floats)."""

    @abstractmethod
    def inpaint(self, image: torch.Tensor, hole: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Fill the hole (image (B,3,H,W) in [0,1] with holes zeroed, hole (B,1,H,W)); networks in eval mode."""

    def drawn_samples(self) -> torch.Tensor | None:
        """Images a generative model draws on its own (N,3,H,W in [0,1]), saved beside the validation grid."""
        return None

    def serve(self, image: torch.Tensor, hole: torch.Tensor, options: InpaintOptions, progress: Progress) -> torch.Tensor:
        """Serving's entry: inpaint with the request's options; iterative methods report progress and may be cancelled."""
        progress(0.0, f"running {self.id}")
        out = self.inpaint(image, hole, options.generator(self.device))
        progress(1.0, "done")
        return out
