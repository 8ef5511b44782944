"""Inference time of a learned method's generator next to the classical engine and Telea, in one run.

The network is built from the method's recipe (weights do not change the time), run on one
size x size photo with a 20 % stroke mask, after warm-up; the median of --repeats runs is
reported in ms in each memory format and precision (NCHW and channels-last; CUDA: fp32, fp16, bf16;
CPU: fp32 and, where the CPU has native bf16 or with --emulated-bf16, bf16), and with --compile the
torch.compile'd networks, with the ratio to patchmatch and Telea measured on the same image.

    python benchmarks/method_speed.py --method isnet --set blocks=4 [--size 512] [--device cpu]
    python benchmarks/method_speed.py --method semantic --recipe small --option iterations=1500 --option candidates=16

Methods that search at inference (semantic) are timed with their serving options (--option).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from backend import compute  # noqa: E402
from backend.cli import _parse_set  # noqa: E402
from backend.engines.base import InpaintOptions, OptionError, Progress, parse_params  # noqa: E402
from backend.engines.registry import Registry  # noqa: E402
from backend.methods import get_method  # noqa: E402
from backend.service import pick_device  # noqa: E402
from backend.training.baselines import OpenCVTelea  # noqa: E402
from backend.training.masks import generate_mask  # noqa: E402

sys.path.insert(0, str(ROOT / "benchmarks"))
from api_latency import photo  # noqa: E402


def median_ms(fn, repeats: int, device: torch.device) -> float:
    fn()  # warm-up: kernels, caches, allocator
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def modes(device: torch.device, emulated_bf16: bool) -> dict[str, tuple[bool, torch.dtype | None]]:
    """Memory format and autocast dtype per column. A CPU without native bf16 emulates it, tens of times slower:
    those columns only on request."""
    if device.type == "cuda":
        return {"fp32 NCHW": (False, None), "fp32 channels-last": (True, None), "fp16 channels-last": (True, torch.float16),
                "bf16 channels-last": (True, torch.bfloat16)}
    out = {"fp32 NCHW": (False, None), "fp32 channels-last": (True, None)}
    if device.type == "cpu" and (compute.native_cpu_bf16() or emulated_bf16):
        out.update({"bf16 NCHW": (False, torch.bfloat16), "bf16 channels-last": (True, torch.bfloat16)})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--method", required=True)
    ap.add_argument("--recipe", default=None)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="recipe override (JSON value)")
    ap.add_argument("--option", action="append", default=[], metavar="KEY=VALUE", help="serving option, e.g. iterations=300")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--compile", action="store_true", help="also time torch.compile'd networks (fp32 channels-last)")
    ap.add_argument("--emulated-bf16", action="store_true", help="time bf16 on a CPU without native bf16 too")
    args = ap.parse_args()

    device = pick_device(args.device)
    overrides = _parse_set(args.set)  # the same KEY=VALUE rules as `inpaint-backend train --set`
    cls = get_method(args.method)
    config = cls.resolve_config(args.recipe, overrides)
    if config.get("feature_scale") == "auto":  # training measures it; untrained weights time the same with any number
        config["feature_scale"] = 1.0
    try:
        serving = InpaintOptions(seed=0, params=parse_params(cls.params, _parse_set(args.option, "--option"), args.method))
    except OptionError as e:
        raise SystemExit(f"error: {e}") from None

    # A fixed-size network (NF-GAN, Yeh et al.) takes its trained size only: serving scales every crop to it.
    size = int(config["size"]) if cls.fixed_size else args.size
    rgb = photo(size, size)
    mask = generate_mask(np.random.default_rng(0), size, size, "strokes", (0.2, 0.3))
    image = torch.from_numpy(rgb).permute(2, 0, 1)[None].float().div(255).to(device)
    hole = torch.from_numpy((mask > 0).astype(np.float32))[None, None].to(device)

    rows = []
    for name, (channels_last, dtype) in modes(device, args.emulated_bf16).items():
        model = cls({**config, "channels_last": channels_last}, device)
        for net in model.nets.values():
            net.eval()
        x, m = (compute.place_batch(t, device, channels_last) for t in (image, hole))

        def run(model=model, x=x, m=m, dtype=dtype):
            with torch.inference_mode(not cls.needs_gradients), \
                    torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
                model.serve(x * (1 - m), m, serving, Progress())
        rows.append((f"{args.method} {name}", median_ms(run, args.repeats, device)))
        if args.compile and name == "fp32 channels-last":
            model.nets = {k: torch.compile(v) for k, v in model.nets.items()}
            first = time.perf_counter()
            run()
            first = time.perf_counter() - first
            rows.append((f"{args.method} compiled (first call {first:.0f} s)", median_ms(run, args.repeats, device)))

    options = InpaintOptions(seed=0)
    engine = Registry(None, device).get("patchmatch")
    rows.append(("patchmatch", median_ms(lambda: engine.inpaint(image, hole, options, Progress()), args.repeats, device)))
    telea = OpenCVTelea(torch.device("cpu"))
    rows.append(("telea", median_ms(lambda: telea.inpaint(image.cpu(), hole.cpu(), options, Progress()), args.repeats, device)))

    pm, tl = rows[-2][1], rows[-1][1]
    print(f"{size}x{size}, {device} ({torch.get_num_threads()} threads), median of {args.repeats}, "
          f"config {overrides}, options {serving.params}")
    print("| engine | ms | x patchmatch | x telea |\n|---|---|---|---|")
    for name, ms in rows:
        print(f"| {name} | {ms:.0f} | {ms / pm:.2f} | {ms / tl:.1f} |")


if __name__ == "__main__":
    main()
