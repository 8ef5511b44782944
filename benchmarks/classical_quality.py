"""Classical inpainting quality and speed: our patchmatch engine against the usual baselines.

One run fills the same 512x512 photos with the same masks using
  patchmatch   (ours, backend/classical/patchmatch.py)
  diffusion    (ours, smooth membrane fill)
  pypatchmatch (PyPI `pypatchmatch`, 7x7 patches as in its examples)
  gmic         (PyPI `gmic`, command inpaint_matchpatch with its GUI defaults)
  telea, ns    (OpenCV cv2.inpaint, radius 3)
and reports, per mask bucket and engine, hole PSNR, hole SSIM, hole L1 and
seconds per image (2 CPU threads), as a markdown table on stdout and in
<out>/classical_quality.md, plus a picture grid <out>/classical_grid.png.

Photos are the test split only: opencv-doc samples (apt install opencv-doc),
scikit-image and scikit-learn sample photos, center-cropped to 512x512.
Masks come from backend.training.masks.BUCKETS with fixed seeds.

    python benchmarks/classical_quality.py [--images 12] [--out benchmarks/results]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from backend.classical.diffusion import DiffusionEngine  # noqa: E402
from backend.classical.patchmatch import PatchMatchEngine  # noqa: E402
from backend.engines.base import InpaintOptions, Progress  # noqa: E402
from backend.training.baselines import GmicMatchPatch, PyPatchMatch  # noqa: E402
from backend.training.masks import BUCKETS, bucket_mask  # noqa: E402

SIZE = 512
OPENCV_DATA = Path("/usr/share/doc/opencv-doc/examples/data")
# The test split. Interleaved by source so that a smaller --images still mixes them.
TEST_PHOTOS = [
    ("opencv", "baboon.jpg"), ("skimage", "astronaut"), ("sklearn", "china.jpg"),
    ("opencv", "fruits.jpg"), ("skimage", "coffee"), ("opencv", "building.jpg"),
    ("skimage", "chelsea"), ("sklearn", "flower.jpg"), ("opencv", "butterfly.jpg"),
    ("skimage", "rocket"), ("opencv", "home.jpg"), ("skimage", "stereo_motorcycle"),
    ("opencv", "messi5.jpg"), ("opencv", "squirrel_cls.jpg"),
]

Image = np.ndarray  # HxWx3 uint8 RGB
Mask = np.ndarray  # HxW uint8, 255 = hole
Fill = Callable[[Image, Mask], Image]


# ----------------------------------------------------------------------------- photos

def _load(source: str, name: str) -> Image | None:
    if source == "opencv":
        bgr = cv2.imread(str(OPENCV_DATA / name))
        return None if bgr is None else bgr[:, :, ::-1]
    if source == "skimage":
        import skimage.data

        image = getattr(skimage.data, name)()
        return image[0] if isinstance(image, tuple) else image  # stereo pairs: the left view
    if source == "sklearn":
        from sklearn.datasets import load_sample_image

        return load_sample_image(name)
    raise ValueError(source)


def square(image: Image, size: int = SIZE) -> Image:
    """Center crop to a square, then resize to size x size (area filter when shrinking)."""
    h, w = image.shape[:2]
    s = min(h, w)
    y0, x0 = (h - s) // 2, (w - s) // 2
    crop = image[y0 : y0 + s, x0 : x0 + s]
    interp = cv2.INTER_AREA if s > size else cv2.INTER_CUBIC
    return np.ascontiguousarray(cv2.resize(crop, (size, size), interpolation=interp))


def load_photos(count: int) -> list[tuple[str, Image]]:
    photos = []
    for source, name in TEST_PHOTOS:
        if len(photos) == count:
            break
        try:
            image = _load(source, name)
        except Exception as err:  # package missing or sample not bundled
            print(f"skipping photo {source}:{name}: {err}", file=sys.stderr)
            continue
        if image is None:
            print(f"skipping photo {source}:{name}: not found", file=sys.stderr)
            continue
        photos.append((Path(name).stem, square(image[:, :, :3])))
    return photos


# ----------------------------------------------------------------------------- metrics

def _gaussian_blur(x: np.ndarray, sigma: float = 1.5, radius: int = 5) -> np.ndarray:
    t = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-(t**2) / (2 * sigma**2))
    k /= k.sum()
    return cv2.sepFilter2D(x, cv2.CV_64F, k, k, borderType=cv2.BORDER_REFLECT)


def ssim_map(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """SSIM (Wang et al. 2004; 11x11 Gaussian window, sigma 1.5) per pixel, averaged over channels.

    a, b: HxWxC floats in [0, 1].
    """
    c1, c2 = 0.01**2, 0.03**2
    maps = []
    for ch in range(a.shape[2]):
        x, y = a[:, :, ch].astype(np.float64), b[:, :, ch].astype(np.float64)
        mx, my = _gaussian_blur(x), _gaussian_blur(y)
        vx = _gaussian_blur(x * x) - mx * mx
        vy = _gaussian_blur(y * y) - my * my
        cxy = _gaussian_blur(x * y) - mx * my
        maps.append(((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2)))
    return np.mean(maps, axis=0)


def hole_metrics(result: Image, truth: Image, mask: Mask) -> dict[str, float]:
    """PSNR, SSIM and L1 over the hole pixels only (SSIM map computed on the whole image)."""
    a = result.astype(np.float64) / 255.0
    b = truth.astype(np.float64) / 255.0
    hole = mask > 0
    diff = (a - b)[hole]
    mse = float(np.mean(diff**2))
    psnr = 10 * np.log10(1.0 / max(mse, 1e-10))
    ssim = float(ssim_map(a, b)[hole].mean())
    return {"psnr": psnr, "ssim": ssim, "l1": float(np.mean(np.abs(diff)))}


# ----------------------------------------------------------------------------- engines

def _torch_fill(engine_cls) -> Fill:
    engine = engine_cls("cpu")

    def fill(image: Image, mask: Mask) -> Image:
        x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255.0
        m = torch.from_numpy((mask > 0).astype(np.float32))[None, None]
        opts = InpaintOptions(seed=0, params=engine.parse_params({}))
        out = engine.inpaint(x, m, opts, Progress())
        return (out[0].permute(1, 2, 0).numpy() * 255.0 + 0.5).clip(0, 255).astype(np.uint8)

    return fill


def _external(cls) -> Fill:
    """PyPatchMatch or G'MIC through the wrappers `inpaint-backend eval` uses (seed 0)."""
    if not cls.installed():
        raise ImportError(f"package '{cls.package}' is not installed")
    engine = cls()

    def fill(image: Image, mask: Mask) -> Image:
        return engine.run(image, mask, 0)

    return fill


