"""Where to read pixels: from a selection mask to the crops sent to the backend, and back.

A selection can hold several separate areas far apart (dust spots on a 24 MP photo). Sending
one crop per group of nearby areas keeps uploads small; the margins mirror the backend's own
(grow, feather, context), so the backend sees the same surroundings it would see in the whole image.
Boxes are (x0, y0, x1, y1) with exclusive ends, in image coordinates unless said otherwise.
"""
from __future__ import annotations

Box = tuple[int, int, int, int]

TILE = 16  # area detection works on tiles: exact enough for margins, fast in pure Python
MIN_SIDE = 256  # engines want room around small holes; the backend pads smaller crops itself


def auto_context(w: int, h: int) -> int:
    """The backend's 'auto' context for a w x h region (backend/engines/region.py)."""
    return max(32, int(round(0.5 * max(w, h))))


def area_boxes(mask: bytes, width: int, height: int, tile: int = TILE) -> list[Box]:
    """Boxes of the separate selected areas of a width x height 1-byte mask, to tile precision.

    Areas whose tiles touch (8-connected) count as one.
    """
    cols, rows = -(-width // tile), -(-height // tile)
    occupied = bytearray(cols * rows)
    empty_row = bytes(width)
    for y in range(height):
        row = mask[y * width:(y + 1) * width]
        if row == empty_row:
            continue
        base = (y // tile) * cols
        for tx in range(cols):
            if not occupied[base + tx] and row[tx * tile:(tx + 1) * tile].strip(b"\0"):
                occupied[base + tx] = 1
    boxes = []
    for start in range(len(occupied)):
        if occupied[start] != 1:
            continue
        occupied[start] = 2
        stack, x0, y0, x1, y1 = [start], cols, rows, -1, -1
        while stack:
            i = stack.pop()
            tx, ty = i % cols, i // cols
            x0, y0, x1, y1 = min(x0, tx), min(y0, ty), max(x1, tx), max(y1, ty)
            for ny in (ty - 1, ty, ty + 1):
                for nx in (tx - 1, tx, tx + 1):
                    if 0 <= nx < cols and 0 <= ny < rows and occupied[ny * cols + nx] == 1:
                        occupied[ny * cols + nx] = 2
                        stack.append(ny * cols + nx)
        boxes.append((x0 * tile, y0 * tile, min(width, (x1 + 1) * tile), min(height, (y1 + 1) * tile)))
    return boxes


def offset(box: Box, dx: int, dy: int) -> Box:
    return box[0] + dx, box[1] + dy, box[2] + dx, box[3] + dy


def _overlaps(a: Box, b: Box) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def union(boxes: list[Box]) -> Box:
    return min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes)


def _widen(lo: int, hi: int, limit: int, side: int) -> tuple[int, int]:
    """Grow [lo, hi) to at least `side` within [0, limit), evenly where there is room."""
    need = side - (hi - lo)
    if need <= 0:
        return lo, hi
    lo = max(0, lo - need // 2)
    hi = min(limit, lo + side)
    return max(0, hi - side), hi


def crop_boxes(areas: list[Box], width: int, height: int, grow: int, feather: int, context: int,
               min_side: int = MIN_SIDE) -> list[Box]:
    """Crops to send: each area plus what the backend reads around it, merged while they overlap.

    `context` < 0 means the backend's auto context. Merged crops never overlap, so their
    results can be pasted side by side without one overwriting another.
    """
    crops = []
    for x0, y0, x1, y1 in areas:
        reach = max(0, grow) + 2 * feather + 2
        m = reach + (auto_context(x1 - x0 + 2 * reach, y1 - y0 + 2 * reach) if context < 0 else context)
        cx0, cx1 = _widen(max(0, x0 - m), min(width, x1 + m), width, min_side)
        cy0, cy1 = _widen(max(0, y0 - m), min(height, y1 + m), height, min_side)
        crops.append((cx0, cy0, cx1, cy1))
    merged = True
    while merged:
        merged = False
        out: list[Box] = []
        for c in crops:
            for i, o in enumerate(out):
                if _overlaps(c, o):
                    out[i] = union([c, o])
                    merged = True
                    break
            else:
                out.append(c)
        crops = out
    return sorted(crops, key=lambda b: (b[1], b[0]))


def cut(pixels: bytes, width: int, channels: int, box: Box) -> bytes:
    """The rows of `box` (in the pixels' own coordinates) from tightly packed pixels."""
    x0, y0, x1, y1 = box
    stride, a, b = width * channels, x0 * channels, x1 * channels
    return b"".join(pixels[y * stride + a:y * stride + b] for y in range(y0, y1))


def parse_region(header: str | None, width: int, height: int) -> Box | None:
    """X-Region 'x,y,w,h' (changed pixels, in the crop) -> a box inside the crop, or None if nothing changed."""
    if not header:
        return 0, 0, width, height
    try:
        x, y, w, h = (int(v) for v in header.split(","))
    except ValueError:
        return 0, 0, width, height
    box = max(0, x), max(0, y), min(width, x + w), min(height, y + h)
    return box if box[0] < box[2] and box[1] < box[3] else None
