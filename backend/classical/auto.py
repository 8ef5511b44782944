"""The default engine: per selected region, the classical fill that suits its shape.

A thin region (a scratch, a wire, a dust spot: every pixel within a few px of
the region's border) holds no texture worth rebuilding, and patches larger
than the region only smear its neighbours into it; the smooth fill is right
there and instant. Anything thicker is rebuilt from patches: 5x5 ones for a
brush stroke (every pixel within STROKE_DEPTH working pixels of known ones,
where the nearby detail matters most), 7x7 for a wide area, whose inside
needs the structure a larger patch carries. Which engine filled each region
is reported back (InpaintOptions.choices), so a user who disagrees can pick
that engine by hand.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import cv2
import numpy as np
import torch

from backend.classical.patchmatch import PatchMatchEngine, level_count, working_scale
from backend.engines.base import Engine, InpaintOptions, OptionError, Param, Progress
from backend.engines.poisson import harmonic_fill
from backend.engines.sampling import SourceTooSmall

SMOOTH, PATCHES = "diffusion", "patchmatch"
# Patch sizes by region, and the depth (distance transform's peak, in pixels of the working image) up to
# which a region counts as a stroke. On the test split at 512 px (working scale 2), 5x5 patches beat 7x7 on
# every stroke bucket (+0.03 to +0.11 dB, in half the time) and lose 0.64 dB on blobs; the strokes' regions
# peak at 3-47 px there, the blobs' at 54-94.
STROKE_PATCH, AREA_PATCH = 5, 7
STROKE_DEPTH = 24.0


def region_depths(hole: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The 8-connected regions of an (H, W) bool hole (label image, 0 = known) and each region's largest
    distance to its border, in px (index 0: the known pixels)."""
    hole8 = hole.astype(np.uint8)
    count, labels = cv2.connectedComponents(hole8, connectivity=8)
    depth = cv2.distanceTransform(hole8, cv2.DIST_L2, 5)
    peak = np.zeros(count, np.float32)
    np.maximum.at(peak, labels.ravel(), depth.ravel())
    return labels, peak


def region_choices(hole: np.ndarray, thin: float) -> tuple[np.ndarray, list[str]]:
    """Connected regions of an (H, W) bool hole (8-connected) and each one's engine, in label order.

    A region is thin when its largest distance to the border (the distance
    transform's peak, about half its width) is at most `thin` px.
    Returns the label image (0 = known) and one engine id per region.
    """
    labels, peak = region_depths(hole)
    return labels, _choices(peak, thin)


def _choices(peak: np.ndarray, thin: float) -> list[str]:
    return [SMOOTH if p <= thin else PATCHES for p in peak[1:]]


class AutoEngine(Engine):
    id = "auto"
    method = "auto"
    kind = "classical"
    copies_patches = True  # its patchmatch regions honour a sampling area
    description = (
        "Chooses per selected region: thin ones (scratches, wires, dust) get the smooth fill, "
        "larger ones are rebuilt from patches of the surrounding image. No model needed."
    )
    params = {
        "thin": Param(float, 3.0, "a region whose every pixel is within this many px of its border (about twice "
                      "this wide) gets the smooth fill; 0 sends everything to patchmatch", 0.0, 256.0),
        **PatchMatchEngine.params,
        "patch_size": Param(int, 0, "patch width in pixels (odd); 0 chooses per region: 5 for brush strokes, "
                            "7 for wider areas", 0, 21),
    }

    def __init__(self, device: torch.device | str = "cpu"):
        super().__init__(device)
        self.patches = PatchMatchEngine(device)

    def parse_params(self, given: dict[str, Any] | None) -> dict[str, Any]:
        params = super().parse_params(given)
        if params["patch_size"] and params["patch_size"] % 2 == 0:
            raise OptionError(f"option 'patch_size' must be odd or 0, got {params['patch_size']}")
        return params

    def inpaint(self, image: torch.Tensor, hole: torch.Tensor, options: InpaintOptions, progress: Progress) -> torch.Tensor:
        labels, peak = region_depths(hole[0, 0].cpu().numpy() > 0.5)
        choices = _choices(peak, options.params.get("thin", 3.0))
        options.choices.extend(choices)
        smooth_ids = [i + 1 for i, c in enumerate(choices) if c == SMOOTH]
        smooth = torch.from_numpy(np.isin(labels, smooth_ids)).to(hole.device)[None, None]
        out = image
        if smooth_ids:
            # Every hole pixel is unknown to the smooth fill, so a thick region's
            # old content never leaks into a thin one beside it.
            progress(0.0, "smooth fill")
            out = torch.where(smooth, harmonic_fill(image, 1.0 - hole).clamp(0, 1), image)
        if len(smooth_ids) < len(choices):
            # The thin regions, filled now, are no longer hole for the patches.
            patch_hole = hole * (~smooth).to(hole.dtype)
            out = self._patches(out, patch_hole, labels, peak, options, progress)
        progress(1.0, "done")
        return out

    def _patches(self, image: torch.Tensor, hole: torch.Tensor, labels: np.ndarray, peak: np.ndarray,
                 options: InpaintOptions, progress: Progress) -> torch.Tensor:
        """The thick regions rebuilt from patches: strokes with small ones first, then wide areas (which may then
        copy from the filled strokes), each patch size in one call."""
        size = options.params.get("patch_size", 0)
        if size:
            groups = [(size, hole)]
        else:
            # The depth that counts is the working image's: patches are compared there.
            factor = 1 << working_scale(tuple(hole.shape[-2:]), level_count(hole, AREA_PATCH, 100, at_most=2), AREA_PATCH)
            strokes = [i for i in range(1, len(peak)) if peak[i] > 0 and peak[i] / factor <= STROKE_DEPTH]
            stroke = torch.from_numpy(np.isin(labels, strokes)).to(hole.device)[None, None] & (hole > 0.5)
            area = (hole > 0.5) & ~stroke
            groups = [(p, m.to(hole.dtype)) for p, m in ((STROKE_PATCH, stroke), (AREA_PATCH, area)) if bool(m.any())]
        out, rest = image, hole
        for n, (patch_size, part) in enumerate(groups):
            source = options.source
            rest = rest * (1 - part)  # hole pixels still to fill after this part: not a source
            if bool(rest.any()):
                source = (1 - rest) if source is None else source * (1 - rest)
            sub = dataclasses.replace(options, params={**options.params, "patch_size": patch_size}, source=source)
            try:
                filled = self.patches.inpaint(out, part, sub, progress.span(n / len(groups), 1 / len(groups)))
            except SourceTooSmall:
                if options.source is not None or len(groups) == 1:
                    raise  # the user's sampling area is too small: theirs to widen
                # Without the wide areas too little is left to copy from: everything in one go, as one area.
                sub = dataclasses.replace(options, params={**options.params, "patch_size": AREA_PATCH})
                return torch.where(hole > 0.5, self.patches.inpaint(image, hole, sub, progress), image)
            out = torch.where(part > 0.5, filled, out)
        return out
