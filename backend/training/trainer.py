"""The one trainer every method shares: data, devices, AMP, DDP, EMA, validation, checkpoints, reports.

Single device by default; under `torchrun` the same code runs DistributedDataParallel,
with rank 0 alone validating, logging and saving.
"""
from __future__ import annotations

import contextlib
import copy
import glob
import json
import os
import signal
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from safetensors.torch import load_file
from torch.utils.data import DataLoader

from backend import __version__, compute
from backend.methods import get_method
from backend.training import checkpoint, reports
from backend.training.data import MaskSpec, TrainingPhotos, ValidationPhotos, loader_workers, photo_files, split, summary
from backend.training.method import Method, StepContext, unwrap
from backend.training.metrics import all_metrics

DEFAULTS: dict[str, Any] = {
    "size": 256, "batch": 8, "steps": 10000, "seed": 0, "val_every": 500, "save_every": 1000, "log_every": 10,
    "val_fraction": 0.15, "val_per_photo": 2, "val_crops": 500, "mask_ratio": [0.1, 0.5],
    "mask_kinds": {"strokes": 0.5, "boxes": 0.2, "blobs": 0.3}, "ema": 0.0,
    "workers": "auto",  # data loader processes; "auto": see loader_workers
    "crop_fraction": None, "rotate": 0.0,  # see TrainingPhotos
    # CUDA precision: "auto" is bf16 where the GPU has it, else fp16 (loss-scaled); "bf16", "fp16" or "fp32" pick one.
    # "amp": false, the older switch, means fp32. CPUs ignore both: "cpu_bf16" alone decides there, "auto" being
    # bf16 on CPUs with native bf16 (AVX512-BF16, AMX) and fp32 elsewhere. Memory format: backend/compute.py.
    "precision": "auto", "amp": True, "cpu_bf16": "auto", "channels_last": "auto",
}


@dataclass
class TrainOptions:
    method: str
    data: Path
    out: Path
    recipe: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)  # size, batch, steps and any recipe key
    resume: bool = False
    device: str = "auto"
    half_export: bool = False
    init_from: Path | None = None  # a served checkpoint to warm-start a new run from (fresh optimisers)


class Distributed:
    """Rank, world size and device; plain single-device values when not under torchrun."""

    def __init__(self, device: str):
        from backend.service import pick_device

        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", "0"))
        self.device = pick_device(device)
        if self.world > 1:  # by the device the run uses: --device cpu on a GPU machine needs gloo
            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
        if self.device.type == "cuda" and self.world > 1:
            self.device = torch.device("cuda", local)
            torch.cuda.set_device(self.device)

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def sync_batchnorm(self) -> bool:
        """Whether BatchNorm turns into SyncBatchNorm: with several processes, on CUDA (torch has no CPU SyncBatchNorm)."""
        return self.world > 1 and self.device.type == "cuda"

    def wrap(self, net: torch.nn.Module) -> torch.nn.Module:
        """A trainable network in DDP when there are several processes; others as they are.

        BatchNorm then normalises over every process's batch where it can (`sync_batchnorm`); on the CPU each
        process keeps its own statistics. SyncBatchNorm has BatchNorm's state-dict keys, so checkpoints are the
        same either way. Methods freeze whole networks for some passes (`frozen`): such a pass leaves DDP no
        gradient to wait for, so find_unused_parameters (a graph search every step) is not needed.
        """
        if self.world == 1 or not any(p.requires_grad for p in net.parameters()):
            return net
        if self.sync_batchnorm:
            net = torch.nn.SyncBatchNorm.convert_sync_batchnorm(net)  # shares the parameters the optimisers hold
        ids = [self.device.index] if self.device.type == "cuda" else None
        return torch.nn.parallel.DistributedDataParallel(net, device_ids=ids, broadcast_buffers=False)

    def close(self) -> None:
        if self.world > 1:
            dist.destroy_process_group()