def _opencv(flag: int) -> Fill:
    def fill(image: Image, mask: Mask) -> Image:
        return cv2.inpaint(image, mask, 3, flag)

    return fill


def available_engines() -> dict[str, Fill]:
    makers: dict[str, Callable[[], Fill]] = {
        "patchmatch": lambda: _torch_fill(PatchMatchEngine),
        "pypatchmatch": lambda: _external(PyPatchMatch),
        "gmic": lambda: _external(GmicMatchPatch),
        "telea": lambda: _opencv(cv2.INPAINT_TELEA),
        "ns": lambda: _opencv(cv2.INPAINT_NS),
        "diffusion": lambda: _torch_fill(DiffusionEngine),
    }
    engines = {}
    for name, make in makers.items():
        try:
            engines[name] = make()
        except ImportError as err:
            print(f"skipping {name}: not installed ({err})", file=sys.stderr)
    return engines


# ----------------------------------------------------------------------------- report

def markdown_table(rows: dict[tuple[str, str], list[dict[str, float]]], engines: list[str]) -> str:
    lines = [
        "| mask bucket | engine | PSNR (dB) ↑ | SSIM ↑ | L1 ↓ | s/image ↓ |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for bucket in BUCKETS:
        for engine in engines:
            runs = rows.get((bucket, engine))
            if not runs:
                continue
            mean = {k: float(np.mean([r[k] for r in runs])) for k in runs[0]}
            lines.append(
                f"| {bucket} | {engine} | {mean['psnr']:.2f} | {mean['ssim']:.4f} | "
                f"{mean['l1']:.4f} | {mean['seconds']:.2f} |"
            )
    return "\n".join(lines)


def _label(tile: Image, text: str) -> Image:
    bar = np.full((22, tile.shape[1], 3), 255, np.uint8)
    cv2.putText(bar, text, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([bar, tile], 0)


def picture_grid(examples: list[tuple[str, Image, Mask, dict[str, Image]]], engines: list[str], tile: int = 256) -> Image:
    rows = []
    for title, truth, mask, results in examples:
        holed = truth.copy()
        holed[mask > 0] = (255, 0, 255)
        tiles = [_label(cv2.resize(holed, (tile, tile), interpolation=cv2.INTER_AREA), title)]
        for engine in engines:
            tiles.append(_label(cv2.resize(results[engine], (tile, tile), interpolation=cv2.INTER_AREA), engine))
        tiles.append(_label(cv2.resize(truth, (tile, tile), interpolation=cv2.INTER_AREA), "ground truth"))
        rows.append(np.concatenate(tiles, 1))
    return np.concatenate(rows, 0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=12, help="number of test photos (max %d)" % len(TEST_PHOTOS))
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results", help="output directory")
    ap.add_argument("--engines", default="", help="comma-separated subset of engines to run (default: all installed)")
    ap.add_argument("--grid-rows", type=int, default=5, help="examples in the picture grid")
    args = ap.parse_args(argv)

    torch.set_num_threads(2)
    cv2.setNumThreads(2)
    photos = load_photos(args.images)
    engines = available_engines()
    if args.engines:
        wanted = args.engines.split(",")
        engines = {k: v for k, v in engines.items() if k in wanted}
    names = list(engines)
    print(f"{len(photos)} photos x {len(BUCKETS)} mask buckets, engines: {', '.join(names)}", file=sys.stderr)

    warm = square(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8), 128)
    warm_mask = np.zeros((128, 128), np.uint8)
    warm_mask[40:80, 40:80] = 255
    for fill in engines.values():  # first calls pay for lazy initialisation; keep it out of the timings
        fill(warm, warm_mask)

    rows: dict[tuple[str, str], list[dict[str, float]]] = {}
    examples = []
    # Grid rows: one case per bucket (cycling), each from a different photo.
    shown = {(k % len(BUCKETS), (5 * k + 1) % len(photos)) for k in range(args.grid_rows)}
    for b, bucket in enumerate(BUCKETS):
        for i, (photo, truth) in enumerate(photos):
            mask = bucket_mask(bucket, seed=1000 * b + i, height=SIZE, width=SIZE)
            holed = truth.copy()
            holed[mask > 0] = 0
            results = {}
            for name, fill in engines.items():
                start = time.perf_counter()
                result = fill(holed, mask)
                seconds = time.perf_counter() - start
                results[name] = result
                rows.setdefault((bucket, name), []).append({**hole_metrics(result, truth, mask), "seconds": seconds})
            if (b, i) in shown:
                examples.append((f"{photo}, {bucket}", truth, mask, results))
            print(f"  {bucket} {photo}: " + " ".join(
                f"{n}={rows[(bucket, n)][-1]['psnr']:.1f}dB/{rows[(bucket, n)][-1]['seconds']:.2f}s" for n in names
            ), file=sys.stderr)

    table = markdown_table(rows, names)
    header = (
        f"# Classical inpainting: quality and speed\n\n"
        f"{len(photos)} test photos ({', '.join(p for p, _ in photos)}) at {SIZE}x{SIZE}, "
        f"{len(BUCKETS)} mask buckets, metrics over hole pixels, {torch.get_num_threads()} CPU threads.\n"
        f"Command: `python benchmarks/classical_quality.py --images {args.images}`\n\n"
    )
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "classical_quality.md").write_text(header + table + "\n")
    grid = picture_grid(examples, names)
    cv2.imwrite(str(args.out / "classical_grid.png"), grid[:, :, ::-1])
    print(f"wrote {args.out / 'classical_quality.md'} and {args.out / 'classical_grid.png'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
