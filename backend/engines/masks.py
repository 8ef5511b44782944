"""Single-purpose operations on selection masks (float32, 1 = fill).

Grow and feather cost the same whatever their radius: a wide grow thresholds distance
transforms instead of sliding a disk kernel, and a wide feather blurs a scaled-down copy
(a 2001 px disk and a 3000 px Gaussian kernel held the worker for minutes).
"""
from __future__ import annotations

import cv2
import numpy as np

KERNEL_RADIUS = 16  # up to here a disk kernel is cheap and exact; past it, distance transforms
LEVELS = 16  # a wide grow keeps up to this many distinct mask levels exactly, and interpolates between them past it
BLUR_SIGMA = 8.0  # wider blurs run on a copy scaled down to this sigma: the kernel is smooth, so little is lost


def disk(radius: int) -> np.ndarray:
    size = 2 * radius + 1
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))


def grow(mask: np.ndarray, px: int) -> np.ndarray:
    """Dilate by px (a grey dilation, so soft edges stay soft); negative px shrinks. Outside the array is unselected."""
    if px == 0:
        return mask
    radius = abs(px)
    if radius <= KERNEL_RADIUS:
        op = cv2.dilate if px > 0 else cv2.erode
        return op(mask, disk(radius), borderType=cv2.BORDER_CONSTANT, borderValue=0)
    if px > 0:
        return _dilate_by_distance(mask, radius)
    # Erosion is the dilation of the complement; the frame keeps the outside unselected.
    outside = np.pad(1 - mask, 1, constant_values=1)
    return 1 - _dilate_by_distance(outside, radius)[1:-1, 1:-1]


def _dilate_by_distance(mask: np.ndarray, radius: int) -> np.ndarray:
    """Grey dilation by a Euclidean disk: a pixel takes the highest level whose set lies within `radius`.

    One distance transform per level. Past LEVELS distinct levels, LEVELS evenly spaced ones are used and a
    pixel between two reaches gets the level its distances interpolate to (exact on a linear ramp).
    """
    levels = np.unique(mask[mask > 0])
    interpolate = levels.size > LEVELS
    if interpolate:
        levels = np.linspace(levels[0], levels[-1], LEVELS, dtype=np.float32)
    out = np.zeros_like(mask)
    previous = None  # (level, distance to its set)
    for level in levels:
        dist = cv2.distanceTransform((mask < level).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
        out[dist <= radius] = level
        if interpolate and previous is not None:
            low, low_dist = previous
            between = (low_dist <= radius) & (dist > radius)
            out[between] = low + (level - low) * (radius - low_dist[between]) / (dist[between] - low_dist[between])
        previous = level, dist
    return out


def feather(mask: np.ndarray, px: int) -> np.ndarray:
    """Soften the edge over about px pixels on each side, never lowering the selection's core."""
    if px <= 0:
        return mask
    sigma = px / 2.0
    if sigma <= BLUR_SIGMA:
        blurred = cv2.GaussianBlur(mask, (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REPLICATE)
    else:
        h, w = mask.shape
        sw, sh = max(1, round(w * BLUR_SIGMA / sigma)), max(1, round(h * BLUR_SIGMA / sigma))
        small = cv2.resize(mask, (sw, sh), interpolation=cv2.INTER_AREA)
        small = cv2.GaussianBlur(small, (0, 0), sigmaX=sigma * sw / w, sigmaY=sigma * sh / h, borderType=cv2.BORDER_REPLICATE)
        blurred = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    # Blur spreads the edge both ways; taking the max keeps fully selected pixels fully filled
    # inside the original selection, so feathering only adds a soft rim outside it.
    return np.maximum(mask, blurred)


def bounding_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """(x, y, w, h) of the non-zero pixels, or None when there are none."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1)


def ring(hole: np.ndarray, width: int) -> np.ndarray:
    """The band of pixels within `width` px outside a binary hole."""
    return (cv2.dilate(hole.astype(np.uint8), disk(width)) > 0) & ~hole