class EMA:
    """Exponential moving averages of the method's `ema_networks`, used in their place for validation and export.

    The training state keeps them as "ema.<network>.<key>" beside the trained weights."""

    def __init__(self, nets: dict[str, torch.nn.Module], names: tuple[str, ...], decay: float):
        self.decay = decay
        self.shadows = {k: copy.deepcopy(unwrap(nets[k])).eval().requires_grad_(False) for k in names}
        normed = [k for k, net in self.shadows.items() if any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
                                                              for m in net.modules())]
        if normed:  # measured on NF-GAN's generator: the average validated 5 dB under the weights it averaged
            warnings.warn(f"EMA of {', '.join(normed)}, which use(s) BatchNorm: averaged weights do not fit averaged "
                          "BatchNorm statistics, so validation and the export may be far worse than the weights; "
                          "train without --set ema for such networks", stacklevel=2)

    @torch.no_grad()
    def update(self, nets: dict[str, torch.nn.Module], step: int) -> None:
        """Average in the weights after `step` updates. The decay ramps up as (1 + step) / (10 + step) to its
        setting, so the first weights (random) fade out within a few dozen steps instead of thousands: with a
        fixed 0.995, 8 % of a BatchNorm generator was still its random start at step 500 and validated 5.7 dB
        under the trained weights. A function of the step alone, so a resumed run averages exactly alike."""
        decay = min(self.decay, (1 + step) / (10 + step))
        for name, shadow in self.shadows.items():
            src = unwrap(nets[name]).state_dict()
            for k, v in shadow.state_dict().items():
                if v.is_floating_point():
                    v.lerp_(src[k], 1 - decay)
                else:
                    v.copy_(src[k])

    def tensors(self) -> dict[str, torch.Tensor]:
        return checkpoint.network_tensors({f"ema.{k}": v for k, v in self.shadows.items()})

    def load(self, tensors: dict[str, torch.Tensor]) -> None:
        """Shadows from a training state; one it lacks (EMA switched on at a resume) stays a copy of the weights."""
        older = {k[len("ema."):]: v for k, v in tensors.items() if k.startswith("ema.")}
        for name, shadow in self.shadows.items():
            prefix = f"ema.{name}."
            state = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
            if not state and name == "generator" and older.keys() == shadow.state_dict().keys():
                state = older  # states from before per-network shadows: the generator's alone, as "ema.<key>"
            if state:
                shadow.load_state_dict(state)


@contextlib.contextmanager
def evaluation(method: Method, ema: EMA | None):
    """Plain (unwrapped, eval-mode) networks, with the EMA shadows swapped in when there are some."""
    wrapped = dict(method.nets)
    method.nets = {k: unwrap(v) for k, v in wrapped.items()}
    if ema is not None:
        method.nets.update(ema.shadows)
    modes = {k: v.training for k, v in method.nets.items()}
    for net in method.nets.values():
        net.eval()
    try:
        with torch.no_grad():
            yield method
    finally:
        for k, net in method.nets.items():
            net.train(modes[k])
        method.nets = wrapped


def validate(method: Method, ema: EMA | None, val: ValidationPhotos, device: torch.device, batch: int = 8):
    """Mean hole PSNR, SSIM and L1 over the fixed validation set (its readable photos), and the first outputs for the grid."""
    sums: dict[str, float] = {}
    samples, count = [], 0
    with evaluation(method, ema):
        gen = torch.Generator(device=device).manual_seed(0)
        for start in range(0, len(val), batch):
            items = [item for item in (val[i] for i in range(start, min(len(val), start + batch))) if item is not None]
            if not items:
                continue
            count += len(items)
            image, hole = (compute.place_batch(torch.stack(t), device, method.config.get("channels_last", "auto"))
                           for t in zip(*items))
            out = method.inpaint(image * (1 - hole), hole, gen).clamp(0, 1)
            out = image * (1 - hole) + out * hole
            for k, v in all_metrics(out, image, hole).items():
                sums[k] = sums.get(k, 0.0) + float(v.sum())
            if len(samples) < 6:
                samples.extend(zip(image.cpu(), hole.cpu(), out.cpu()))
    return {k: v / count for k, v in sums.items()}, samples[:6]


