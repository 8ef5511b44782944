"""End-to-end time of POST /api/v1/inpaint, split into engine time and overhead, beside other inpainters.

Starts a real server on a free loopback port, sends a photo at three sizes with
an elliptical selection covering 5% of the image, and reports per size: the
client's wall time, the server's time (decode, crop, engine, blend, encode),
the engine's share and the overhead's share; then `inpaint-backend fill` on the
same files (the whole command, with and without spinning OpenMP threads). In
the same run, the baselines
(default Telea and PyPatchMatch, as `inpaint-backend eval` wraps them) fill the
same image and selection through the same region pipeline in this process:
their engine time, and the server engine's time as a ratio of theirs.

    python benchmarks/api_latency.py [--model patchmatch] [--repeats 3] [--no-cli] [--baselines telea,pypatchmatch]
"""
from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from backend.images import encode_png  # noqa: E402

SIZES = [(512, 512), (2048, 1536), (6000, 4000)]


PHOTOS = ["/usr/share/backgrounds/Kleiber_by_Lukas_Baubkus.jpg", "/usr/share/backgrounds/mate/nature/Garden.jpg",
          "/usr/share/doc/opencv-doc/examples/data/building.jpg"]


def photo(w: int, h: int) -> np.ndarray:
    """A real photo resized to w x h (engines behave differently on photos and on noise); else synthetic."""
    for path in PHOTOS:
        img = cv2.imread(path, cv2.IMREAD_COLOR)
        if img is not None:
            return np.ascontiguousarray(cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)[:, :, ::-1])
    return textured(w, h)


def textured(w: int, h: int, seed: int = 0) -> np.ndarray:
    """Photo-like content (gradients, structure, sensor noise), so PNG coding costs what it does on photos."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([xx / w, yy / h, 0.5 + 0.3 * np.sin(xx / 40) * np.cos(yy / 55)], axis=2)
    return (np.clip(base + rng.normal(0, 0.02, (h, w, 3)), 0, 1) * 255).astype(np.uint8)


def ellipse_mask(w: int, h: int, fraction: float = 0.05) -> np.ndarray:
    m = np.zeros((h, w), np.uint8)
    a = np.sqrt(fraction * w * h / np.pi * 1.5)  # semi-axes a and a/1.5: area = fraction of the image
    cv2.ellipse(m, (int(w * 0.4), int(h * 0.55)), (int(a), int(a / 1.5)), 20, 0, 360, 255, -1)
    return m


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli_ms(img: Path, mask: Path, model: str, models: str, device: str, repeats: int, env: dict | None = None) -> float:
    """Median wall time of `inpaint-backend fill` on one image, the whole command."""
    out = img.with_name("out.png")
    cmd = [sys.executable, "-m", "backend.cli", "fill", str(img), str(mask), "-o", str(out), "--model", model,
           "--models-dir", models, "--device", device, "--seed", "0", "--output", "layer"]
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run(cmd, cwd=ROOT, env=dict(os.environ, **(env or {})), check=True, stdout=subprocess.DEVNULL)
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def load_baselines(ids: list[str]) -> list:
    from backend.training.baselines import BASELINES

    out = []
    for engine_id in ids:
        cls = BASELINES[engine_id]
        if cls.installed():
            out.append(cls("cpu"))
        else:
            print(f"skipping {engine_id}: package '{cls.package}' is not installed", file=sys.stderr)
    return out


def baseline_ms(engine, img: np.ndarray, mask: np.ndarray, repeats: int) -> float:
    """Median engine time of a baseline through the region pipeline, as the server runs engines."""
    from backend.engines.region import fill_region
    from backend.request import FillRequest, Output

    req = FillRequest(img, mask.astype(np.float32) / 255, output=Output.LAYER, seed=0)
    return statistics.median(fill_region(engine, req).engine_ms for _ in range(repeats))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="engine id (default: the server's default)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--no-cli", action="store_true", help="time the server only")
    ap.add_argument("--baselines", default="telea,pypatchmatch",
                    help="in-process baselines timed beside the server's engine (empty: none)")
    args = ap.parse_args()
    baselines = load_baselines([b for b in args.baselines.split(",") if b])

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as models:
        proc = subprocess.Popen([sys.executable, "-m", "backend.cli", "serve", "--port", str(port), "--device", args.device,
                                 "--models-dir", models], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for _ in range(300):
                try:
                    health = requests.get(url + "/api/v1/health", timeout=1).json()
                    break
                except requests.ConnectionError:
                    time.sleep(0.2)
            model = args.model or health["default_model"]
            print(f"model {model} on {health['device']['name']} ({health['device']['type']}), torch {health['torch']}\n")
            cli_head = "" if args.no_cli else " cli ms | cli / client | cli, spinning OpenMP, ms | spinning / client |"
            extra = "".join(f" {b.id} engine ms | engine / {b.id} |" for b in baselines)
            print("| image | selection | client ms | server ms | engine ms | overhead ms | overhead share |" + cli_head + extra)
            print("|---|---|---|---|---|---|---|" + ("" if args.no_cli else "---|---|---|---|") + "---|---|" * len(baselines))
            for w, h in SIZES:
                img, mask = photo(w, h), ellipse_mask(w, h)
                files = {"image": encode_png(img), "mask": encode_png(mask)}
                rows = []
                for i in range(args.repeats + 1):  # the first run warms up
                    t0 = time.perf_counter()
                    r = requests.post(url + "/api/v1/inpaint", files=files, data={"model": model, "seed": 0, "output": "layer"},
                                      timeout=600)
                    client = (time.perf_counter() - t0) * 1000
                    r.raise_for_status()
                    if i:
                        rows.append((client, float(r.headers["X-Elapsed-Ms"]), float(r.headers["X-Engine-Ms"])))
                client, server, engine = (statistics.median(col) for col in zip(*rows))
                overhead = server - engine
                row = (f"| {w}x{h} | {100 * (mask > 0).mean():.1f}% | {client:.0f} | {server:.0f} | {engine:.0f} | "
                       f"{overhead:.0f} | {100 * overhead / server:.1f}% |")
                if not args.no_cli:
                    with tempfile.TemporaryDirectory() as tmp:
                        img_path, mask_path = Path(tmp) / "image.png", Path(tmp) / "mask.png"
                        img_path.write_bytes(files["image"])
                        mask_path.write_bytes(files["mask"])
                        cli = cli_ms(img_path, mask_path, model, models, args.device, args.repeats)
                        spinning = cli_ms(img_path, mask_path, model, models, args.device, args.repeats,
                                          {"GOMP_SPINCOUNT": "300000"})
                    row += f" {cli:.0f} | {cli / client:.1f}x | {spinning:.0f} | {spinning / client:.1f}x |"
                for b in baselines:
                    ms = baseline_ms(b, img, mask, 1 if w * h > 4e6 else args.repeats)
                    row += f" {ms:.0f} | {engine / ms:.2f} |"
                print(row, flush=True)
        finally:
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    main()
