"""Where an exemplar engine may copy pixels from: a painted area and/or a band around the hole."""
from __future__ import annotations

import cv2
import numpy as np

from backend.engines import masks
from backend.request import FillRequest, SourcePreset


class SourceTooSmall(ValueError):
    """The sampling area leaves no whole patch to copy from."""


def sampling_area(req: FillRequest, hole: np.ndarray) -> np.ndarray | None:
    """H x W bool: known pixels patches may come from (the painted source and/or the preset's band); None = all."""
    if req.source is None and req.source_preset is None:
        return None
    area = ~hole
    if req.source is not None:
        area &= req.source >= 0.5
    if req.source_preset is not None:
        area &= _near(hole, req.source_preset, req.source_width)
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
