"""What the server holds: its settings, the device, the engine registry and the model worker."""
from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import torch

from backend.api.errors import ModelNotReady, classify
from backend.engines.base import Engine, Progress
from backend.engines.region import fill_region
from backend.engines.registry import Registry, UnknownModel
from backend.jobs import Worker
from backend.request import FillRequest, FillResult


@dataclass
class ServerConfig:
    models_dir: Path | None = Path("models")
    device: str = "auto"
    token: str | None = None
    max_pixels: int = 100_000_000  # 100 MP: a 12000x8000 scan still fits
    max_upload_mb: int = 512
    host: str = "127.0.0.1"  # the address served on; also a name clients may use in Host
    allowed_hosts: tuple[str, ...] = ()  # more names clients may use in Host (e.g. the machine's DNS name)
    allowed_origins: tuple[str, ...] = ()  # web origins allowed to call the API (CORS); none by default
    max_queued_pixels: int = 64_000_000  # images held by unfinished jobs (~450 MB of 8-bit RGB and masks); one job always fits
    max_waiting_fills: int = 8  # synchronous fills waiting at once: each holds a server thread, so the rest stay free
    max_job_seconds: float | None = 600.0  # a job still running past this ends failed (None: no limit)
    idle_timeout: int = 15  # seconds an idle connection stays open


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda asked for, but torch sees no CUDA GPU")
    if name == "mps" and not torch.backends.mps.is_available():
        raise ValueError("--device mps asked for, but this torch has no MPS support")
    if name not in ("cuda", "mps", "cpu"):
        raise ValueError(f"unknown device '{name}' (auto, cuda, mps or cpu)")
    return torch.device(name)


class Service:
    def __init__(self, config: ServerConfig):
        self.config = config
        self.device = pick_device(config.device)
        # Start torch's CPU thread pool from the main thread: when the model worker thread is
        # the first to use it, CPU engines run many times slower (measured 8 s instead of 0.4 s).
        torch.nn.functional.conv2d(torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 3, 3)).sum().item()
        self.registry = Registry(config.models_dir, self.device)
        self.worker = Worker(classify, max_pixels=config.max_queued_pixels, budget_s=config.max_job_seconds,
                             size_of=lambda result: result.pixels.nbytes)
        self.waiting_fills = threading.BoundedSemaphore(config.max_waiting_fills)

    def check_model(self, model: str | None) -> str:
        """Resolve a model id and make sure it can run, before any work is queued."""
        model = model or self.registry.default
        listing = next((entry for entry in self.registry.listings() if entry.id == model), None)
        if listing is None:
            raise UnknownModel(model)
        if listing.status != "ready":
            raise ModelNotReady(f"model '{model}' is {listing.status}: {listing.reason}")
        return model

    def engine(self, model: str | None) -> Engine:
        try:
            engine = self.registry.get(model)
        except RuntimeError as e:
            raise ModelNotReady(str(e)) from None
        status, reason = engine.status()
        if status != "ready":
            raise ModelNotReady(f"model '{engine.id}' is {status}: {reason}")
        return engine

    def fill(self, req: FillRequest, progress: Progress) -> FillResult:
        return fill_region(self.engine(req.model), req, progress)