def _rng_state(device: torch.device) -> dict[str, torch.Tensor]:
    state = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict[str, torch.Tensor], device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def _term_as_interrupt():
    """Treat SIGTERM (kill, a closed terminal, a job scheduler) like Ctrl-C, so the run saves before it ends.

    Returns what puts the previous handler back. Only the main thread can set handlers.
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def interrupt(signum, frame):
        # Sent to a process group (schedulers, closed terminals), SIGTERM also ends the data workers, and the
        # DataLoader's SIGCHLD handler would then fail the main process in the middle of its last save.
        if hasattr(signal, "SIGCHLD"):
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    return lambda: signal.signal(signal.SIGTERM, previous)


WARM_START_WARMUP = 200  # steps of linear learning-rate warm-up for a run started with --init-from


def warm_start_source(path: Path, method_id: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The weights and card of a served checkpoint (NAME.safetensors, or its stem) to start a run from."""
    weights = path if path.suffix == ".safetensors" else path.with_name(path.name + ".safetensors")
    if not weights.is_file():
        raise SystemExit(f"--init-from {path}: no such checkpoint ({weights.name} not found)")
    card_path = weights.with_suffix(".json")
    try:
        card = json.loads(card_path.read_text()) if card_path.is_file() else {}
        tensors = load_file(str(weights))
    except Exception as e:  # noqa: BLE001 - OSError, bad JSON, or safetensors' own error for a damaged file
        raise SystemExit(f"--init-from {path}: unreadable checkpoint ({e})") from None
    if card.get("method", method_id) != method_id:
        raise SystemExit(f"--init-from {path}: a {card['method']} checkpoint, not {method_id}")
    return tensors, card


def warm_start(nets: dict[str, torch.nn.Module], tensors: dict[str, torch.Tensor], needed: tuple[str, ...],
               source: Path) -> None:
    """Load every network the checkpoint holds (a served one holds the inference networks; the others, such
    as a discriminator, start fresh). Half-precision weights are widened by the copy into fp32 parameters."""
    held = {name for name in nets if any(k.startswith(f"{name}.") for k in tensors)}
    missing = [n for n in needed if n not in held]
    if missing:
        raise SystemExit(f"--init-from {source}: holds no weights for {', '.join(missing)}")
    try:
        checkpoint.load_networks({n: nets[n] for n in held}, tensors)
    except RuntimeError as e:  # another architecture (e.g. other blocks or widths): name the first mismatch
        first = str(e).split("\n")[1].strip() if "\n" in str(e) else str(e)
        raise SystemExit(f"--init-from {source}: does not fit this method's config: {first}") from None


@contextlib.contextmanager
def warmed_up(optimizers: dict[str, torch.optim.Optimizer], step: int, warmup: int):
    """Scale every learning rate by (step + 1) / warmup for this step only; the schedulers keep stepping the
    planned rates, so a warm-up composes with any of them and resumes from the step number alone."""
    factor = min(1.0, (step + 1) / warmup) if warmup > 0 else 1.0
    if factor == 1.0:
        yield
        return
    groups = [g for o in optimizers.values() for g in o.param_groups]
    planned = [g["lr"] for g in groups]
    for g, lr in zip(groups, planned):
        g["lr"] = lr * factor
    try:
        yield
    finally:
        for g, lr in zip(groups, planned):
            g["lr"] = lr


def check_out(stem: Path, folder: Path) -> None:
    """Fail now, in one line, where nothing could be saved: under a file, or in a folder this user cannot write."""
    for path in (folder, stem.parent):
        existing = path
        while not existing.exists():  # also False below a file
            existing = existing.parent
        if not existing.is_dir():
            raise SystemExit(f"--out {stem}: {existing} is a file, so nothing can be saved under it")
        if not os.access(existing, os.W_OK | os.X_OK):
            raise SystemExit(f"--out {stem}: {existing} is not writable")


