"""`inpaint-backend eval`: score engines on fixed, seeded masks per hole-ratio bucket.

Every engine, ours or external, runs through the same region pipeline the
server uses, on the same square crops of the same photos with the same masks,
so the numbers compare what users would get.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from backend.engines.base import Engine
from backend.engines.region import fill_region
from backend.images import encode_png
from backend.request import FillRequest, Output
from backend.training.baselines import BASELINES
from backend.training.data import find_photos
from backend.training.masks import BUCKETS, bucket_mask
from backend.training.metrics import all_metrics, feature_distance, texture_sharpness, unit_features
from backend.training.reports import grid, show_hole


@dataclass
class Case:
    photo: str
    bucket: str
    image: np.ndarray  # size x size x 3 uint8
    mask: np.ndarray  # size x size uint8, 255 = hole


@dataclass
class Scores:
    rows: list[dict[str, Any]] = field(default_factory=list)  # one per (engine, case)
    outputs: dict[tuple[str, int], np.ndarray] = field(default_factory=dict)  # (engine, case index) -> output


def square_crop(path: Path, size: int) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError(f"cannot read {path}")
    h, w = img.shape[:2]
    side = min(h, w)
    y, x = (h - side) // 2, (w - side) // 2
    img = cv2.resize(img[y:y + side, x:x + side], (size, size), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(img[:, :, ::-1])


def make_cases(photos: list[Path], size: int, buckets: list[str], seed: int = 0) -> list[Case]:
    """One mask per photo and bucket, seeded by (seed, photo index, bucket index): fixed across runs and engines."""
    cases = []
    for i, path in enumerate(photos):
        image = square_crop(path, size)
        for j, bucket in enumerate(buckets):
            mask = bucket_mask(bucket, seed * 1_000_003 + i * 101 + j, size, size)
            cases.append(Case(path.name, bucket, image, mask))
    return cases


def resolve(ids: list[str], registry) -> list[Engine]:
    engines = []
    for engine_id in ids:
        if engine_id in BASELINES:
            cls = BASELINES[engine_id]
            if not cls.installed():
                print(f"skipping {engine_id}: its package '{cls.package}' is not installed")
                continue
            engines.append(cls(registry.device))
        else:
            engines.append(registry.get(engine_id))
    return engines


def check_options(options: dict[str, dict[str, Any]], engines: list[Engine]) -> None:
    """Validate engine options before hours of scoring: unknown engines, names or values raise ValueError."""
    by_id = {e.id: e for e in engines}
    unknown = sorted(set(options) - set(by_id))
    if unknown:
        raise ValueError(f"options for engine(s) not evaluated: {', '.join(unknown)}")
    for engine_id, given in options.items():
        by_id[engine_id].parse_params(given)


def feature_network_or_none(device: torch.device | str = "cpu") -> torch.nn.Module | None:
    """The offline VGG16 (HED weights) for the feature distance, or None with a note when it is not installed."""
    from backend.training.features import FeatureWeightsMissing, feature_network

    try:
        return feature_network("vgg16-hed").to(device)
    except (FeatureWeightsMissing, ImportError) as e:
        print(f"no feature distance column: {e}")
        return None


def score(engines: list[Engine], cases: list[Case], keep_outputs: bool = False, progress=None,
          options: dict[str, dict[str, Any]] | None = None, features: torch.nn.Module | None = None) -> Scores:
    """Every engine on every case; `options` gives engine-specific options by engine id.

    features: the network of the feature distance column (None: no such column).
    Rows come engine by engine, each in case order.
    """
    result = Scores()
    rows: dict[str, list[dict[str, Any]]] = {engine.id: [] for engine in engines}
    device = next(features.parameters()).device if features is not None else torch.device("cpu")
    t = lambda a: torch.from_numpy(a.astype(np.float32) / 255).permute(2, 0, 1)[None].to(device)  # noqa: E731
    for k, case in enumerate(cases):  # case by case: the truth's features are computed once for all engines
        truth = t(case.image)
        hole = torch.from_numpy((case.mask > 0).astype(np.float32))[None, None].to(device)
        with torch.inference_mode():
            truth_features = unit_features(features, truth) if features is not None else None
        for engine in engines:
            params = (options or {}).get(engine.id, {})
            req = FillRequest(case.image, case.mask.astype(np.float32) / 255, output=Output.IMAGE, seed=k, params=params)
            start = time.perf_counter()
            out = fill_region(engine, req).pixels
            seconds = time.perf_counter() - start
            pred = t(out)
            with torch.inference_mode():
                m = {**all_metrics(pred, truth, hole), "sharpness": texture_sharpness(pred, truth, hole)}
                if truth_features is not None:
                    m["features"] = feature_distance(unit_features(features, pred), truth_features, hole)
            rows[engine.id].append({"engine": engine.id, "photo": case.photo, "bucket": case.bucket,
                                    **{name: float(v) for name, v in m.items()}, "seconds": seconds})
            if keep_outputs or k < 64:
                result.outputs[(engine.id, k)] = out
            if progress:
                progress()
    result.rows = [row for engine_rows in rows.values() for row in engine_rows]
    return result


def summarize(scores: Scores) -> dict[str, dict[str, dict[str, float]]]:
    """bucket -> engine -> mean of each metric and the seconds."""
    table: dict[str, dict[str, dict[str, float]]] = {}
    for bucket in dict.fromkeys(r["bucket"] for r in scores.rows):
        table[bucket] = {}
        for engine in dict.fromkeys(r["engine"] for r in scores.rows):
            rows = [r for r in scores.rows if r["bucket"] == bucket and r["engine"] == engine]
            table[bucket][engine] = {k: float(np.mean([r[k] for r in rows])) for k in rows[0] if k not in ("engine", "photo", "bucket")}
    return table


def markdown(table: dict[str, dict[str, dict[str, float]]], n_photos: int, size: int) -> str:
    engines = list(next(iter(table.values())))
    lines = [f"{n_photos} photos at {size}x{size}, one fixed mask per photo and bucket. "
             "Hole PSNR (dB, higher is better) / hole SSIM (higher is better) / masked L1 (lower is better) / seconds per image.",
             "", "| bucket | " + " | ".join(engines) + " |", "|---|" + "---|" * len(engines)]
    for bucket, row in table.items():
        best = max(row[e]["psnr"] for e in engines)
        cells = []
        for e in engines:
            v = row[e]
            text = f"{v['psnr']:.2f} / {v['ssim']:.3f} / {v['l1']:.4f} / {v['seconds']:.2f}s"
            cells.append(f"**{text}**" if v["psnr"] == best else text)
        lines.append(f"| {bucket} | " + " | ".join(cells) + " |")
    lines += ["", "Whole image (as some papers report; known pixels count as exact): PSNR (dB) / SSIM.", "",
              "| bucket | " + " | ".join(engines) + " |", "|---|" + "---|" * len(engines)]
    for bucket, row in table.items():
        lines.append(f"| {bucket} | " + " | ".join(f"{row[e]['psnr_image']:.2f} / {row[e]['ssim_image']:.3f}" for e in engines) + " |")
    with_features = all("features" in v for row in table.values() for v in row.values())
    lines += ["", "Texture sharpness (gradient magnitude of the fill over the truth's, inside the hole; 1.0 = as "
              "textured as the truth, a blur scores under 1)" + (" / feature distance (LPIPS-like on VGG16 features "
              "over the hole, lower is better)." if with_features else "."), "",
              "| bucket | " + " | ".join(engines) + " |", "|---|" + "---|" * len(engines)]
    for bucket, row in table.items():
        cells = [f"{row[e]['sharpness']:.2f}" + (f" / {row[e]['features']:.3f}" if with_features else "") for e in engines]
        lines.append(f"| {bucket} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def picture(scores: Scores, cases: list[Case], engines: list[str], per_bucket: int = 1) -> np.ndarray:
    """Rows: the first photo(s) of each bucket; columns: input | each engine | ground truth."""
    rows, seen = [], {}
    for k, case in enumerate(cases):
        if seen.get(case.bucket, 0) >= per_bucket or any((e, k) not in scores.outputs for e in engines):
            continue
        seen[case.bucket] = seen.get(case.bucket, 0) + 1
        t = lambda a: torch.from_numpy(a.astype(np.float32) / 255).permute(2, 0, 1)  # noqa: E731
        hole = torch.from_numpy((case.mask > 0).astype(np.float32))[None]
        rows.append([show_hole(t(case.image), hole)] + [t(scores.outputs[(e, k)]) for e in engines] + [t(case.image)])
    return grid(rows)


def run_eval(engine_ids: list[str], data: Path, out: Path, registry, size: int = 512, max_photos: int | None = None,
             buckets: list[str] | None = None, seed: int = 0, options: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    from tqdm import tqdm

    photos = find_photos(data)[:max_photos]
    if not photos:
        raise SystemExit(f"no photos (JPEG, PNG, WebP) under {data}")
    buckets = buckets or list(BUCKETS)
    cases = make_cases(photos, size, buckets, seed)
    engines = resolve(engine_ids, registry)
    options = options or {}
    check_options(options, engines)
    features = feature_network_or_none(registry.device)
    with tqdm(total=len(cases) * len(engines), unit="img") as bar:
        scores = score(engines, cases, progress=lambda: bar.update(1), options=options, features=features)
    table = summarize(scores)
    out.mkdir(parents=True, exist_ok=True)
    text = markdown(table, len(photos), size)
    (out / "eval.md").write_text(text)
    (out / "eval.json").write_text(json.dumps({"size": size, "photos": [p.name for p in photos], "buckets": buckets,
                                               "options": options,
                                               "summary": table, "rows": scores.rows}, indent=1))
    (out / "eval_grid.png").write_bytes(encode_png(picture(scores, cases, [e.id for e in engines]), compression=6))
    return {"table": table, "markdown": text, "size": size, "data": str(data), "photos": len(photos)}


def into_cards(result: dict[str, Any], registry) -> list[Path]:
    """Write an eval's table (every engine of the run, the baselines too) into each scored checkpoint's card.

    The card's "eval" then says how the checkpoint did beside the baselines on
    the same cases; /models summarises it for the editors. Returns the cards written.
    """
    from backend.training.checkpoint import write_json

    metrics = ("psnr", "ssim", "l1", "sharpness", "features")
    table = {bucket: {engine: {k: round(v[k], 4) for k in metrics if k in v} for engine, v in row.items()}
             for bucket, row in result["table"].items()}
    written = []
    for name in next(iter(result["table"].values())):
        path = registry.card_path(name)
        if path is None:
            continue
        card = json.loads(path.read_text())
        card["eval"] = {"data": result["data"], "photos": result["photos"], "size": result["size"], "summary": table}
        write_json(path, card)
        written.append(path)
    return written
