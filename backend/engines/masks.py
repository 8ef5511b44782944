"""Single-purpose operations on selection masks (float32, 1 = fill)."""
from __future__ import annotations

import cv2
import numpy as np


def disk(radius: int) -> np.ndarray:
    size = 2 * radius + 1
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))


def grow(mask: np.ndarray, px: int) -> np.ndarray:
    """Dilate by px (a grey dilation, so soft edges stay soft); negative px shrinks."""
    if px == 0:
        return mask
    op = cv2.dilate if px > 0 else cv2.erode
    return op(mask, disk(abs(px)), borderType=cv2.BORDER_CONSTANT, borderValue=0)


def feather(mask: np.ndarray, px: int) -> np.ndarray:
    """Soften the edge over about px pixels on each side, never lowering the selection's core."""
    if px <= 0:
        return mask
    sigma = px / 2.0
    blurred = cv2.GaussianBlur(mask, (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REPLICATE)
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
