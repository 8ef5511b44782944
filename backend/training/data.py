"""Training data from a folder of photos: split by photo, random crops, masks made on the fly.

Sample number k of a run is drawn from an RNG seeded with (seed, k), not from
a stateful iterator, so a resumed run sees exactly the batches an unbroken
run would have seen, with any number of loader workers or GPUs.
"""
from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path
from typing import Any, Iterator

import cv2
import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from backend.training.masks import generate_mask

SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}
# What a corrupt, truncated or oversized file raises (PIL's UnidentifiedImageError is an OSError).
UNREADABLE = (OSError, ValueError, cv2.error, Image.DecompressionBombError)
UNREADABLE_TRIES = 20  # photos drawn for one sample before the folder is judged unreadable
_REDUCED = {2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}


def find_photos(folder: Path) -> list[Path]:
    return [Path(p) for p in photo_files(folder)]


def photo_files(folder: Path | str) -> list[str]:
    """The photos under `folder` as path strings, in the order sorted() puts their Paths in.

    Made for folders of a million photos: plain strings (Path objects cost several times the
    time and memory), file types from the directory listing rather than a stat per file, and
    each directory's entries sorted by name while walking, which is Path order without a global
    sort. Like Path.rglob, it does not descend into symlinked directories and skips unreadable ones.
    """
    found: list[str] = []

    def walk(top: str) -> None:
        try:
            with os.scandir(top) as listing:
                entries = sorted(listing, key=lambda e: os.path.normcase(e.name))
        except OSError:
            return
        for e in entries:
            dot = e.name.rfind(".")
            if e.is_dir(follow_symlinks=False):
                walk(e.path)
            elif 0 < dot < len(e.name) - 1 and e.name[dot:].lower() in SUFFIXES and e.is_file():  # Path.suffix's rule
                found.append(e.path)

    walk(str(Path(folder)))
    return found


def _relative_names(photos: list[Path] | list[str], root: Path) -> Iterator[str]:
    """str(p.relative_to(root)) for each photo, one at a time. Where a path starts with root's, cutting that
    prefix gives the same (paths from photo_files, and Paths, are in normal form) many times faster."""
    top = str(Path(root))
    prefix = top if top.endswith(os.sep) else top + os.sep
    return (s[len(prefix):] if s.startswith(prefix) else str(Path(s).relative_to(root)) for s in map(os.fspath, photos))


def name_score(name: str) -> float:
    """A number in [0, 1) fixed by a photo's name alone: what puts it on the validation side of a split."""
    return int.from_bytes(hashlib.sha1(name.encode()).digest()[:8], "big") / 2**64


def split(photos: list[Path] | list[str], val_fraction: float, root: Path) -> tuple[list, list]:
    """Split by photo, stably: a photo's side depends only on its path, not on what else is in the folder.

    A photo validates when the sha1 of its path relative to `root` falls under val_fraction (the one
    with the lowest when none does). One pass over the list; the photos come back as given (Path or str).
    """
    if len(photos) < 2:
        raise ValueError(f"need at least 2 photos (one to train on, one to validate), found {len(photos)}")
    scores = [name_score(name) for name in _relative_names(photos, root)]
    held = [s < val_fraction for s in scores]
    if not any(held):
        held[min(range(len(scores)), key=scores.__getitem__)] = True
    val = [p for p, h in zip(photos, held) if h]
    train = [p for p, h in zip(photos, held) if not h]
    return train, val


class PathTable:
    """A read-only list of paths kept as one byte string and its offsets.

    A million paths take tens of MB instead of hundreds, and loader workers forked from the
    trainer share those pages: a list of Python objects would be copied into every worker bit
    by bit as reading it touches their reference counts.
    """

    def __init__(self, paths: list[Path] | list[str]):
        encoded = [os.fsencode(p) for p in paths]
        self.blob = np.frombuffer(b"".join(encoded), np.uint8)
        self.ends = np.cumsum([len(e) for e in encoded], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.ends)

    def __getitem__(self, i: int) -> Path:
        start = int(self.ends[i - 1]) if i > 0 else 0
        return Path(os.fsdecode(self.blob[start:int(self.ends[i])].tobytes()))


