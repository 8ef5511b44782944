"""Classical inpainting quality and speed: our patchmatch engine against the usual baselines.

One run fills the test split's photos, centre-cropped to 512x512, with the
seeded masks of every default `inpaint-backend eval` bucket, through the same
code as `eval` (backend.training.evaluate: the region pipeline the server
uses, the same metrics), with
  patchmatch   (ours, backend/classical/patchmatch.py)
  pypatchmatch (PyPI `pypatchmatch`, its default 3x3 patches)
  gmic         (PyPI `gmic`, command inpaint_matchpatch with its GUI defaults)
  telea        (OpenCV cv2.inpaint, radius 3)
and on request (--engines) diffusion, ns, auto or any other engine id. It
reports per bucket and engine hole PSNR, SSIM, L1, texture sharpness, the
feature distance and seconds per image, then whether patchmatch meets the
texture goal in each bucket: sharpness >= 0.9, feature distance <= PyPatchMatch's,
hole PSNR >= PyPatchMatch's + 0.3 dB. Written to <out>/classical_quality.md,
with a picture grid <out>/classical_grid.png (one case per bucket) and a
100 % crop grid <out>/classical_crops.png: fruits.jpg with a 5 % ellipse on the
orange slice and messi5.jpg with one over the grass line (opencv-doc photos at
their own size; crops of the hole's neighbourhood, not scaled).

    python benchmarks/classical_quality.py [--data data/open-photos/test] [--images N] [--out benchmarks/results]
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

from backend.engines.region import fill_region  # noqa: E402
from backend.engines.registry import Registry  # noqa: E402
from backend.images import encode_png  # noqa: E402
from backend.request import FillRequest, Output  # noqa: E402
from backend.training.data import find_photos  # noqa: E402
from backend.training.evaluate import feature_network_or_none, make_cases, picture, resolve, score, summarize  # noqa: E402
from backend.training.masks import BUCKETS  # noqa: E402

OPENCV_DATA = Path("/usr/share/doc/opencv-doc/examples/data")
# The 100 % crop cases: photo, ellipse centre (x, y) as fractions of the photo, tilt in degrees.
CROP_CASES = [("fruits.jpg", (0.37, 0.70), 30), ("messi5.jpg", (0.22, 0.76), 0)]
ENGINES = "patchmatch,pypatchmatch,gmic,telea"
GOAL = {"sharpness": 0.9, "psnr_margin": 0.3}


def ellipse_mask(h: int, w: int, centre: tuple[float, float], angle: float, fraction: float = 0.05) -> np.ndarray:
    """uint8 mask (255 = hole) of an ellipse with axes a and a / 1.5 covering `fraction` of the image."""
    a = np.sqrt(fraction * w * h * 1.5 / np.pi)
    mask = np.zeros((h, w), np.uint8)
    cv2.ellipse(mask, (int(centre[0] * w), int(centre[1] * h)), (int(a), int(a / 1.5)), angle, 0, 360, 255, -1)
    return mask


def table(summary: dict, engines: list[str]) -> str:
    has_features = all("features" in v for row in summary.values() for v in row.values())
    lines = ["| bucket | engine | PSNR (dB) ↑ | SSIM ↑ | L1 ↓ | sharpness (1 = truth) | feature distance ↓ | s/image ↓ |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for bucket, row in summary.items():
        for e in engines:
            v = row[e]
            feature = f"{v['features']:.3f}" if has_features else "n/a"
            lines.append(f"| {bucket} | {e} | {v['psnr']:.2f} | {v['ssim']:.4f} | {v['l1']:.4f} | {v['sharpness']:.2f} | "
                         f"{feature} | {v['seconds']:.2f} |")
    return "\n".join(lines)


def goal_table(summary: dict, engine: str = "patchmatch") -> str:
    """Per bucket: `engine` against the texture goal, each part met or not."""
    def verdict(ok: bool) -> str:
        return "met" if ok else "**not met**"

    lines = ["| bucket | sharpness >= 0.9 | feature distance <= PyPatchMatch's | PSNR >= PyPatchMatch's + 0.3 dB |",
             "|---|---|---|---|"]
    for bucket, row in summary.items():
        ours, peer = row[engine], row["pypatchmatch"]
        cells = [f"{ours['sharpness']:.2f}: {verdict(ours['sharpness'] >= GOAL['sharpness'])}"]
        if "features" in ours:
            cells.append(f"{ours['features']:.3f} vs {peer['features']:.3f}: {verdict(ours['features'] <= peer['features'])}")
        else:
            cells.append("n/a")
        margin = ours["psnr"] - peer["psnr"]
        cells.append(f"{margin:+.2f} dB: {verdict(margin >= GOAL['psnr_margin'])}")
        lines.append(f"| {bucket} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def crop_grid(engines: list, margin: int = 24) -> np.ndarray | None:
    """Rows: the CROP_CASES; columns: input (hole in magenta) | each engine | truth, all at 100 %."""
    rows = []
    for name, centre, angle in CROP_CASES:
        bgr = cv2.imread(str(OPENCV_DATA / name))
        if bgr is None:
            print(f"skipping crop case {name}: not found (apt install opencv-doc)", file=sys.stderr)
            continue
        truth = np.ascontiguousarray(bgr[:, :, ::-1])
        h, w = truth.shape[:2]
        mask = ellipse_mask(h, w, centre, angle)
        ys, xs = np.nonzero(mask)
        y0, y1 = max(0, ys.min() - margin), min(h, ys.max() + margin + 1)
        x0, x1 = max(0, xs.min() - margin), min(w, xs.max() + margin + 1)
        holed = truth.copy()
        holed[mask > 0] = (255, 0, 255)
        tiles = [holed]
        for engine in engines:
            req = FillRequest(truth, mask.astype(np.float32) / 255, output=Output.IMAGE, seed=0)
            tiles.append(fill_region(engine, req).pixels)
        tiles.append(truth)
        row = []
        for label, tile in zip(["input"] + [e.id for e in engines] + ["truth"], tiles):
            crop = np.ascontiguousarray(tile[y0:y1, x0:x1])
            bar = np.full((22, crop.shape[1], 3), 255, np.uint8)
            cv2.putText(bar, f"{Path(name).stem}: {label}" if label == "input" else label, (4, 16),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
            row.append(np.concatenate([bar, crop], 0))
            row.append(np.full((crop.shape[0] + 22, 4, 3), 255, np.uint8))
        rows.append(np.concatenate(row, 1))
    if not rows:
        return None
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    return np.concatenate(rows, 0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=Path("data/open-photos/test"),
                    help="folder of test photos (default: the prepared photo set's test split)")
    ap.add_argument("--images", type=int, default=None, help="use only the first N photos")
    ap.add_argument("--engines", default=ENGINES, help=f"comma-separated engine ids (default {ENGINES})")
    ap.add_argument("--buckets", default=",".join(BUCKETS), help="comma-separated mask buckets")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    ap.add_argument("--no-crops", action="store_true", help="skip the 100 %% crop grid")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results", help="output directory")
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    photos = find_photos(args.data)[: args.images]
    if not photos:
        print(f"no photos under {args.data} (inpaint-backend prepare-photos --out data/open-photos)", file=sys.stderr)
        return 2
    buckets = args.buckets.split(",")
    cases = make_cases(photos, 512, buckets)
    engines = resolve(args.engines.split(","), Registry(None))
    names = [e.id for e in engines]
    features = feature_network_or_none()
    print(f"{len(photos)} photos x {len(buckets)} buckets, engines: {', '.join(names)}", file=sys.stderr)

    start = time.perf_counter()
    done = [0]

    def tick():
        done[0] += 1
        if done[0] % 20 == 0:
            print(f"  {done[0]} / {len(cases) * len(engines)} fills, {time.perf_counter() - start:.0f} s", file=sys.stderr)

    scores = score(engines, cases, progress=tick, features=features)
    summary = summarize(scores)
    text = (f"# Classical inpainting: quality and speed\n\n"
            f"{len(photos)} photos of {args.data.name} ({', '.join(p.stem for p in photos)}), centre-cropped to 512x512, "
            f"one seeded mask per photo and bucket (the masks of `inpaint-backend eval`), through the region pipeline; "
            f"metrics over the hole; {torch.get_num_threads()} CPU threads (a shared machine: read the seconds as rough).\n"
            f"Command: `python benchmarks/classical_quality.py --data {args.data}"
            + (f" --images {args.images}" if args.images else "") + (f" --engines {args.engines}" if args.engines != ENGINES else "")
            + "`\n\n" + table(summary, names) + "\n")
    judged = next((e for e in ("auto", "patchmatch") if e in names), None)  # the default engine first
    if judged and "pypatchmatch" in names:
        text += f"\nThe texture goal for {judged}, per bucket:\n\n" + goal_table(summary, judged) + "\n"
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "classical_quality.md").write_text(text)
    (args.out / "classical_grid.png").write_bytes(encode_png(picture(scores, cases, names), compression=6))
    if not args.no_crops:
        crops = crop_grid(engines)
        if crops is not None:
            (args.out / "classical_crops.png").write_bytes(encode_png(crops, compression=6))
    print(f"wrote {args.out / 'classical_quality.md'} and the grids", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
