"""Where an exemplar engine may copy pixels from: a painted area and/or a band around the hole."""
from __future__ import annotations

import cv2
import numpy as np

from backend.engines import masks
from backend.request import SourcePreset


class SourceTooSmall(ValueError):
    """The sampling area leaves no whole patch to copy from."""


def sampling_area(hole: np.ndarray, painted: np.ndarray | None, preset: SourcePreset | None,
                  width: int) -> np.ndarray | None:
    """H x W bool: known pixels patches may come from, None = all of them.

    painted: H x W, >= 0.5 where the user allows copying; preset: only within `width` px of `hole`, in its
    direction(s). Both given: both must hold.
    """
    if painted is None and preset is None:
        return None
    area = ~hole
    if painted is not None:
        area &= painted >= 0.5
    if preset is not None:
        area &= _near(hole, preset, width)
    return area


def _near(hole: np.ndarray, preset: SourcePreset, width: int) -> np.ndarray:
    """Pixels within `width` of the hole: in any direction, along its rows, or along its columns."""
    hole_f = hole.astype(np.float32)
    if preset is SourcePreset.AROUND:
        return masks.grow(hole_f, width) > 0
    size = 2 * width + 1
    shape = (size, 1) if preset is SourcePreset.SIDES else (1, size)  # cv2 kernels are (width, height)
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, shape)
    return cv2.dilate(hole_f, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0) > 0