def read_rgb(path: Path, reduce: int = 1) -> np.ndarray:
    """Decode as RGB float32 in [0,1]; JPEGs decode at 1/2, 1/4 or 1/8 size much faster when asked."""
    flag = _REDUCED.get(reduce, cv2.IMREAD_COLOR)
    arr = cv2.imread(str(path), flag)
    if arr is None:
        raise ValueError(f"cannot read {path}")
    return arr[:, :, ::-1].astype(np.float32) / 255.0


class MaskSpec:
    """Which mask families to draw and with what hole ratio; `per_kind` gives some families a ratio of their own
    (e.g. a paper's fixed centre hole beside random boxes)."""

    def __init__(self, kinds: dict[str, float], ratio: tuple[float, float],
                 per_kind: dict[str, tuple[float, float]] | None = None):
        self.kinds = list(kinds)
        total = sum(kinds.values())
        self.probs = [kinds[k] / total for k in self.kinds]
        self.ratio = ratio
        self.per_kind = {k: tuple(v) for k, v in (per_kind or {}).items()}

    def draw(self, rng: np.random.Generator, size: int) -> np.ndarray:
        kind = self.kinds[rng.choice(len(self.kinds), p=self.probs)]
        ratio = self.ratio if kind != "blobs" else (self.ratio[0], max(self.ratio[0], min(self.ratio[1], 0.3)))
        return generate_mask(rng, size, size, kind, self.per_kind.get(kind, ratio))


