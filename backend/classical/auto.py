"""The default engine: per selected region, the classical fill that suits its shape.

A thin region (a scratch, a wire, a dust spot: every pixel within a few px of
the region's border) holds no texture worth rebuilding, and patches larger
than the region only smear its neighbours into it; the smooth fill is right
there and instant. Anything thicker is rebuilt from patches. Which engine
filled each region is reported back (InpaintOptions.choices), so a user who
disagrees can pick that engine by hand.
"""
from __future__ import annotations

import cv2
import numpy as np
import torch

from backend.classical.patchmatch import PatchMatchEngine
from backend.engines.base import Engine, InpaintOptions, Param, Progress
from backend.engines.poisson import harmonic_fill

SMOOTH, PATCHES = "diffusion", "patchmatch"


def region_choices(hole: np.ndarray, thin: float) -> tuple[np.ndarray, list[str]]:
    """Connected regions of an (H, W) bool hole (8-connected) and each one's engine, in label order.

    A region is thin when its largest distance to the border (the distance
    transform's peak, about half its width) is at most `thin` px.
    Returns the label image (0 = known) and one engine id per region.
    """
    hole8 = hole.astype(np.uint8)
    count, labels = cv2.connectedComponents(hole8, connectivity=8)
    depth = cv2.distanceTransform(hole8, cv2.DIST_L2, 5)
    peak = np.zeros(count, np.float32)
    np.maximum.at(peak, labels.ravel(), depth.ravel())
    return labels, [SMOOTH if p <= thin else PATCHES for p in peak[1:]]


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
    }

    def __init__(self, device: torch.device | str = "cpu"):
        super().__init__(device)
        self.patches = PatchMatchEngine(device)

    def inpaint(self, image: torch.Tensor, hole: torch.Tensor, options: InpaintOptions, progress: Progress) -> torch.Tensor:
        labels, choices = region_choices(hole[0, 0].cpu().numpy() > 0.5, options.params.get("thin", 3.0))
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
            out = torch.where(patch_hole > 0.5, self.patches.inpaint(out, patch_hole, options, progress), out)
        progress(1.0, "done")
        return out
