"""Training images/s of each method's CPU recipe in every memory format and precision, in one run.

Each recipe trains on synthetic photo-like batches of its own crop size and batch (data loading is timed on
its own, see --data); after --warmup steps, --steps steps are timed. Columns: fp32 NCHW (the old default),
bf16 NCHW, fp32 channels-last, bf16 channels-last and, with --compile, torch.compile'd networks in the
default format and precision (its compile time is reported apart: it is paid once per run).

On a CPU without native bfloat16 (AVX2 only) bf16 is emulated, tens of times slower than fp32; those
columns are skipped unless --emulated-bf16 is given.

    python benchmarks/train_speed.py [--recipes isnet:short,cisi:small] [--steps 3] [--compile] [--data DIR]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from backend import compute  # noqa: E402
from backend.methods import get_method  # noqa: E402
from backend.training.method import StepContext  # noqa: E402

sys.path.insert(0, str(ROOT / "tests"))
from conftest import photo_batch  # noqa: E402

RECIPES = "isnet:short,cisi:small,imt:small,nfgan:large,nfgan:paper,semantic:small"
MODES = {  # name -> (channels_last, cpu_bf16)
    "fp32 NCHW": (False, False), "bf16 NCHW": (False, True), "fp32 channels-last": (True, False),
    "bf16 channels-last": (True, True),
}


def batch(config: dict, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    size, n = int(config["size"]), int(config["batch"])
    image = photo_batch(n, size)
    hole = torch.zeros(n, 1, size, size)
    hole[..., size // 4:3 * size // 4, size // 4:3 * size // 4] = 1  # a quarter of the image: a typical hole
    return image, hole


def images_per_s(method_id: str, recipe: str, fmt: bool, bf16: bool, steps: int, warmup: int, device: torch.device,
                 compiled: bool = False) -> tuple[float, float]:
    """(images/s over the timed steps, seconds of the first step: compile time when compiled)."""
    cls = get_method(method_id)
    config = cls.resolve_config(recipe, {"channels_last": fmt})
    torch.manual_seed(0)
    method = cls(config, device)
    ctx = StepContext(method.build_optimizers(), device, cpu_bf16=bf16)
    if compiled:
        method.nets = {k: torch.compile(v) for k, v in method.nets.items()}
    image, hole = (compute.place_batch(t, device, fmt) for t in batch(config, device))
    first = time.perf_counter()
    method.train_step(image, hole, ctx, 0)
    first = time.perf_counter() - first
    for step in range(1, warmup):
        method.train_step(image, hole, ctx, step)
    start = time.perf_counter()
    for step in range(warmup, warmup + steps):
        method.train_step(image, hole, ctx, step)
    return steps * int(config["batch"]) / (time.perf_counter() - start), first


def data_share(method_id: str, recipe: str, root: Path, step_s: float, batches: int = 5) -> float:
    """The loader's time per batch over the step's (with the trainer's worker count): > 0.1 needs fixing."""
    from torch.utils.data import DataLoader

    from backend.training.data import MaskSpec, TrainingPhotos, loader_workers, photo_files
    from backend.training.trainer import DEFAULTS

    cfg = {**DEFAULTS, **get_method(method_id).resolve_config(recipe, {})}
    data = TrainingPhotos(photo_files(root), int(cfg["size"]), MaskSpec(cfg["mask_kinds"], tuple(cfg["mask_ratio"])), 0)
    workers = loader_workers(cfg["workers"])
    it = iter(DataLoader(data, batch_size=int(cfg["batch"]), num_workers=workers, sampler=range(2**31)))
    next(it)  # workers start
    t = time.perf_counter()
    for _ in range(batches):
        next(it)
    return (time.perf_counter() - t) / batches / step_s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--recipes", default=RECIPES, help="method:recipe,...")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--compile", action="store_true", help="also time torch.compile'd networks")
    ap.add_argument("--emulated-bf16", action="store_true", help="time bf16 on a CPU without native bf16 too")
    ap.add_argument("--data", type=Path, default=None, help="photos to time the data loader on")
    ap.add_argument("--out", type=Path, default=None, help="also write the markdown table here")
    args = ap.parse_args()
    device = torch.device(args.device)
    native = compute.native_cpu_bf16()
    modes = {k: v for k, v in MODES.items() if native or args.emulated_bf16 or not v[1] or device.type != "cpu"}
    cols = list(MODES) + (["compiled", "compile s"] if args.compile else []) + (["data wait"] if args.data else [])
    lines = [f"{compute.cpu_name()}, torch {torch.__version__}, {torch.get_num_threads()} "
             f"threads, CPU capability {torch.backends.cpu.get_cpu_capability()}, native bf16: {native}", "",
             "| recipe | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for spec in args.recipes.split(","):
        method_id, recipe = spec.split(":")
        cells, base = {}, None
        for name, (fmt, bf16) in MODES.items():
            if name not in modes:
                cells[name] = "emulated, skipped"
                continue
            ips, _ = images_per_s(method_id, recipe, fmt, bf16, args.steps, args.warmup, device)
            base = base or ips
            cells[name] = f"{ips:.2f} ({ips / base:.2f}x)"
            print(spec, name, f"{ips:.3f} img/s", flush=True)
        if args.compile:
            fmt = compute.channels_last(device)
            ips, first = images_per_s(method_id, recipe, fmt, compute.cpu_bf16_wanted("auto"), args.steps,
                                      args.warmup, device, compiled=True)
            cells["compiled"], cells["compile s"] = f"{ips:.2f} ({ips / base:.2f}x)", f"{first:.0f}"
        if args.data:
            cfg = get_method(method_id).resolve_config(recipe, {})
            cells["data wait"] = f"{data_share(method_id, recipe, args.data, int(cfg['batch']) / base):.0%}"
        lines.append(f"| {spec} | " + " | ".join(cells.get(c, "") for c in cols) + " |")
    table = "\n".join(lines)
    print(table)
    if args.out:
        args.out.write_text(table + "\n")


if __name__ == "__main__":
    main()