def step_context(cfg: dict[str, Any], optimizers: dict, device: torch.device) -> StepContext:
    # Configs saved before the "precision" key resume as "auto", their "amp" deciding fp32.
    return StepContext(optimizers, device, amp=bool(cfg.get("amp", True)), cpu_bf16=cfg.get("cpu_bf16", False),
                       precision=cfg.get("precision", "auto"))


def training_error(cls: type[Method], cfg: dict[str, Any], device: torch.device, size: int) -> Exception | None:
    """What one training step of a fresh copy of the method raises on a random batch of two at `size` (None: it runs)."""
    cfg = {**cfg, "size": size}
    masks = MaskSpec(cfg["mask_kinds"], tuple(cfg["mask_ratio"]), cfg.get("mask_ratios"))
    rng, batch = np.random.default_rng(0), min(2, int(cfg["batch"]))
    method = None
    try:
        holes = [torch.from_numpy((masks.draw(rng, size) > 0).astype(np.float32))[None] for _ in range(batch)]
        image = torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(0))
        method = cls(cfg, device)
        method.train_step(image.to(device), torch.stack(holes).to(device), step_context(cfg, method.build_optimizers(), device), 0)
        return None
    except (RuntimeError, ValueError) as e:  # torch's shape errors, BatchNorm on a 1x1 map, masks that do not fit
        return e
    finally:
        del method
        if device.type == "cuda":
            torch.cuda.empty_cache()


