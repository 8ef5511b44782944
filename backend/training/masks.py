"""The project's hole-mask generator, shared by training and evaluation.

Four families, all returning uint8 HxW masks with 255 = hole:

- strokes: free-form brush strokes (thick polylines with round joints), the
  kind of selection a user paints over an object or a power line;
- boxes:   axis-aligned rectangles (rectangular marquee selections);
- blobs:   smooth object-shaped silhouettes (one body, sometimes extra lobes),
  like the outline of a person, animal or thing to remove;
- centre:  one square at the centre, the fixed hole of context-encoder style
  papers (Neural-features GAN trains on an 8x8 hole in 24x24 images);
- pattern, pixels, half: the other test masks of Yeh et al. (CVPR 2017): a random
  pattern of blotches, scattered single pixels (80 % missing), and one half of
  the image (left, right, top or bottom).

Every generator but `centre` and `half` takes a hole-ratio range and guarantees the returned mask's
hole fraction lies inside it: shapes are added only while they keep the
fraction at or under the upper bound, and blobs are rescaled by bisection.
Randomness comes only from the numpy Generator passed in, so a seed fixes
the mask.
"""
from __future__ import annotations

import math
from typing import Callable

import cv2
import numpy as np

Ratio = tuple[float, float]

# The evaluation buckets: name -> (kind, hole-ratio range). Benchmarks and
# validation use these so their numbers stay comparable.
BUCKETS: dict[str, tuple[str, Ratio]] = {
    "strokes 10-20%": ("strokes", (0.10, 0.20)),
    "strokes 20-30%": ("strokes", (0.20, 0.30)),
    "strokes 30-40%": ("strokes", (0.30, 0.40)),
    "strokes 40-50%": ("strokes", (0.40, 0.50)),
    "blobs 5-15%": ("blobs", (0.05, 0.15)),
}
# Buckets run on request (`eval --buckets`), for re-running a paper's own setting.
EXTRA_BUCKETS: dict[str, tuple[str, Ratio]] = {
    "centre 1/9": ("centre", (1 / 9, 1 / 9)),  # 8x8 in 24x24: Neural-features GAN's training hole
    "boxes 5-20%": ("boxes", (0.05, 0.20)),  # rectangles of any size and place: its test-time holes
    # Yeh et al.'s four masks (§4.2), at 64x64 in the paper:
    "centre 1/4": ("centre", (0.25, 0.25)),  # the central block, half the side
    "pattern 25%": ("pattern", (0.22, 0.28)),  # "random pattern ... approximately 25 % missing"
    "pixels 80%": ("pixels", (0.79, 0.81)),  # "80 % missing complete random masks"
    "half": ("half", (0.5, 0.5)),  # "half missing ... randomly horizontal or vertical"
    # Infer-Match-Translate's ImageNet test: a centred 224x224 hole in 512x512.
    "centre 224/512": ("centre", ((224 / 512) ** 2, (224 / 512) ** 2)),
}
ALL_BUCKETS = {**BUCKETS, **EXTRA_BUCKETS}


def hole_ratio(mask: np.ndarray) -> float:
    """Fraction of hole (non-zero) pixels."""
    return float(np.count_nonzero(mask)) / mask.size


def _check(height: int, width: int, ratio: Ratio) -> tuple[float, float]:
    lo, hi = float(ratio[0]), float(ratio[1])
    if not 0.0 <= lo <= hi <= 1.0:
        raise ValueError(f"hole ratio range must satisfy 0 <= lo <= hi <= 1, got {ratio}")
    if (hi - lo) * height * width < 1.0 and math.ceil(lo * height * width) > hi * height * width:
        raise ValueError(f"no whole number of pixels of a {width}x{height} mask lies in {ratio}")
    return lo, hi


def _accumulate(
    rng: np.random.Generator,
    height: int,
    width: int,
    ratio: Ratio,
    draw: Callable[[np.random.Generator, np.ndarray, float], None],
) -> np.ndarray:
    """Add shapes drawn by `draw` until the hole fraction reaches a target inside `ratio`.

    `draw(rng, canvas, shrink)` paints one shape (255) onto canvas; shrink in
    (0, 1] asks for a smaller shape after the previous one overshot. A shape
    that would push the fraction over the upper bound is thrown away, and
    after repeated overshoots the gap is closed with small discs, so the loop
    always ends inside the range.
    """
    lo, hi = _check(height, width, ratio)
    total = height * width
    target = rng.uniform(lo, hi)  # aim anywhere in the range so coverage varies
    limit = math.floor(hi * total)
    # A target just under hi can round up past the limit: cap it, or the loop never ends.
    need = min(max(math.ceil(target * total), math.ceil(lo * total)), limit)
    mask = np.zeros((height, width), np.uint8)
    covered = 0
    overshoots = 0
    while covered < need:
        canvas = mask.copy()
        if overshoots < 8:
            draw(rng, canvas, 0.5**overshoots)
        else:
            # Close the last gap with a disc no larger than what is left.
            room = max(limit - covered, 1)
            radius = int(math.sqrt(room / math.pi) * rng.uniform(0.5, 1.0))
            center = (int(rng.integers(0, width)), int(rng.integers(0, height)))
            cv2.circle(canvas, center, radius, 255, -1)
        count = int(np.count_nonzero(canvas))
        if count > limit:
            overshoots += 1
            continue
        mask, covered = canvas, count
        overshoots = 0
    return mask


