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

from backend import compute
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


def unwrap(net: torch.nn.Module) -> torch.nn.Module:
    """The network inside a DistributedDataParallel wrapper (itself when not wrapped), for reading its
    attributes; forward passes go through the wrapper, which synchronises the gradients."""
    return getattr(net, "module", net)


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


PRECISIONS = ("bf16", "fp16", "fp32")


def resolve_precision(device: torch.device, precision: str = "auto", amp: bool = True,
                      cpu_bf16: bool | str | None = False) -> str:
    """The precision a run trains in: bf16, fp16 or fp32.

    CUDA follows `precision`; "auto" is bf16 where the GPU has it (fp32's range, so no loss scaling), else fp16.
    `amp=False`, the older switch, still means fp32 unless a precision is named. CPUs follow `cpu_bf16` alone:
    true, false, or "auto" (bf16 where the CPU has it natively, see backend/compute.py).
    """
    if precision != "auto" and precision not in PRECISIONS:  # a typo fails on every device, not only on a GPU
        raise ValueError(f"precision must be auto, {', '.join(PRECISIONS)}; got {precision!r}")
    if device.type == "cpu":
        return "bf16" if compute.cpu_bf16_wanted(cpu_bf16) else "fp32"
    if device.type != "cuda":
        return "fp32"
    if precision == "auto":
        if not amp:
            return "fp32"
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return precision


class LossScalers:
    """fp16 loss scaling with one GradScaler per step group: the optimiser(s) one `StepContext.step` call steps.

    A backward pass carries one scale, so a loss stepping several optimisers uses its group's one scaler, and
    GradScaler.step still checks each optimiser's own gradients and skips only the one holding inf/NaN.
    Separate groups (a discriminator's and a generator's loss) each find their own scale: an overflow backs off
    only its group's scaler. update() follows each group's steps, so no scaler is stepped twice between updates.
    """

    def __init__(self, device_type: str = "cuda"):
        self.device_type = device_type
        self.scalers: dict[str, torch.amp.GradScaler] = {}
        self.loaded: dict[str, dict] = {}  # resumed states of groups not stepped yet
        self.shared: dict = {}  # a resumed single scaler (older states): the start of every group without its own

    def get(self, names: tuple[str, ...]) -> torch.amp.GradScaler:
        key = "+".join(sorted(names))  # the same optimisers in any order are one group
        if key not in self.scalers:
            scaler = torch.amp.GradScaler(self.device_type)
            state = self.loaded.pop(key, None) or self.shared
            if state:
                scaler.load_state_dict(state)
            self.scalers[key] = scaler
        return self.scalers[key]

    def state_dict(self) -> dict[str, dict]:
        # Groups not stepped since the resume keep their saved state (e.g. a stage that runs only on some steps).
        return {**self.loaded, **{k: s.state_dict() for k, s in self.scalers.items()}}

    def load_state_dict(self, states: dict[str, dict], shared: dict | None = None) -> None:
        self.scalers.clear()
        self.loaded = dict(states)
        self.shared = dict(shared or {})


class StepContext:
    """Backward passes and optimiser steps in the run's precision, with fp16 loss scaling applied uniformly."""

    def __init__(self, optimizers: dict[str, torch.optim.Optimizer], device: torch.device, amp: bool = True,
                 cpu_bf16: bool | str | None = False, precision: str = "auto"):
        self.optimizers = optimizers
        self.device = device
        self.precision = resolve_precision(device, precision, amp, cpu_bf16)
        # Only fp16 needs loss scaling: its small range underflows gradients; bf16 shares fp32's range.
        self.scalers = LossScalers(device.type) if self.precision == "fp16" else None

    def autocast(self):
        return compute.autocast(self.device, self.precision)

    def step(self, names: str | tuple[str, ...], loss: torch.Tensor) -> None:
        """Backward `loss` and step optimiser `names` (one or several; their gradients are cleared first)."""
        names = (names,) if isinstance(names, str) else tuple(names)
        opts = [self.optimizers[n] for n in names]
        for opt in opts:
            opt.zero_grad(set_to_none=True)
        if self.scalers is None:
            loss.backward()
            for opt in opts:
                opt.step()
            return
        scaler = self.scalers.get(names)
        scaler.scale(loss).backward()
        for opt in opts:
            scaler.step(opt)  # unscales this optimiser's gradients; skips its step on inf/NaN
        scaler.update()

    def scaler_state_dict(self) -> dict[str, dict]:
        return self.scalers.state_dict() if self.scalers is not None else {}

    def load_scaler_state_dict(self, states: dict[str, dict], shared: dict | None = None) -> None:
        """Resume the loss scales; `shared` is an older state's single scaler, the start of every group."""
        if self.scalers is not None:  # bf16 and fp32 have no scale to resume
            self.scalers.load_state_dict(states, shared)


class Method(ABC):
    """Subclass per method (backend/methods/<id>/). Config is a flat dict: the recipe plus CLI overrides."""

    id: str = ""
    description: str = ""
    recipes: dict[str, dict[str, Any]] = {}  # name -> paper defaults; "paper" is the default
    inference_networks: tuple[str, ...] = ("generator",)  # what an exported checkpoint keeps
    # The trained inference networks an EMA run (--set ema=DECAY) averages: validation and the export use the averages.
    ema_networks: tuple[str, ...] = ("generator",)
    multiple: int = 8  # serving pads crops to a multiple of this
    fixed_size: bool = False  # True: the networks take exactly the trained size (serving scales every crop to it)
    general: bool = True  # False: good for one setting only (a small fixed size, one large hole); pickers list it last
    params: dict[str, Param] = {}  # serving options (e.g. a search's iterations), validated and listed by the API
    needs_gradients: bool = False  # inference optimises something (e.g. a latent code): serve with autograd on
    blends_itself: bool = False  # serving joins the fill to the photo itself (an option such as blend=paste|poisson)

    def __init__(self, config: dict[str, Any], device: torch.device):
        self.config = config
        self.device = device
        self.nets: dict[str, nn.Module] = self.build_networks()
        for net in self.nets.values():
            compute.place_network(net, device, config.get("channels_last", "auto"))

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

    def features(self) -> nn.Module | None:
        """The frozen loss network training reads, built on first call (None: the method has none). The trainer
        calls it before the first step, so missing weights are reported before any training output."""
        return None

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