def check_size(cls: type[Method], cfg: dict[str, Any], device: torch.device, known: int) -> None:
    """Refuse a size the method cannot train at, with the smallest that works, before the run spends anything.

    Each size is tried with one step as above. `known` is a size that trains (the recipe's, or the resumed
    run's); from the failing size the search climbs multiples of the method's `multiple` in doubling strides
    up to it, then bisects back. Where `known` fails too, the size is not the problem: the first error is raised.
    """
    size, step = int(cfg["size"]), cls.multiple
    error = training_error(cls, cfg, device, size)
    if error is None:
        return
    what = f"{cls.id} --recipe {cfg.get('recipe', 'paper')}"
    reason = str(error).splitlines()[0] if str(error) else type(error).__name__

    def works(s: int) -> bool:
        return training_error(cls, cfg, device, s) is None

    if size > known:
        if works(known):
            raise SystemExit(f"--size {size} does not work for {what} ({reason}); {known} does") from error
        raise error
    failing = size
    if size > step and size % step:
        up = -(-size // step) * step
        if works(up):
            raise SystemExit(f"--size {size} does not work for {what} ({reason}); it takes multiples of {step}, e.g. {up}") from error
        failing = up
    stride = step
    candidate = (failing // step + 1) * step
    while candidate < known and not works(candidate):
        failing, stride = candidate, 2 * stride
        candidate = failing + stride
    if candidate >= known:
        candidate = known
        if not works(known):
            raise error
    while (mid := (failing + candidate) // 2 // step * step) > failing:
        failing, candidate = (failing, mid) if works(mid) else (mid, candidate)
    raise SystemExit(f"--size {size} is too small for {what}: the smallest that works is {candidate}") from error


class Trainer:
    def __init__(self, opts: TrainOptions):
        self.opts = opts
        self.dist = Distributed(opts.device)
        self.cls = get_method(opts.method)
        self.stem = Path(opts.out)
        self.folder = self.stem.with_name(self.stem.name + ".train")
        check_out(self.stem, self.folder)
        if self.dist.main:  # what a save killed mid-write left (only rank 0 writes)
            left = checkpoint.remove_partial_writes(self.folder)
            for kind in ("safetensors", "json"):
                left += checkpoint.remove_partial_writes(self.stem.parent, f"{glob.escape(self.stem.name)}.{kind}")
            if left:
                print(f"removed {len(left)} partly written file(s) of an interrupted save: "
                      + ", ".join(p.name for p in left), flush=True)
        self.resumed = checkpoint.load_training_state(self.folder) if opts.resume else None
        if not opts.resume and (self.folder / "latest.json").exists():
            raise SystemExit(f"{self.folder} already holds a run: pass --resume to continue it, or pick another --out")
        if opts.resume and self.resumed is None:
            raise SystemExit(f"nothing to resume in {self.folder}")
        if opts.resume and opts.init_from is not None:
            raise SystemExit("--init-from starts a new run from a checkpoint's weights, --resume continues a run: pass one")
        if self.resumed:
            self.config = dict(self.resumed[3]["config"])
            self.trained_size = int(self.config["size"])  # a size the method is known to train at
            # A run may be extended (--steps) or changed from here on (--set, e.g. a fine-tuning switch);
            # what lives in the checkpoint (weights, optimiser state and its learning rates) is as saved.
            changed = {k: v for k, v in opts.overrides.items() if v is not None and self.config.get(k) != v}
            self.config.update(changed)
            if changed and self.dist.main:
                print("resumed with " + ", ".join(f"{k}={v}" for k, v in changed.items()), flush=True)
        elif opts.init_from is not None:
            self.init_tensors, card = warm_start_source(Path(opts.init_from), self.cls.id)
            # The checkpoint's own config (its architecture), then this run's changes; a learning-rate warm-up
            # lets fresh Adam moments settle before full steps reach the trained weights.
            base = card.get("config") or self.cls.resolve_config(opts.recipe, {})
            self.config = {**DEFAULTS, **base, "warmup": WARM_START_WARMUP}
            self.trained_size = int(self.config["size"])
            self.config.update({k: v for k, v in opts.overrides.items() if v is not None})
            self.config["init_from"] = {"file": str(opts.init_from), "step": card.get("step"),
                                        "metrics": card.get("metrics", {})}
        else:
            self.config = {**DEFAULTS, **self.cls.resolve_config(opts.recipe, {})}
            self.trained_size = int(self.config["size"])
            self.config.update({k: v for k, v in opts.overrides.items() if v is not None})
        self.config["method"] = self.cls.id
        self.datasets: tuple[TrainingPhotos | None, ValidationPhotos | None] = (None, None)  # set by run()
        self.reported_unreadable = 0
        # Training time over every earlier process of this run, so the card's hours count each restart.
        earlier = self.resumed[3].get("training", {}).get("seconds", 0.0) if self.resumed else 0.0
        self.earlier_seconds = float(earlier) if isinstance(earlier, (int, float)) else 0.0
        self.started = time.perf_counter()

    def run(self) -> dict[str, Any]:
        cfg, d = self.config, self.dist
        # The recipe's (or the run's) own size trains; another is tried before any work, with one step of a
        # throwaway copy. It draws from the RNG seeded next.
        if int(cfg["size"]) != self.trained_size:
            check_size(self.cls, cfg, d.device, self.trained_size)
        torch.manual_seed(cfg["seed"] + d.rank)
        method = self.cls(cfg, d.device)
        optimizers = method.build_optimizers()
        schedulers = method.build_schedulers(optimizers)
        with torch.random.fork_rng(devices=[]):  # loaded (or refused) now; building it draws no training randomness
            method.features()
        ctx = step_context(cfg, optimizers, d.device)
        if d.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # crops keep one size: cuDNN times kernels once per shape, keeps the fastest
        step, log = 0, []
        if self.resumed:
            step, tensors, state, _ = self.resumed
            checkpoint.load_networks(method.nets, tensors)
            for k, o in optimizers.items():
                o.load_state_dict(state["optimizers"][k])
            for k, s in schedulers.items():
                s.load_state_dict(state["schedulers"][k])
            # Older states hold one "scaler" that every step shared: each group's scaler starts from it.
            ctx.load_scaler_state_dict(state.get("scalers", {}), shared=state.get("scaler"))
            _set_rng_state(state["rng"], d.device)
            if d.rank > 0:
                # The state holds rank 0's random stream only: the other ranks go on from a stream of their own
                # (seeded by rank and step), as a fresh run seeds each rank differently.
                torch.manual_seed(cfg["seed"] + d.rank + 1_000_003 * step)
            log = json.loads(state["log"])
        elif self.opts.init_from is not None:
            warm_start(method.nets, self.init_tensors, self.cls.inference_networks, self.opts.init_from)
        method.nets = {k: d.wrap(v) for k, v in method.nets.items()}
        # After the wrap, so every rank's shadows start from the weights DDP broadcast from rank 0.
        ema = EMA(method.nets, self.cls.ema_networks, cfg["ema"]) if cfg.get("ema") else None
        if ema is not None and self.resumed:
            ema.load(self.resumed[1])

        root = Path(self.opts.data)
        if (root / "train").is_dir() and (root / "val").is_dir():  # a prepared set: its test/ is never read
            train_photos, val_photos = photo_files(root / "train"), photo_files(root / "val")
        else:
            train_photos, val_photos = split(photo_files(root), cfg["val_fraction"], root)
        masks = MaskSpec(cfg["mask_kinds"], tuple(cfg["mask_ratio"]), cfg.get("mask_ratios"))
        size, batch = int(cfg["size"]), int(cfg["batch"])
        data = TrainingPhotos(train_photos, size, masks, cfg["seed"], crop_fraction=cfg.get("crop_fraction"),
                              rotate=cfg.get("rotate", 0.0))
        # Sample numbers continue from the resumed step, so the data stream does too.
        order = range(step * batch * d.world + d.rank, 2**62, d.world)
        workers = loader_workers(cfg["workers"])
        # Its own generator: creating the iterator must not draw from the RNG a resume restores.
        loader = DataLoader(data, batch_size=batch, sampler=order, num_workers=workers, generator=torch.Generator(),
                            persistent_workers=workers > 0, pin_memory=d.device.type == "cuda")
        val_crops = cfg.get("val_crops", DEFAULTS["val_crops"])  # runs saved before the key get the default cap
        val = ValidationPhotos(val_photos, size, masks, cfg["val_per_photo"], crops=val_crops) if d.main else None
        self.data_summary = summary(train_photos, val_photos, root)
        self.datasets = data, val
        del train_photos, val_photos  # the datasets keep what they need; workers must not inherit a million strings

        from tqdm import tqdm

        bar = tqdm(total=cfg["steps"], initial=step, disable=not d.main, unit="step", dynamic_ncols=True)
        started, images_per_s, last = time.perf_counter(), 0.0, time.perf_counter()
        data_wait = 0.0  # the share of each step spent waiting for the loader (smoothed like images/s)
        metrics: dict[str, float] = next((r["val"] for r in reversed(log) if "val" in r), {})
        it = iter(loader)
        restore_term = _term_as_interrupt()
        try:
            while step < cfg["steps"]:
                waited = time.perf_counter()
                image, hole = (compute.place_batch(t, d.device, cfg.get("channels_last", "auto")) for t in next(it))
                waited = time.perf_counter() - waited
                with warmed_up(optimizers, step, int(cfg.get("warmup", 0))):
                    losses = method.train_step(image, hole, ctx, step)
                for s in schedulers.values():
                    s.step()
                if ema is not None:
                    ema.update(method.nets, step)
                step += 1
                now = time.perf_counter()
                images_per_s = 0.9 * images_per_s + 0.1 * (batch * d.world / max(now - last, 1e-9)) if step > 1 else 0.0
                data_wait = 0.9 * data_wait + 0.1 * (waited / max(now - last, 1e-9)) if step > 1 else 0.0
                last = now
                if d.main:
                    bar.update(1)
                    bar.set_postfix({**{k: f"{v:.3f}" for k, v in losses.items()}, "img/s": f"{images_per_s:.1f}",
                                     "data": f"{data_wait:.0%}"})
                    if step % cfg["log_every"] == 0:
                        log.append({"step": step, "loss": losses, "images_per_s": images_per_s, "data_wait": data_wait})
                    if step % cfg["val_every"] == 0 or step == cfg["steps"]:
                        metrics, samples = validate(method, ema, val, d.device)
                        log.append({"step": step, "val": metrics})
                        bar.write(f"step {step}: " + "  ".join(f"val {k} {v:.4f}" for k, v in metrics.items()))
                        self._report_unreadable(bar)
                        reports.sample_grid(samples, self.folder / "samples" / f"step-{step:08d}.png")
                        with evaluation(method, ema):
                            drawn = method.drawn_samples()
                        if drawn is not None:
                            reports.tiles(drawn, self.folder / "samples" / f"step-{step:08d}-drawn.png")
                        reports.loss_curves(log, self.folder / "curves.png")
                    if step % cfg["save_every"] == 0 or step == cfg["steps"]:
                        self._save(method, optimizers, schedulers, ctx, ema, step, log, metrics, images_per_s)
        except KeyboardInterrupt:
            if d.main:  # between steps the state is consistent: keep the work done so far
                bar.write(f"interrupted: saving step {step}")
                self._save(method, optimizers, schedulers, ctx, ema, step, log, metrics, images_per_s)
            raise
        finally:
            restore_term()
            bar.close()
            d.close()
        return {"step": step, "metrics": metrics, "seconds": time.perf_counter() - started, "images_per_s": images_per_s,
                "export": str(self.stem) + ".json", "unreadable": len(self.unreadable())}

    def unreadable(self) -> list[Path]:
        """The photos skipped so far because they could not be read, training and validation ones."""
        data, val = self.datasets
        return (data.unreadable_photos() if data else []) + sorted(val.unreadable if val else ())

    def _report_unreadable(self, bar) -> None:
        skipped = self.unreadable()
        if len(skipped) > self.reported_unreadable:
            self.reported_unreadable = len(skipped)
            names = ", ".join(p.name for p in skipped[:5]) + (", ..." if len(skipped) > 5 else "")
            bar.write(f"{len(skipped)} unreadable photo(s) skipped so far: {names}")

    def _save(self, method, optimizers, schedulers, ctx, ema, step, log, metrics, images_per_s) -> None:
        nets = dict(method.nets)
        tensors = checkpoint.network_tensors(nets)
        if ema is not None:
            tensors.update(ema.tensors())
        state = {"optimizers": {k: o.state_dict() for k, o in optimizers.items()},
                 "schedulers": {k: s.state_dict() for k, s in schedulers.items()},
                 "scalers": ctx.scaler_state_dict(), "rng": _rng_state(self.dist.device), "log": json.dumps(log)}
        meta = self._meta(step, metrics, images_per_s)
        checkpoint.save_training_state(self.folder, step, tensors, state, meta)
        if step == 0:  # stopped before its first step: untrained weights are not offered to the editors
            return
        served = dict(nets)
        if ema is not None:
            served.update(ema.shadows)
        export = checkpoint.network_tensors(served, self.cls.inference_networks, half=self.opts.half_export)
        checkpoint.export(self.stem, export, meta)

    def _meta(self, step: int, metrics: dict[str, float], images_per_s: float) -> dict[str, Any]:
        device = self.dist.device
        hardware = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{device.type} ({compute.cpu_name()})"
        seconds = self.earlier_seconds + time.perf_counter() - self.started
        return {
            "method": self.cls.id, "description": f"{self.cls.description} Trained on {self.opts.data}.",
            "config": self.config, "step": step,
            "training": {"steps": step, "of": self.config["steps"], "batch": self.config["batch"], "size": self.config["size"],
                         "gpus": self.dist.world if device.type == "cuda" else 0, "hardware": hardware,
                         "images_per_s": round(images_per_s, 2), "seconds": round(seconds, 1),
                         "hours": round(seconds / 3600, 2),
                         "data": {**self.data_summary, "unreadable_photos": len(self.unreadable())}},
            "metrics": {k: round(v, 4) for k, v in metrics.items()},
            "versions": {"torch": torch.__version__, "inpaint_backend": __version__},
        }


def train(opts: TrainOptions) -> dict[str, Any]:
    return Trainer(opts).run()
