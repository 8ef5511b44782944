"""The training data pipeline on folders of a million photos: linear split, lazy headers, capped validation, small cards."""
from __future__ import annotations

import hashlib
import os
import pickle
from pathlib import Path

import cv2
import numpy as np
import PIL.Image
import pytest
import torch
from conftest import photo_like

from backend.training import data
from backend.training.data import MaskSpec, TrainingPhotos, ValidationPhotos, find_photos, photo_files, split, summary

MASKS = MaskSpec({"strokes": 0.5, "boxes": 0.2, "blobs": 0.3}, (0.1, 0.5))


def old_rule(photos: list[Path], val_fraction: float, root: Path) -> tuple[list[Path], list[Path]]:
    """The split as it has always been defined: sha1 of the relative path under val_fraction, else the lowest."""
    score = lambda p: int.from_bytes(hashlib.sha1(str(p.relative_to(root)).encode()).digest()[:8], "big") / 2**64  # noqa: E731
    val = [p for p in photos if score(p) < val_fraction] or [min(photos, key=score)]
    return [p for p in photos if p not in val], val


@pytest.fixture
def opened(monkeypatch):
    """Counts every attempt to open a photo, by PIL or OpenCV."""
    calls = []
    real_open, real_imread = PIL.Image.open, cv2.imread
    monkeypatch.setattr(PIL.Image, "open", lambda *a, **k: calls.append(a[0]) or real_open(*a, **k))
    monkeypatch.setattr(cv2, "imread", lambda *a, **k: calls.append(a[0]) or real_imread(*a, **k))
    return calls


def real_photos(folder: Path, n: int) -> list[Path]:
    folder.mkdir(exist_ok=True)
    for i in range(n):
        cv2.imwrite(str(folder / f"p{i:02d}.jpg"), photo_like(70 + 9 * i, 100, seed=i))
    return find_photos(folder)


def test_split_is_the_old_rule_in_one_pass(monkeypatch):
    root = Path("/photos")
    small = [root / f"d{i % 7}" / f"img{i}.jpg" for i in range(300)]
    for fraction in (0.0, 0.15, 0.5):
        assert split(small, fraction, root) == old_rule(small, fraction, root)
    # Strings split the same as Paths and come back as strings.
    train, val = split([str(p) for p in small], 0.15, root)
    assert ([Path(p) for p in train], [Path(p) for p in val]) == old_rule(small, 0.15, root)

    compared = []
    real_eq = Path.__eq__
    monkeypatch.setattr(Path, "__eq__", lambda a, b: compared.append(1) or real_eq(a, b))
    photos = [root / f"img{i}.jpg" for i in range(3000)]
    train, val = split(photos, 0.15, root)
    assert len(train) + len(val) == 3000 and 300 < len(val) < 600
    assert len(compared) <= len(photos)  # testing membership in a list compares every train photo with every val one
    monkeypatch.undo()

    many = [f"/photos/{i // 1000}/{i}.jpg" for i in range(200_000)]
    train, val = split(many, 0.15, root)
    assert len(train) + len(val) == 200_000 and abs(len(val) / 200_000 - 0.15) < 0.01
    with pytest.raises(ValueError, match="at least 2 photos"):
        split(many[:1], 0.15, root)


def test_find_photos_lists_in_path_order_without_a_stat_per_file(tmp_path, monkeypatch):
    for name in ["a.jpg", "a-b.jpg", "a/b.jpg", "a/c/d.PNG", "A.jpg", "..jpg", ".jpg", "x.", "z/y.webp", "a b/q.jpeg",
                 "a.b/c.jpg", "notes.txt"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "dir.jpg").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "a")  # Path.rglob does not follow symlinked folders
    expected = sorted(p for p in tmp_path.rglob("*") if p.suffix.lower() in data.SUFFIXES and p.is_file())

    stats = []
    real_stat = Path.stat
    monkeypatch.setattr(Path, "stat", lambda self, **k: stats.append(self) or real_stat(self, **k))
    real_os_stat = os.stat
    monkeypatch.setattr(os, "stat", lambda p, *a, **k: stats.append(p) or real_os_stat(p, *a, **k))
    assert find_photos(tmp_path) == expected
    assert photo_files(tmp_path) == [str(p) for p in expected]
    assert stats == []


