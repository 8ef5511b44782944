"""Start-up time and memory of the training data pipeline on folders of 10k to 1M photos, and the loader's images/s.

Start-up: for each count N, a temporary folder tree of N JPEGs in folders of 1000 (hard links to one small
real photo per folder: made in seconds, a few MB on disk, removed afterwards), then in a fresh process what
`Trainer.run` does before its first step: list (photo_files), split, TrainingPhotos, ValidationPhotos, and the
first batch through a DataLoader with the default worker count. It reports each stage's seconds, the peak
RSS of that process and its RSS after the imports (what the pipeline itself adds is the difference).

Throughput: images/s of TrainingPhotos alone at --size px through a DataLoader (batch 8) on real photos,
with the default worker count and with 0, 1 and 2 workers, after one warm-up batch.

    python benchmarks/data_scale.py [--counts 10000,100000,1000000] [--photos data/open-photos/train]
                                    [--size 256] [--images 240] [--tmp DIR] [--out benchmarks/results]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import torch
from torch.utils.data import DataLoader

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from backend.training.data import (MaskSpec, TrainingPhotos, ValidationPhotos, find_photos, loader_workers,  # noqa: E402
                                   photo_files, split)
from backend.training.trainer import DEFAULTS  # noqa: E402

PER_FOLDER = 1000  # also keeps each source file far below the file system's hard-link limit


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def make_tree(root: Path, count: int, source: Path) -> None:
    """count JPEGs in folders of PER_FOLDER: one copy of `source` per folder, the rest hard links to it."""
    for start in range(0, count, PER_FOLDER):
        folder = root / f"{start // PER_FOLDER:05d}"
        folder.mkdir(parents=True)
        first = folder / f"{start:07d}.jpg"
        shutil.copyfile(source, first)
        for i in range(start + 1, min(count, start + PER_FOLDER)):
            os.link(first, folder / f"{i:07d}.jpg")


def loader(data: TrainingPhotos, batch: int, workers: int) -> DataLoader:
    """As the trainer builds it: an endless sampler of sample numbers, the loader's own generator."""
    return DataLoader(data, batch_size=batch, sampler=range(0, 2**62), num_workers=workers, generator=torch.Generator(),
                      persistent_workers=workers > 0)


def startup(root: Path, size: int) -> dict:
    """One start-up as the trainer does it, in this (fresh) process; seconds per stage and memory."""
    base = rss_mb()
    masks = MaskSpec(DEFAULTS["mask_kinds"], tuple(DEFAULTS["mask_ratio"]))
    times, t = {}, time.perf_counter()
    files = photo_files(root)
    times["list"], t = time.perf_counter() - t, time.perf_counter()
    train, val = split(files, DEFAULTS["val_fraction"], root)
    times["split"], t = time.perf_counter() - t, time.perf_counter()
    data = TrainingPhotos(train, size, masks, seed=0)
    times["train set"], t = time.perf_counter() - t, time.perf_counter()
    ValidationPhotos(val, size, masks, DEFAULTS["val_per_photo"], crops=DEFAULTS["val_crops"])
    times["val set"], t = time.perf_counter() - t, time.perf_counter()
    del files, train, val  # as the trainer does before its workers start
    workers = loader_workers(DEFAULTS["workers"])
    next(iter(loader(data, DEFAULTS["batch"], workers)))
    times["first batch"] = time.perf_counter() - t
    return {"seconds": times, "rss_base": base, "rss_peak": peak_rss_mb(), "workers": workers}


def throughput(photos: list[Path], size: int, images: int, workers: int, batch: int = 8) -> float:
    masks = MaskSpec(DEFAULTS["mask_kinds"], tuple(DEFAULTS["mask_ratio"]))
    it = iter(loader(TrainingPhotos(photos, size, masks, seed=0), batch, workers))
    next(it)  # warm-up: worker start, first decodes
    t = time.perf_counter()
    for _ in range(images // batch):
        next(it)
    return (images // batch) * batch / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--counts", default="10000,100000,1000000")
    ap.add_argument("--photos", type=Path, default=Path("data/open-photos/train"), help="real photos for images/s")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--images", type=int, default=240, help="images timed per worker setting")
    ap.add_argument("--tmp", type=Path, default=None, help="where the folder trees go (default: the system temp dir)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    ap.add_argument("--startup-of", type=Path, default=None, help=argparse.SUPPRESS)  # the child process's job
    args = ap.parse_args()
    if args.startup_of:
        print(json.dumps(startup(args.startup_of, args.size)))
        return

    photos = find_photos(args.photos)
    if not photos:
        raise SystemExit(f"no photos in {args.photos}")
    lines = [f"Training data pipeline, {os.cpu_count()} CPUs (loader workers by default: {loader_workers('auto')}), "
             f"size {args.size}, batch {DEFAULTS['batch']}, val_crops {DEFAULTS['val_crops']}", "",
             "| photos | make tree s | list s | split s | train set s | val set s | first batch s | total s "
             "| RSS after imports MB | peak RSS MB |", "|---|---|---|---|---|---|---|---|---|---|"]
    print("\n".join(lines), flush=True)
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        source = Path(tmp) / "source.jpg"
        img = cv2.imread(str(photos[0]))
        cv2.imwrite(str(source), cv2.resize(img, (320, 320 * img.shape[0] // img.shape[1]), interpolation=cv2.INTER_AREA))
        for count in (int(c) for c in args.counts.split(",")):
            root = Path(tmp) / f"n{count}"
            t = time.perf_counter()
            make_tree(root, count, source)
            made = time.perf_counter() - t
            child = subprocess.run([sys.executable, __file__, "--startup-of", str(root), "--size", str(args.size)],
                                   capture_output=True, text=True, check=True)
            r = json.loads(child.stdout.strip().splitlines()[-1])
            s = r["seconds"]
            row = (f"| {count:,} | {made:.1f} | " + " | ".join(f"{v:.2f}" for v in s.values())
                   + f" | {sum(s.values()):.2f} | {r['rss_base']:.0f} | {r['rss_peak']:.0f} |")
            lines.append(row)
            print(row, flush=True)
            shutil.rmtree(root)

    default = loader_workers("auto")
    table = ["", f"Loader alone: TrainingPhotos at {args.size} px on {len(photos)} real photos ({args.photos}), "
             f"batch 8, {args.images} images after a warm-up batch", "", "| workers | images/s |", "|---|---|"]
    print("\n".join(table), flush=True)
    for label, workers in ((f"default ({default})", default), ("0", 0), ("1", 1), ("2", 2)):
        row = f"| {label} | {throughput(photos, args.size, args.images, workers):.1f} |"
        table.append(row)
        print(row, flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "data_scale.md").write_text("\n".join(lines + table) + "\n")


if __name__ == "__main__":
    main()
