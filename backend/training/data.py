"""Training data from a folder of photos: split by photo, random crops, masks made on the fly.

Sample number k of a run is drawn from an RNG seeded with (seed, k), not from
a stateful iterator, so a resumed run sees exactly the batches an unbroken
run would have seen, with any number of loader workers or GPUs.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from backend.training.masks import generate_mask

SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}
_REDUCED = {2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}


def find_photos(folder: Path) -> list[Path]:
    return sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in SUFFIXES and p.is_file())


def split(photos: list[Path], val_fraction: float, root: Path) -> tuple[list[Path], list[Path]]:
    """Split by photo, stably: a photo's side depends only on its path, not on what else is in the folder."""
    if len(photos) < 2:
        raise ValueError(f"need at least 2 photos (one to train on, one to validate), found {len(photos)}")

    def score(p: Path) -> float:
        digest = hashlib.sha1(str(p.relative_to(root)).encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64

    val = [p for p in photos if score(p) < val_fraction] or [min(photos, key=score)]
    train = [p for p in photos if p not in val]
    return train, val


def read_rgb(path: Path, reduce: int = 1) -> np.ndarray:
    """Decode as RGB float32 in [0,1]; JPEGs decode at 1/2, 1/4 or 1/8 size much faster when asked."""
    flag = _REDUCED.get(reduce, cv2.IMREAD_COLOR)
    arr = cv2.imread(str(path), flag)
    if arr is None:
        raise ValueError(f"cannot read {path}")
    return arr[:, :, ::-1].astype(np.float32) / 255.0


class MaskSpec:
    """Which mask families to draw and with what hole ratio."""

    def __init__(self, kinds: dict[str, float], ratio: tuple[float, float]):
        self.kinds = list(kinds)
        total = sum(kinds.values())
        self.probs = [kinds[k] / total for k in self.kinds]
        self.ratio = ratio

    def draw(self, rng: np.random.Generator, size: int) -> np.ndarray:
        kind = self.kinds[rng.choice(len(self.kinds), p=self.probs)]
        ratio = self.ratio if kind != "blobs" else (self.ratio[0], max(self.ratio[0], min(self.ratio[1], 0.3)))
        return generate_mask(rng, size, size, kind, ratio)


class TrainingPhotos(Dataset):
    """Random crops at random scales with random flips (and, when asked, rotations) and fresh masks.

    Item k is fixed by (seed, k). By default a crop covers size/s source pixels with the
    scale s in `scale` (textures and details at about their own size); `crop_fraction`
    instead makes a crop cover that fraction of the photo's shorter side (whole-scene
    thumbnails, as papers that train on tiny images do). `rotate` turns each crop by up
    to that many degrees, filling the corners by reflection.
    """

    def __init__(self, photos: list[Path], size: int, masks: MaskSpec, seed: int, scale: tuple[float, float] = (0.25, 1.0),
                 crop_fraction: tuple[float, float] | None = None, rotate: float = 0.0):
        self.photos, self.size, self.masks, self.seed, self.scale = photos, size, masks, seed, scale
        self.crop_fraction, self.rotate = crop_fraction, float(rotate)
        self.shapes = [_shape(p) for p in photos]

    def __len__(self) -> int:
        return 2**62  # sample numbers, not photos: the stream is endless

    def __getitem__(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.seed, k])
        i = int(rng.integers(len(self.photos)))
        h, w = self.shapes[i]
        if self.crop_fraction:
            f = float(np.exp(rng.uniform(np.log(self.crop_fraction[0]), np.log(self.crop_fraction[1]))))
            s = min(1.0, self.size / (f * min(h, w)))
        else:
            # Scale s: the crop covers size/s source pixels; never upsample past 1:1 by much.
            lo = max(self.scale[0], self.size / min(h, w))
            s = float(np.exp(rng.uniform(np.log(lo), np.log(max(lo, self.scale[1])))))
        reduce = max([r for r in (1, 2, 4, 8) if r <= 1 / s] or [1])
        img = read_rgb(self.photos[i], reduce)
        s_left = s * reduce  # remaining scale after the reduced decode
        crop = min(int(round(self.size / s_left)), img.shape[0], img.shape[1])
        y = int(rng.integers(img.shape[0] - crop + 1))
        x = int(rng.integers(img.shape[1] - crop + 1))
        patch = img[y:y + crop, x:x + crop]
        if self.rotate:
            turn = cv2.getRotationMatrix2D(((crop - 1) / 2, (crop - 1) / 2), rng.uniform(-self.rotate, self.rotate), 1.0)
            patch = cv2.warpAffine(patch, turn, (crop, crop), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
        patch = cv2.resize(patch, (self.size, self.size), interpolation=cv2.INTER_AREA)
        if rng.random() < 0.5:
            patch = patch[:, ::-1]
        mask = self.masks.draw(rng, self.size)
        return _tensors(patch, mask)


class ValidationPhotos(Dataset):
    """Fixed centre crops with fixed masks: the same numbers at every validation, comparable across steps."""

    def __init__(self, photos: list[Path], size: int, masks: MaskSpec, per_photo: int = 2, seed: int = 1234):
        self.items = []
        for j, path in enumerate(photos):
            img = read_rgb(path, _reduction(_shape(path), size))
            side = min(img.shape[:2])
            y, x = (img.shape[0] - side) // 2, (img.shape[1] - side) // 2
            patch = cv2.resize(img[y:y + side, x:x + side], (size, size), interpolation=cv2.INTER_AREA)
            for r in range(per_photo):
                rng = np.random.default_rng([seed, j, r])
                self.items.append(_tensors(patch, masks.draw(rng, size)))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, k: int):
        return self.items[k]


def _shape(path: Path) -> tuple[int, int]:
    from PIL import Image

    with Image.open(path) as im:
        return im.size[1], im.size[0]


def _reduction(shape: tuple[int, int], size: int) -> int:
    return max([r for r in (1, 2, 4, 8) if min(shape) / r >= size] or [1])


def _tensors(patch: np.ndarray, mask: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    image = torch.from_numpy(np.ascontiguousarray(patch)).permute(2, 0, 1).float()
    hole = torch.from_numpy((mask > 0).astype(np.float32))[None]
    return image, hole


def summary(train: list[Path], val: list[Path], root: Path) -> dict[str, Any]:
    return {"root": str(root), "train_photos": len(train), "val_photos": len(val),
            "val_files": [str(p.relative_to(root)) for p in val]}
