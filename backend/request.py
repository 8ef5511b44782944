"""Everything an inpaint request carries, as plain dataclasses and enums."""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

import numpy as np


class Output(str, enum.Enum):
    LAYER = "layer"  # RGBA of the image's size: filled pixels, alpha from the mask, transparent elsewhere
    IMAGE = "image"  # the whole composite


class Blend(str, enum.Enum):
    ALPHA = "alpha"  # alpha paste with a colour/brightness match at the border
    POISSON = "poisson"  # gradient-domain paste: seamless even when the fill's tone is off


class SourcePreset(str, enum.Enum):
    """Shortcuts for where an exemplar engine may copy from: known pixels within `source_width` of the hole."""

    AROUND = "around"  # on every side
    SIDES = "sides"  # only left and right of it
    ABOVE_BELOW = "above_below"  # only above and below it


@dataclass
class FillRequest:
    image: np.ndarray  # H x W x 3|4, uint8 or uint16, RGB(A)
    mask: np.ndarray  # H x W float32 in [0, 1], 1 = fill; soft values are kept
    model: str | None = None  # None: the registry's default
    output: Output = Output.LAYER
    grow: int = 0  # px the selection is dilated by
    feather: int = 0  # px of soft edge added to the selection
    context: int | None = None  # px of surrounding image the engine sees; None = auto
    seed: int = 0
    blend: Blend = Blend.ALPHA
    params: dict[str, Any] = field(default_factory=dict)  # engine-specific options
    source: np.ndarray | None = None  # H x W float32, >= 0.5 = patches may be copied from here; None = anywhere
    source_preset: SourcePreset | None = None  # intersected with `source` when both are given
    source_width: int = 50  # px, for source_preset
    fill_transparent: bool = False  # the image's pixels of alpha 0 join the hole


@dataclass
class FillResult:
    pixels: np.ndarray  # the output: RGBA layer or the composite, same dtype as the input
    region: tuple[int, int, int, int]  # x, y, w, h of the changed pixels
    seed: int
    model: str
    engine_ms: float  # time inside the engine alone
    elapsed_ms: float = 0.0  # whole request, decode to encode (filled in by the caller)
    choices: list[str] = field(default_factory=list)  # engine per connected region, when the engine chose
