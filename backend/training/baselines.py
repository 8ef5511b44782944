"""External inpainters behind the engine interface, so `eval` scores them exactly like ours.

Each is optional: it is offered only when its package is installed.
"""
from __future__ import annotations

import contextlib
import importlib.util
import os
import sys

import cv2
import numpy as np
import torch

from backend.engines.base import Engine, InpaintOptions, Progress


def _to_uint8(image: torch.Tensor) -> np.ndarray:
    return (image[0].permute(1, 2, 0).cpu().numpy() * 255 + 0.5).clip(0, 255).astype(np.uint8)


def _from_uint8(arr: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(arr.astype(np.float32) / 255).permute(2, 0, 1)[None].to(like.device)


class _External(Engine):
    kind = "classical"
    package = ""

    @classmethod
    def installed(cls) -> bool:
        return importlib.util.find_spec(cls.package) is not None

    def run(self, rgb: np.ndarray, mask: np.ndarray, seed: int) -> np.ndarray:
        raise NotImplementedError

    def inpaint(self, image: torch.Tensor, hole: torch.Tensor, options: InpaintOptions, progress: Progress) -> torch.Tensor:
        progress(0.0, self.id)
        mask = (hole[0, 0].cpu().numpy() > 0.5).astype(np.uint8) * 255
        return _from_uint8(self.run(_to_uint8(image), mask, options.seed), image)


class OpenCVTelea(_External):
    id = method = "telea"
    package = "cv2"
    description = "OpenCV fast marching (Telea 2004), radius 3."

    def run(self, rgb, mask, seed):
        return cv2.inpaint(rgb, mask, 3, cv2.INPAINT_TELEA)


class OpenCVNavierStokes(_External):
    id = method = "ns"
    package = "cv2"
    description = "OpenCV Navier-Stokes (Bertalmio 2001), radius 3."

    def run(self, rgb, mask, seed):
        return cv2.inpaint(rgb, mask, 3, cv2.INPAINT_NS)


class Biharmonic(_External):
    id = method = "biharmonic"
    package = "skimage"
    description = "scikit-image inpaint_biharmonic (smooth biharmonic fill, Damelin & Hoang 2018)."

    def run(self, rgb, mask, seed):
        from skimage.restoration import inpaint_biharmonic

        out = inpaint_biharmonic(rgb.astype(np.float64) / 255, mask > 0, channel_axis=-1)
        return (out * 255 + 0.5).clip(0, 255).astype(np.uint8)


class PyPatchMatch(_External):
    id = method = "pypatchmatch"
    package = "patchmatch"
    description = "PyPatchMatch 2.x (C++ PatchMatch inpainting), patch size 3 (its default)."

    def run(self, rgb, mask, seed):
        from patchmatch import patch_match

        patch_match.set_random_seed(seed)
        return patch_match.inpaint(rgb, mask, patch_size=3)


class GmicMatchPatch(_External):
    id = method = "gmic"
    package = "gmic"
    description = "G'MIC inpaint_matchpatch with the G'MIC GUI's defaults (auto scales, patch 9, 10 iterations, blend 5)."

    def run(self, rgb, mask, seed):
        import gmic

        images = gmic.ImageList([gmic.Image.from_yxc(rgb.astype(np.float32)),
                                 gmic.Image.from_yxc((mask > 0).astype(np.float32)[:, :, None] * 255.0)])
        with _quiet_native_output():  # G'MIC prints its progress straight to the file descriptors
            out = gmic.Gmic().run(f"srand {seed} inpaint_matchpatch[0] [1],0,9,10,5,1 rm[1]", images)
        xyzc = out[0].to_numpy()  # (W, H, 1, C)
        return np.ascontiguousarray(xyzc[:, :, 0, :3].transpose(1, 0, 2)).clip(0, 255).round().astype(np.uint8)


@contextlib.contextmanager
def _quiet_native_output():
    sys.stdout.flush()
    sys.stderr.flush()
    saved, devnull = (os.dup(1), os.dup(2)), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, devnull):
            os.close(fd)


BASELINES: dict[str, type[_External]] = {c.id: c for c in (OpenCVTelea, OpenCVNavierStokes, Biharmonic, PyPatchMatch, GmicMatchPatch)}
