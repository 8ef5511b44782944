"""The classical engines on a full-size camera photo, judged at 100 %: no blur, no seams.

Fills an elliptical selection of 5 % of a large photo (default: the 6028x3391
Kleiber wallpaper of lomiri-wallpapers-20.04) at its own size with each engine
through the region pipeline the server uses, then cuts two windows at 100 %:
one in the middle of the hole (texture or blur) and one across its edge
(seams). Writes <out>/fullsize_crops.png (rows: the windows; columns: input,
each engine, truth) and prints each engine's seconds and hole scores
(PSNR, SSIM, texture sharpness).

    python benchmarks/fullsize_crops.py [--photo PATH] [--engines auto,pypatchmatch,telea] [--window 320]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from classical_quality import ellipse_mask  # noqa: E402

from backend.engines.region import fill_region  # noqa: E402
from backend.engines.registry import Registry  # noqa: E402
from backend.request import FillRequest, Output  # noqa: E402
from backend.training.evaluate import resolve  # noqa: E402
from backend.training.metrics import all_metrics, texture_sharpness  # noqa: E402

PHOTO = Path("/usr/share/backgrounds/Kleiber_by_Lukas_Baubkus.jpg")


def windows(mask: np.ndarray, size: int) -> list[tuple[str, int, int]]:
    """(name, top, left) of a window at the hole's centre and one centred on its left edge."""
    ys, xs = np.nonzero(mask)
    cy, cx = int(ys.mean()), int(xs.mean())
    row = np.nonzero(mask[cy])[0]
    h, w = mask.shape
    clamp = lambda v, n: int(min(max(v - size // 2, 0), n - size))  # noqa: E731
    return [("hole centre", clamp(cy, h), clamp(cx, w)), ("hole edge", clamp(cy, h), clamp(int(row.min()), w))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--photo", type=Path, default=PHOTO)
    ap.add_argument("--engines", default="auto,pypatchmatch,telea")
    ap.add_argument("--window", type=int, default=320, help="window side in px, at 100 %%")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = ap.parse_args()
    torch.set_num_threads(2)
    bgr = cv2.imread(str(args.photo))
    if bgr is None:
        print(f"cannot read {args.photo} (apt install lomiri-wallpapers-20.04, or pass --photo)", file=sys.stderr)
        return 1
    truth = np.ascontiguousarray(bgr[:, :, ::-1])
    h, w = truth.shape[:2]
    mask = ellipse_mask(h, w, (0.45, 0.6), 20)
    engines = resolve(args.engines.split(","), Registry(None))
    hole = torch.from_numpy((mask > 0).astype(np.float32))[None, None]
    t = lambda a: torch.from_numpy(a.astype(np.float32) / 255).permute(2, 0, 1)[None]  # noqa: E731
    holed = truth.copy()
    holed[mask > 0] = (255, 0, 255)
    tiles, labels = [holed], ["input"]
    print(f"{args.photo.name}: {w}x{h}, selection {100 * (mask > 0).mean():.1f} %")
    print("| engine | seconds | hole PSNR (dB) | hole SSIM | sharpness (1 = truth) |\n|---|---:|---:|---:|---:|")
    for engine in engines:
        start = time.perf_counter()
        out = fill_region(engine, FillRequest(truth, mask.astype(np.float32) / 255, output=Output.IMAGE, seed=0)).pixels
        seconds = time.perf_counter() - start
        m = all_metrics(t(out), t(truth), hole)
        print(f"| {engine.id} | {seconds:.1f} | {float(m['psnr']):.2f} | {float(m['ssim']):.4f} | "
              f"{float(texture_sharpness(t(out), t(truth), hole)):.2f} |", flush=True)
        tiles.append(out)
        labels.append(engine.id)
    tiles.append(truth)
    labels.append("truth")
    s = args.window
    rows = []
    for name, y, x in windows(mask, s):
        cells = []
        for label, tile in zip(labels, tiles):
            bar = np.full((22, s, 3), 255, np.uint8)
            cv2.putText(bar, f"{name}: {label}" if label == "input" else label, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                        (0, 0, 0), 1, cv2.LINE_AA)
            cells += [np.concatenate([bar, tile[y:y + s, x:x + s]], 0), np.full((s + 22, 4, 3), 255, np.uint8)]
        rows += [np.concatenate(cells, 1), np.full((4, len(cells) // 2 * (s + 4), 3), 255, np.uint8)]
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "fullsize_crops.png"
    cv2.imwrite(str(path), np.concatenate(rows, 0)[:, :, ::-1])
    print(f"written: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