def test_training_photos_open_nothing_until_a_sample_needs_it(tmp_path, opened):
    missing = [tmp_path / "nowhere" / f"{i}.jpg" for i in range(2000)]
    data_set = TrainingPhotos(missing, 32, MASKS, seed=0)  # would fail if it read any header
    assert opened == [] and len(data_set.photos) == 2000 and data_set.photos[1234] == missing[1234]

    photos = real_photos(tmp_path / "real", 5)
    one, two = TrainingPhotos(photos, 32, MASKS, seed=3), TrainingPhotos([str(p) for p in photos], 32, MASKS, seed=3)
    assert opened == []
    copy = pickle.loads(pickle.dumps(one))  # as a loader worker started by spawn gets it
    for k in (0, 7, 123456789):
        a, b, c = one[k], two[k], copy[k]
        assert a[0].shape == (3, 32, 32) and torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and torch.equal(a[0], c[0])
    assert opened  # a sample reads its photo


def test_validation_is_capped_and_the_same_in_every_process(tmp_path, opened, monkeypatch):
    photos = real_photos(tmp_path, 11)
    val = ValidationPhotos(photos, 32, MASKS, per_photo=2)
    assert len(val) == 22  # small sets: every photo, as always
    for k in (0, 1, 21):  # crop 2j+r: photo j's centre crop with the mask seeded (1234, j, r)
        j, r = divmod(k, 2)
        img = data.read_rgb(photos[j], data._reduction(PIL.Image.open(photos[j]).size, 32))
        side = min(img.shape[:2])
        y, x = (img.shape[0] - side) // 2, (img.shape[1] - side) // 2
        want = cv2.resize(img[y:y + side, x:x + side], (32, 32), interpolation=cv2.INTER_AREA)
        image, hole = val[k]
        assert torch.equal(image, torch.from_numpy(want).permute(2, 0, 1))
        assert torch.equal(hole[0], torch.from_numpy((MASKS.draw(np.random.default_rng([1234, j, r]), 32) > 0).astype(np.float32)))

    opened.clear()
    many = [tmp_path / "nowhere" / f"{i}.jpg" for i in range(100_000)]
    capped = ValidationPhotos(many, 32, MASKS, per_photo=2, crops=500)
    assert len(capped) == 500 and opened == []
    assert len({item[0] for item in capped.items}) == 250
    # The sample depends on the photo list alone (nothing per process): built again, it is the same.
    assert ValidationPhotos(many, 32, MASKS, per_photo=2, crops=500).items == capped.items
    assert len(ValidationPhotos(many, 32, MASKS, per_photo=3, crops=500)) == 500
    assert ValidationPhotos(photos, 32, MASKS, per_photo=2, crops=7).items[0][0] in photos


def test_card_lists_a_bounded_number_of_val_files():
    root = Path("/photos")
    val = [f"/photos/v/{i}.jpg" for i in range(270_000)]
    card = summary(["/photos/t.jpg"], val, root)
    assert card["val_photos"] == 270_000 and card["val_files"] == [f"v/{i}.jpg" for i in range(50)]
    assert card["val_files_not_listed"] == 270_000 - 50
    small = summary([root / "t.jpg"], [root / "a.jpg", root / "b" / "c.jpg"], root)
    assert small["val_files"] == ["a.jpg", "b/c.jpg"] and "val_files_not_listed" not in small


def test_loader_workers_default_from_the_cpus(monkeypatch):
    from backend.training.trainer import DEFAULTS

    assert DEFAULTS["workers"] == "auto"
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    for cpus, want in ((1, 0), (2, 1), (4, 3), (16, 8), (64, 8)):
        monkeypatch.setattr(data.os, "sched_getaffinity", lambda pid, n=cpus: set(range(n)), raising=False)
        assert data.loader_workers("auto") == want
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")  # torchrun: four ranks share this machine's 64 CPUs
    assert data.loader_workers("auto") == 8
    monkeypatch.setattr(data.os, "sched_getaffinity", lambda pid: set(range(16)), raising=False)
    assert data.loader_workers("auto") == 3
    assert data.loader_workers(0) == 0 and data.loader_workers(2) == 2 and data.loader_workers("5") == 5


def test_an_unreadable_photo_is_skipped_and_the_samples_stay_fixed(tmp_path):
    import warnings

    import cv2
    from conftest import photo_like

    from backend.training.data import MaskSpec, TrainingPhotos

    good = []
    for i in range(3):
        good.append(tmp_path / f"p{i}.jpg")
        cv2.imwrite(str(good[-1]), photo_like(96, 96, seed=i))
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8 not a jpeg")
    masks = MaskSpec({"boxes": 1.0}, (0.1, 0.3))
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        data = TrainingPhotos(good + [bad], 64, masks, seed=0)
        items = [data[k] for k in range(12)]
    assert all(image.shape == (3, 64, 64) for image, _ in items)
    assert any("broken.jpg" in str(w.message) for w in seen)  # some sample drew it, and said so
    again = TrainingPhotos(good + [bad], 64, masks, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert all(torch.equal(a[0], again[k][0]) for k, a in enumerate(items))
