"""Serving a trained checkpoint through the one engine interface."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from backend import compute
from backend.engines.base import Engine, InpaintOptions, OptionError, Param, Progress, SizeRules, shown, to_number
from backend.methods import get_method


def size_rules(meta: dict[str, Any]) -> SizeRules:
    """Size rules of a checkpoint, known from its metadata without loading weights (ValueError when they make no sense)."""
    cls = get_method(meta["method"])
    config = meta.get("config", {})
    # serve_size: a method that works above its training size (multi-scale) says up to where.
    key = "serve_size" if config.get("serve_size") else "size"
    try:
        native = to_number(config.get(key, 256), int)
    except (ValueError, OverflowError):
        native = 0
    if not 1 <= native <= 2**16:
        raise ValueError(f"config '{key}' must be a whole number of pixels from 1 to 65536, got {shown(config.get(key))}")
    return SizeRules(multiple=cls.multiple, minimum=cls.multiple, native=native, fixed=cls.fixed_size)


def checkpoint_params(meta: dict[str, Any]) -> dict[str, Param]:
    """The serving options of a checkpoint's method; an option its training config also sets (e.g. the
    prior's weight the run was validated with) defaults to the checkpoint's value."""
    config = meta.get("config", {})
    params = get_method(meta["method"]).params
    out = {}
    for k, p in params.items():
        try:
            out[k] = replace(p, default=p.parse(k, config[k])) if k in config else p
        except OptionError:  # a value serving would refuse keeps the method's default
            out[k] = p
    return out


def listed_params(meta: dict[str, Any]) -> dict[str, Any]:
    """The serving options of a checkpoint's method, as GET /api/v1/models lists them."""
    return {k: p.as_dict() for k, p in checkpoint_params(meta).items()}


class LearnedEngine(Engine):
    kind = "learned"

    def __init__(self, name: str, weights: Path, meta: dict[str, Any], device: torch.device):
        super().__init__(device)
        cls = get_method(meta["method"])
        self.id, self.method, self.meta = name, cls.id, meta
        self.description = meta.get("description") or cls.description
        self.model = cls(meta["config"], self.device)
        # Serving needs only the inference networks: drop discriminators and the like.
        self.model.nets = {k: v for k, v in self.model.nets.items() if k in cls.inference_networks}
        state = load_file(str(weights), device="cpu")
        for net_name in cls.inference_networks:
            prefix = f"{net_name}."
            sub = {k[len(prefix):]: v.float() for k, v in state.items() if k.startswith(prefix)}
            if not sub:
                raise ValueError(f"weights of '{net_name}' are missing from {weights.name}")
            self.model.nets[net_name].load_state_dict(sub)  # strict: a mismatch is a broken checkpoint
        for net in self.model.nets.values():
            net.eval()
        self.size = size_rules(meta)
        self.params, self.needs_gradients, self.blends_itself = checkpoint_params(meta), cls.needs_gradients, cls.blends_itself

    def info(self) -> dict[str, Any]:
        return {k: self.meta[k] for k in ("training", "metrics", "config") if k in self.meta}

    def inpaint(self, image: torch.Tensor, hole: torch.Tensor, options: InpaintOptions, progress: Progress) -> torch.Tensor:
        fmt = self.model.config.get("channels_last", "auto")
        image, hole = compute.place_batch(image, self.device, fmt), compute.place_batch(hole, self.device, fmt)
        with compute.autocast(self.device, compute.serving_precision(self.device)):
            out = self.model.serve(image, hole, options, progress)
        return out.float().contiguous()


def load_checkpoint(name: str, weights: Path, meta: dict[str, Any], device: torch.device) -> Engine:
    return LearnedEngine(name, weights, meta, device)