def _draw_stroke(rng: np.random.Generator, canvas: np.ndarray, shrink: float) -> None:
    """One brush stroke: a random walk of 2-9 segments with a constant brush width."""
    h, w = canvas.shape
    size = min(h, w)
    brush = max(2, int(size * rng.uniform(0.02, 0.09) * shrink))
    x, y = rng.uniform(0, w), rng.uniform(0, h)
    angle = rng.uniform(0, 2 * math.pi)
    points = [(x, y)]
    for _ in range(max(1, int(rng.integers(2, 10) * shrink))):
        angle += rng.uniform(-1.2, 1.2)  # bends like a hand-painted stroke, not a zigzag
        length = size * rng.uniform(0.05, 0.3) * shrink
        x, y = x + length * math.cos(angle), y + length * math.sin(angle)
        points.append((x, y))
    pts = [(int(round(px)), int(round(py))) for px, py in points]
    for a, b in zip(pts[:-1], pts[1:]):
        cv2.line(canvas, a, b, 255, brush, lineType=cv2.LINE_8)
    for p in pts:
        cv2.circle(canvas, p, brush // 2, 255, -1)


def _draw_box(rng: np.random.Generator, canvas: np.ndarray, shrink: float) -> None:
    """One rectangle of random aspect, 2-25% of the image times shrink, fully inside the image."""
    h, w = canvas.shape
    area = h * w * rng.uniform(0.02, 0.25) * shrink
    aspect = math.exp(rng.uniform(-1.0, 1.0))
    bw = int(min(w, max(2, math.sqrt(area * aspect))))
    bh = int(min(h, max(2, area / max(bw, 1))))
    x0 = int(rng.integers(0, w - bw + 1))
    y0 = int(rng.integers(0, h - bh + 1))
    canvas[y0 : y0 + bh, x0 : x0 + bw] = 255


def stroke_mask(rng: np.random.Generator, height: int, width: int, ratio: Ratio = (0.1, 0.2)) -> np.ndarray:
    """Free-form brush strokes covering a fraction of the image inside `ratio`."""
    return _accumulate(rng, height, width, ratio, _draw_stroke)


def box_mask(rng: np.random.Generator, height: int, width: int, ratio: Ratio = (0.1, 0.2)) -> np.ndarray:
    """One or more rectangles covering a fraction of the image inside `ratio`."""
    return _accumulate(rng, height, width, ratio, _draw_box)


def _blob_outline(rng: np.random.Generator) -> list[np.ndarray]:
    """Polygons (unit scale, around the origin) of a smooth silhouette.

    A body whose radius is a low-order random Fourier series (smooth, without
    spikes), stretched and turned, plus up to two smaller lobes touching it,
    the way heads, limbs or handles stick out of real objects.
    """
    theta = np.linspace(0, 2 * np.pi, 96, endpoint=False)

    def lobe(cx: float, cy: float, size: float) -> np.ndarray:
        r = np.ones_like(theta)
        for k in range(2, 6):
            r += rng.uniform(0, 0.3 / k) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
        stretch = math.exp(rng.uniform(-0.6, 0.6))
        turn = rng.uniform(0, np.pi)
        x, y = r * np.cos(theta) * stretch, r * np.sin(theta) / stretch
        c, s = math.cos(turn), math.sin(turn)
        return np.stack([cx + size * (c * x - s * y), cy + size * (s * x + c * y)], axis=1)

    polygons = [lobe(0.0, 0.0, 1.0)]
    for _ in range(int(rng.integers(0, 3))):
        direction = rng.uniform(0, 2 * np.pi)
        polygons.append(lobe(0.9 * math.cos(direction), 0.9 * math.sin(direction), rng.uniform(0.25, 0.55)))
    return polygons


def blob_mask(rng: np.random.Generator, height: int, width: int, ratio: Ratio = (0.05, 0.15)) -> np.ndarray:
    """One object-shaped blob whose area fraction lies inside `ratio`.

    The silhouette's scale is found by bisection on the drawn pixel count (it
    grows with the scale); if clipping at the border keeps a placement from
    reaching the range, a new shape and place are drawn.
    """
    lo, hi = _check(height, width, ratio)
    total = height * width
    target = rng.uniform(lo, hi)
    for _ in range(50):
        outline = _blob_outline(rng)
        center = np.array([rng.uniform(0.15, 0.85) * width, rng.uniform(0.15, 0.85) * height])

        def draw(scale: float) -> np.ndarray:
            canvas = np.zeros((height, width), np.uint8)
            for polygon in outline:  # one call each: a joint call would XOR the overlaps
                cv2.fillPoly(canvas, [np.round(center + scale * polygon).astype(np.int32)], 255)
            return canvas

        small, large = 0.0, float(max(height, width))
        for _ in range(40):
            scale = 0.5 * (small + large)
            canvas = draw(scale)
            frac = np.count_nonzero(canvas) / total
            if lo <= frac <= hi and abs(frac - target) < 0.01:
                return canvas
            if frac < target:
                small = scale
            else:
                large = scale
        if lo <= frac <= hi:
            return canvas
    raise RuntimeError(f"could not draw a blob covering {ratio} of a {width}x{height} image")


def centre_mask(rng: np.random.Generator, height: int, width: int, ratio: Ratio = (1 / 9, 1 / 9)) -> np.ndarray:
    """The centred rectangle of the image's aspect whose area is closest to the middle of `ratio` (no randomness)."""
    r = math.sqrt((ratio[0] + ratio[1]) / 2)
    mh, mw = max(1, round(height * r)), max(1, round(width * r))
    y0, x0 = (height - mh) // 2, (width - mw) // 2
    mask = np.zeros((height, width), np.uint8)
    mask[y0:y0 + mh, x0:x0 + mw] = 255
    return mask


def _exact_count(rng: np.random.Generator, total: int, ratio: Ratio) -> int:
    """A pixel count whose fraction of `total` lies in `ratio`, aimed anywhere inside it."""
    lo, hi = ratio
    return min(max(round(rng.uniform(lo, hi) * total), math.ceil(lo * total)), math.floor(hi * total))


def pattern_mask(rng: np.random.Generator, height: int, width: int, ratio: Ratio = (0.22, 0.28)) -> np.ndarray:
    """Irregular blotches of every size: the highest pixels of smooth random noise, as many as the ratio asks.

    Context Encoders' random-pattern masks (which Yeh et al. reuse) are deformed segmentation
    outlines; smooth noise over two scales gives holes of that look without the dataset.
    """
    lo, hi = _check(height, width, ratio)
    field = np.zeros((height, width), np.float32)
    for cells, amount in ((4, 1.0), (10, 0.5)):
        noise = rng.standard_normal((cells, cells)).astype(np.float32)
        field += amount * cv2.resize(noise, (width, height), interpolation=cv2.INTER_CUBIC)
    count = _exact_count(rng, height * width, (lo, hi))
    mask = np.zeros(height * width, np.uint8)
    mask[np.argsort(-field, axis=None, kind="stable")[:count]] = 255
    return mask.reshape(height, width)


def pixels_mask(rng: np.random.Generator, height: int, width: int, ratio: Ratio = (0.79, 0.81)) -> np.ndarray:
    """Single pixels missing independently of each other, exactly as many as the ratio asks."""
    lo, hi = _check(height, width, ratio)
    mask = np.zeros(height * width, np.uint8)
    mask[rng.choice(height * width, _exact_count(rng, height * width, (lo, hi)), replace=False)] = 255
    return mask.reshape(height, width)


def half_mask(rng: np.random.Generator, height: int, width: int, ratio: Ratio = (0.5, 0.5)) -> np.ndarray:
    """The left, right, top or bottom half, picked at random (the ratio is always about one half)."""
    mask = np.zeros((height, width), np.uint8)
    side = int(rng.integers(4))
    if side == 0:
        mask[:, : width // 2] = 255
    elif side == 1:
        mask[:, width - width // 2:] = 255
    elif side == 2:
        mask[: height // 2] = 255
    else:
        mask[height - height // 2:] = 255
    return mask


GENERATORS = {"strokes": stroke_mask, "boxes": box_mask, "blobs": blob_mask, "centre": centre_mask,
              "pattern": pattern_mask, "pixels": pixels_mask, "half": half_mask}


def generate_mask(rng: np.random.Generator, height: int, width: int, kind: str, ratio: Ratio) -> np.ndarray:
    """A mask of the given kind (a key of GENERATORS) with hole fraction inside `ratio`."""
    if kind not in GENERATORS:
        raise ValueError(f"unknown mask kind {kind!r}; known: {', '.join(GENERATORS)}")
    return GENERATORS[kind](rng, height, width, ratio)


def bucket_mask(name: str, seed: int, height: int = 512, width: int = 512) -> np.ndarray:
    """The fixed evaluation mask number `seed` of bucket `name` (see BUCKETS and EXTRA_BUCKETS)."""
    if name not in ALL_BUCKETS:
        raise ValueError(f"unknown bucket {name!r}; known: {', '.join(ALL_BUCKETS)}")
    kind, ratio = ALL_BUCKETS[name]
    return generate_mask(np.random.default_rng(seed), height, width, kind, ratio)