class TrainingPhotos(Dataset):
    """Random crops at random scales with random flips (and, when asked, rotations) and fresh masks.

    Item k is fixed by (seed, k). By default a crop covers size/s source pixels with the
    scale s in `scale` (textures and details at about their own size); `crop_fraction`
    instead makes a crop cover that fraction of the photo's shorter side (whole-scene
    thumbnails, as papers that train on tiny images do). `rotate` turns each crop by up
    to that many degrees, filling the corners by reflection.

    Nothing is read up front: a photo's size comes from its header when a sample picks it
    (the same size every time, so item k stays fixed), so start-up does not open every file.
    A photo that cannot be read is skipped with a warning and marked in `unreadable`, one byte per
    photo in shared memory, so the loader workers' marks reach the trainer.
    """

    def __init__(self, photos: list[Path] | list[str], size: int, masks: MaskSpec, seed: int,
                 scale: tuple[float, float] = (0.25, 1.0), crop_fraction: tuple[float, float] | None = None, rotate: float = 0.0):
        self.photos, self.size, self.masks, self.seed, self.scale = PathTable(photos), size, masks, seed, scale
        self.crop_fraction, self.rotate = crop_fraction, float(rotate)
        self.unreadable = torch.zeros(len(self.photos), dtype=torch.uint8).share_memory_()

    def unreadable_photos(self) -> list[Path]:
        return [self.photos[i] for i in self.unreadable.nonzero().flatten().tolist()]

    def __len__(self) -> int:
        return 2**62  # sample numbers, not photos: the stream is endless

    def __getitem__(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.seed, k])
        for _ in range(UNREADABLE_TRIES):
            index = int(rng.integers(len(self.photos)))
            path = self.photos[index]
            try:
                return self._sample(rng, path)
            except UNREADABLE as e:
                # Drawn again from the same stream, so the sample stays fixed by (seed, k).
                if not self.unreadable[index]:
                    warnings.warn(f"skipping unreadable photo {path}: {e}", stacklevel=2)
                self.unreadable[index] = 1
        raise RuntimeError(f"{UNREADABLE_TRIES} photos in a row could not be read: is the --data folder readable?")

    def _sample(self, rng: np.random.Generator, path: Path) -> tuple[torch.Tensor, torch.Tensor]:
        h, w = _shape(path)  # the header alone: the scale picks how much to decode
        if self.crop_fraction:
            f = float(np.exp(rng.uniform(np.log(self.crop_fraction[0]), np.log(self.crop_fraction[1]))))
            s = min(1.0, self.size / (f * min(h, w)))
        else:
            # Scale s: the crop covers size/s source pixels; never upsample past 1:1 by much.
            lo = max(self.scale[0], self.size / min(h, w))
            s = float(np.exp(rng.uniform(np.log(lo), np.log(max(lo, self.scale[1])))))
        reduce = max([r for r in (1, 2, 4, 8) if r <= 1 / s] or [1])
        img = read_rgb(path, reduce)
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
    """Fixed centre crops with fixed masks: the same numbers at every validation, comparable across steps.

    Each photo gives `per_photo` crops, each with its own mask. A set with more than `crops` of
    them is validated on a fixed sample of ceil(crops / per_photo) photos drawn with `seed`
    (cut to `crops`), so a big folder costs no more than a small one; the sample depends only on
    the photo list, never on the number of processes. A photo is decoded when first asked for, then kept;
    one that cannot be read gives None (with a warning, once) and is listed in `unreadable`.
    """

    def __init__(self, photos: list[Path] | list[str], size: int, masks: MaskSpec, per_photo: int = 2, seed: int = 1234,
                 crops: int = 500):
        self.size, self.masks, self.seed = size, masks, seed
        crops = max(1, int(crops))
        chosen = range(len(photos))
        if len(photos) * per_photo > crops:
            chosen = sorted(np.random.default_rng(seed).choice(len(photos), -(-crops // per_photo), replace=False).tolist())
        # (photo, its index in the whole list, crop number): the index seeds the mask, as it always has.
        self.items = [(Path(photos[j]), j, r) for j in chosen for r in range(per_photo)][:crops]
        self._patches: dict[Path, np.ndarray] = {}  # decoded once (500 crops of 256 px: at most ~200 MB)
        self.unreadable: set[Path] = set()

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, k: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        path, j, r = self.items[k]
        if path in self.unreadable:
            return None
        if path not in self._patches:  # on first use, not at start-up; every later validation reuses it
            try:
                img = read_rgb(path, _reduction(_shape(path), self.size))
            except UNREADABLE as e:
                warnings.warn(f"leaving unreadable photo {path} out of validation: {e}", stacklevel=2)
                self.unreadable.add(path)
                return None
            side = min(img.shape[:2])
            y, x = (img.shape[0] - side) // 2, (img.shape[1] - side) // 2
            patch = cv2.resize(img[y:y + side, x:x + side], (self.size, self.size), interpolation=cv2.INTER_AREA)
            self._patches[path] = patch
        return _tensors(self._patches[path], self.masks.draw(np.random.default_rng([self.seed, j, r]), self.size))


def loader_workers(setting: Any = "auto") -> int:
    """Data loader processes: a number as given, or for "auto" this process's share of the CPUs it may
    run on (under torchrun the ranks on one machine share them), less one for the training loop, at most 8."""
    if setting not in (None, "auto"):
        return int(setting)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    ranks_here = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    return max(0, min(8, cpus // max(1, ranks_here) - 1))


def _shape(path: Path) -> tuple[int, int]:
    with Image.open(path) as im:
        return im.size[1], im.size[0]


def _reduction(shape: tuple[int, int], size: int) -> int:
    return max([r for r in (1, 2, 4, 8) if min(shape) / r >= size] or [1])


def _tensors(patch: np.ndarray, mask: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    image = torch.from_numpy(np.ascontiguousarray(patch)).permute(2, 0, 1).float()
    hole = torch.from_numpy((mask > 0).astype(np.float32))[None]
    return image, hole


def summary(train: list, val: list, root: Path, listed: int = 50) -> dict[str, Any]:
    """What a checkpoint's card says about its data: counts, and the first `listed` validation files."""
    out = {"root": str(root), "train_photos": len(train), "val_photos": len(val),
           "val_files": list(_relative_names(val[:listed], root))}
    if len(val) > listed:  # a card stays small for a folder of a million photos
        out["val_files_not_listed"] = len(val) - listed
    return out
