"""Region handling shared by every engine: the path from a whole image and a selection to a filled layer.

For each group of nearby selected regions: crop its box plus context, scale to
the engine's size rules, run the engine, scale back, match tone at the border
(or Poisson-blend), and paste only where the grown and feathered mask is
non-zero. Pixels where that mask is 0 are copied, never recomputed, so they
stay bit-identical.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from backend.engines import masks
from backend.engines.base import Engine, InpaintOptions, Progress
from backend.engines.poisson import poisson_blend
from backend.engines.sampling import SourceTooSmall, sampling_area
from backend.request import Blend, FillRequest, FillResult, Output


class MaskError(ValueError):
    """The selection cannot be filled (empty, or nothing left to copy from)."""

    def __init__(self, code: str, detail: str):
        super().__init__(detail)
        self.code = code
        self.detail = detail


Box = tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive)
MAX_TONE_SHIFT = 0.1  # of the full range, per channel


@dataclass
class Plan:
    """Where one engine call reads and writes, and at what scale."""

    box: Box  # crop in image coordinates
    work: tuple[int, int]  # (w, h) the crop is scaled to before padding
    pad: tuple[int, int]  # (right, bottom) padding to satisfy multiple/minimum


def auto_context(w: int, h: int) -> int:
    # About half the region's size on each side: the hole is then roughly a quarter
    # of what the engine sees, the ratio inpainting models are trained on.
    return max(32, int(round(0.5 * max(w, h))))


def _overlaps(a: Box, b: Box) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def group_boxes(hole: np.ndarray, context: int | None, limit: tuple[int, int], offset: tuple[int, int] = (0, 0)) -> list[Box]:
    """Boxes (with context) around connected regions, merged while they overlap.

    `hole` may be a window of the image starting at `offset`; boxes are in
    image coordinates, clamped to `limit` (width, height). Merging guarantees
    that each box contains only the holes of its own group, so groups can be
    filled independently.
    """
    n, _, stats, _ = cv2.connectedComponentsWithStats(hole.astype(np.uint8), connectivity=8)
    width, height = limit
    boxes = []
    for x, y, w, h, _area in stats[1:]:
        x, y = x + offset[0], y + offset[1]
        c = auto_context(w, h) if context is None else context
        boxes.append((max(0, x - c), max(0, y - c), min(width, x + w + c), min(height, y + h + c)))
    merged = True
    while merged:
        merged = False
        out: list[Box] = []
        for b in boxes:
            for i, o in enumerate(out):
                if _overlaps(b, o):
                    out[i] = (min(b[0], o[0]), min(b[1], o[1]), max(b[2], o[2]), max(b[3], o[3]))
                    merged = True
                    break
            else:
                out.append(b)
        boxes = out
    return sorted(boxes, key=lambda b: (b[1], b[0]))


def plan_crop(box: Box, engine: Engine, limit: tuple[int, int]) -> Plan:
    rules = engine.size
    x0, y0, x1, y1 = box
    # Grow small crops to the engine's minimum with real context when the image has it;
    # a fixed-size engine gets a square crop so scaling it keeps the aspect.
    for axis in (0, 1):
        lo, hi = (x0, x1) if axis == 0 else (y0, y1)
        want = max(x1 - x0, y1 - y0) if rules.fixed else rules.minimum
        need = want - (hi - lo)
        if need > 0:
            lo = max(0, lo - need // 2)
            hi = min(limit[axis], lo + want)
            lo = max(0, hi - want)
        if axis == 0:
            x0, x1 = lo, hi
        else:
            y0, y1 = lo, hi
    w, h = x1 - x0, y1 - y0
    if rules.fixed:  # where the image is too narrow for a square, the crop is stretched
        return Plan((x0, y0, x1, y1), (rules.native, rules.native), (0, 0))
    scale = 1.0
    if rules.native is not None and max(w, h) > rules.native:
        scale = rules.native / max(w, h)
    ww, wh = max(1, round(w * scale)), max(1, round(h * scale))

    def padded(n: int) -> int:
        return max(rules.minimum, math.ceil(n / rules.multiple) * rules.multiple)

    return Plan((x0, y0, x1, y1), (ww, wh), (padded(ww) - ww, padded(wh) - wh))


def to_float(pixels: np.ndarray) -> np.ndarray:
    return pixels.astype(np.float32) / (65535.0 if pixels.dtype == np.uint16 else 255.0)


def quantize(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    top = 65535.0 if dtype == np.uint16 else 255.0
    return np.clip(values * top + 0.5, 0, top).astype(dtype)


def run_engine(engine: Engine, rgb: np.ndarray, hole: np.ndarray, plan: Plan, options: InpaintOptions, progress: Progress,
               source: np.ndarray | None = None) -> np.ndarray:
    """Scale the crop to the engine's working size, run it, and scale the result back (float32 HxWx3).

    source: the crop's sampling area (bool) for an engine that copies patches (options.source); None = anywhere.
    """
    h, w = hole.shape
    ww, wh = plan.work
    scaled = (ww, wh) != (w, h)
    img = cv2.resize(rgb, (ww, wh), interpolation=cv2.INTER_AREA) if scaled else rgb
    # Any working pixel that a hole pixel touches is generated: no hole colour may leak in.
    hol = cv2.resize(hole.astype(np.float32), (ww, wh), interpolation=cv2.INTER_AREA) > 1e-3 if scaled else hole
    # Likewise a working pixel may be copied only when all it averages lies in the sampling area.
    src = None
    if source is not None:
        src = cv2.resize(source.astype(np.float32), (ww, wh), interpolation=cv2.INTER_AREA) > 1 - 1e-3 if scaled else source
    pr, pb = plan.pad
    if pr or pb:
        mode = cv2.BORDER_REFLECT_101 if min(ww, wh) > 1 else cv2.BORDER_REPLICATE
        img = cv2.copyMakeBorder(img, 0, pb, 0, pr, mode)
        hol = np.pad(hol, ((0, pb), (0, pr)))
        src = None if src is None else np.pad(src, ((0, pb), (0, pr)))
    dev = engine.device
    t_img = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None].to(dev)
    t_hole = torch.from_numpy(hol.astype(np.float32))[None, None].to(dev)
    if src is not None:
        options.source = torch.from_numpy(src.astype(np.float32))[None, None].to(dev)
    with torch.inference_mode(not engine.needs_gradients):
        out = engine.inpaint(t_img * (1 - t_hole), t_hole, options, progress)
    out = out[0, :, :wh, :ww].clamp(0, 1).permute(1, 2, 0).float().cpu().numpy()
    if scaled:
        out = np.clip(cv2.resize(out, (w, h), interpolation=cv2.INTER_CUBIC), 0, 1)
    return out


def match_tone(fill: np.ndarray, orig: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """Shift the fill's colour so it agrees with the image on a thin ring around the hole.

    Engines that copy known pixels through get no shift; learned models whose
    output drifts in brightness or colour get pulled back to the surroundings.
    The shift is capped: a larger mismatch means the engine did not try to
    reproduce the ring at all, and then the ring says nothing about its tone.
    """
    x, y, w, h = masks.bounding_box(hole)  # the ring lies in the hole's box grown by its width
    box = slice(max(0, y - 3), y + h + 3), slice(max(0, x - 3), x + w + 3)
    band = masks.ring(hole[box], 3)
    if not band.any():
        return fill
    offset = (orig[box][band] - fill[box][band]).mean(axis=0)
    return fill + np.clip(offset, -MAX_TONE_SHIFT, MAX_TONE_SHIFT)


def hole_mask(req: FillRequest) -> np.ndarray:
    """The request's mask, joined by the image's fully transparent pixels when it asks for that."""
    if not req.fill_transparent:
        return req.mask
    clear = req.image[:, :, 3] == 0 if req.image.shape[2] == 4 else None
    if clear is None or not clear.any():
        raise MaskError("no_transparent", "fill_transparent is set but the image has no fully transparent pixels "
                                          "(alpha 0) to fill")
    return np.maximum(req.mask, clear.astype(np.float32))


def fill_region(engine: Engine, req: FillRequest, progress: Progress | None = None) -> FillResult:
    """The whole pipeline on decoded pixels; raises MaskError for selections it cannot fill."""
    progress = progress or Progress()
    image, height, width = req.image, req.image.shape[0], req.image.shape[1]
    mask = hole_mask(req)
    if not (mask > 0).any():
        raise MaskError("empty_mask", "the mask selects nothing: paint the area to fill (255 = fill)")
    if (mask > 0).all():
        raise MaskError("full_mask", "the mask selects the whole image: nothing is left to fill it from")

    # Grow and feather inside a window around the selection, not over the whole image.
    x, y, w, h = masks.bounding_box(mask > 0)
    m = max(0, req.grow) + 2 * req.feather + 2
    wx0, wy0, wx1, wy1 = max(0, x - m), max(0, y - m), min(width, x + w + m), min(height, y + h + m)
    alpha = np.zeros((height, width), np.float32)
    # Snap alpha to the output's levels, so "alpha 0" means untouched in both outputs alike.
    top = np.iinfo(image.dtype).max
    window = masks.feather(masks.grow(mask[wy0:wy1, wx0:wx1], req.grow), req.feather)
    alpha[wy0:wy1, wx0:wx1] = np.round(np.clip(window, 0, 1) * top) / top
    # Outside the window alpha is 0: the whole-image work below looks at the window only.
    window_hole = alpha[wy0:wy1, wx0:wx1] > 0
    if window_hole.shape == (height, width) and window_hole.all():
        raise MaskError("full_mask", "after growing, the selection covers the whole image: nothing is left to fill it from")
    if not window_hole.any():
        raise MaskError("empty_mask", "after shrinking, the selection is empty")
    progress(0.0, "selection ready")  # the first point where a cancel or the time budget can end the job

    params = engine.parse_params(req.params)
    channels = image.shape[2]
    if req.output is Output.LAYER:
        out = np.zeros((height, width, 4), image.dtype)
    else:
        out = image.copy()

    boxes = group_boxes(window_hole, req.context, (width, height), offset=(wx0, wy0))
    engine_s = 0.0
    choices: list[str] = []
    for i, box in enumerate(boxes):
        plan = plan_crop(box, engine, (width, height))
        x0, y0, x1, y1 = plan.box
        sub_hole = alpha[y0:y1, x0:x1] > 0
        orig = to_float(image[y0:y1, x0:x1, :3])
        options = InpaintOptions(seed=req.seed + i, params=params)
        t0 = time.perf_counter()
        # The sampling area of this crop, around this group's hole (the only one in its box).
        sub_source = None
        if engine.copies_patches:
            painted = None if req.source is None else req.source[y0:y1, x0:x1]
            sub_source = sampling_area(sub_hole, painted, req.source_preset, req.source_width)
        try:
            fill = run_engine(engine, orig, sub_hole, plan, options, progress.span(i / len(boxes), 1 / len(boxes)),
                              sub_source)
        except SourceTooSmall as e:
            raise MaskError("source_too_small", f"{e}: widen the sampling area, or raise 'context' to reach it") from None
        engine_s += time.perf_counter() - t0
        choices += options.choices
        if req.blend is Blend.POISSON:
            fill = _poisson(fill, orig, sub_hole)
        elif not engine.blends_itself:  # e.g. a plain paste asked of the engine stays a plain paste
            fill = match_tone(fill, orig, sub_hole)

        a = alpha[y0:y1, x0:x1]
        sel = a > 0
        if req.output is Output.LAYER:
            dst = out[y0:y1, x0:x1]
            dst[sel, :3] = quantize(fill[sel], image.dtype)
            dst[sel, 3] = quantize(a[sel], image.dtype)
        else:
            a3 = a[sel][:, None]
            blended = orig[sel] * (1 - a3) + fill[sel] * a3
            dst = out[y0:y1, x0:x1]
            dst[sel, :3] = quantize(blended, image.dtype)
            if channels == 4:  # what was filled is opaque
                src_alpha = image[y0:y1, x0:x1, 3][sel].astype(np.float32) / top
                dst[sel, 3] = quantize(src_alpha * (1 - a[sel]) + a[sel], image.dtype)
    progress(1.0, "done")
    bx, by, bw, bh = masks.bounding_box(window_hole)
    return FillResult(out, (bx + wx0, by + wy0, bw, bh), req.seed, engine.id, engine_s * 1000, choices=choices)


def _poisson(fill: np.ndarray, orig: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """Poisson blend limited to the hole's box plus a border, where the boundary condition lives."""
    x, y, w, h = masks.bounding_box(hole)
    H, W = hole.shape
    x0, y0, x1, y1 = max(0, x - 2), max(0, y - 2), min(W, x + w + 2), min(H, y + h + 2)
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None]  # noqa: E731
    blended = poisson_blend(t(fill[y0:y1, x0:x1]), t(orig[y0:y1, x0:x1]), t(hole[y0:y1, x0:x1, None].astype(np.float32)))
    out = fill.copy()
    out[y0:y1, x0:x1] = blended[0].permute(1, 2, 0).numpy()
    return out
