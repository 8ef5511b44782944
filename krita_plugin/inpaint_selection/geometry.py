"""Which part of the canvas a fill reads: the selection's box plus what the backend will look at.

The backend only ever sees the crop sent to it, so the crop must already hold
everything it needs (the grown and feathered selection, then the context around
it), and nothing more: a small selection on an 8000 px canvas reads a small crop.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Rect:
    x: int
    y: int
    w: int
    h: int

    @property
    def right(self) -> int:
        return self.x + self.w

    @property
    def bottom(self) -> int:
        return self.y + self.h

    @property
    def empty(self) -> bool:
        return self.w <= 0 or self.h <= 0

    @property
    def area(self) -> int:
        return 0 if self.empty else self.w * self.h

    def intersect(self, other: Rect) -> Rect:
        x0, y0 = max(self.x, other.x), max(self.y, other.y)
        x1, y1 = min(self.right, other.right), min(self.bottom, other.bottom)
        return Rect(x0, y0, max(0, x1 - x0), max(0, y1 - y0))

    def padded(self, px: int) -> Rect:
        return Rect(self.x - px, self.y - px, self.w + 2 * px, self.h + 2 * px)


def auto_context(w: int, h: int) -> int:
    """The backend's rule for context="auto" (backend/engines/region.py), applied to the whole selection."""
    return max(32, int(round(0.5 * max(w, h))))


def edge_margin(grow: int, feather: int) -> int:
    """How far the backend's grown and feathered mask can reach past the selection (same bound as region.py)."""
    return max(0, grow) + 2 * feather + 2


def crop_for_selection(selection: Rect, canvas: Rect, grow: int = 0, feather: int = 0,
                       context: int | None = None, minimum: int = 1) -> Rect:
    """The canvas area to send for a selection whose bounding box is `selection`.

    context None means "auto". `minimum` is the engine's smallest input side: the crop
    is widened to it with real pixels where the canvas has them, as the backend would.
    """
    sel = selection.intersect(canvas)
    if sel.empty:
        return Rect(sel.x, sel.y, 0, 0)
    margin = edge_margin(grow, feather)
    reach = sel.padded(margin).intersect(canvas)
    ctx = auto_context(reach.w, reach.h) if context is None else max(0, context)
    crop = reach.padded(ctx).intersect(canvas)
    return _widen(crop, canvas, minimum)


def _widen(crop: Rect, canvas: Rect, minimum: int) -> Rect:
    def axis(lo: int, size: int, lo_limit: int, size_limit: int) -> tuple[int, int]:
        need = minimum - size
        if need <= 0:
            return lo, size
        size = min(minimum, size_limit)
        lo = min(max(lo_limit, lo - need // 2), lo_limit + size_limit - size)
        return lo, size

    x, w = axis(crop.x, crop.w, canvas.x, canvas.w)
    y, h = axis(crop.y, crop.h, canvas.y, canvas.h)
    return Rect(x, y, w, h)
