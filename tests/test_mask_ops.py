"""Grow and feather: exact where they were, and a cost that does not grow with the radius."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from scipy import ndimage

from backend.engines import masks


def euclidean_disk(radius: int) -> np.ndarray:
    yy, xx = np.mgrid[-radius:radius + 1, -radius:radius + 1]
    return xx * xx + yy * yy <= radius * radius


def selection(h: int = 160, w: int = 200) -> np.ndarray:
    """Two boxes, one at the border, and a soft (half-selected) blob: a few distinct levels."""
    m = np.zeros((h, w), np.float32)
    m[40:70, 50:90] = 1
    m[0:20, 150:200] = 1
    cv2.circle(m, (110, 120), 15, 0.5, -1)
    return m


@pytest.mark.parametrize("radius", [20, 45])
def test_a_wide_grow_is_the_exact_grey_dilation_by_a_disk(radius):
    m = selection()
    want = ndimage.grey_dilation(m, footprint=euclidean_disk(radius), mode="constant", cval=0)
    assert np.array_equal(masks.grow(m, radius), want)


@pytest.mark.parametrize("radius", [17, 30])
def test_a_wide_shrink_is_the_exact_grey_erosion_with_the_outside_unselected(radius):
    m = selection()
    m[60:150, 20:190] = np.maximum(m[60:150, 20:190], 0.75)  # a large soft region that survives the shrink
    want = ndimage.grey_erosion(m, footprint=euclidean_disk(radius), mode="constant", cval=0)
    got = masks.grow(m, -radius)
    assert np.array_equal(got, want) and got.any()


def test_a_wide_grow_of_a_smooth_ramp_stays_smooth():
    # 200 distinct levels: more than the grow keeps exactly, so it interpolates between its levels.
    m = np.zeros((64, 400), np.float32)
    m[:, 100:300] = np.linspace(1, 0.005, 200, dtype=np.float32)
    want = ndimage.grey_dilation(m, footprint=euclidean_disk(40), mode="constant", cval=0)
    got = masks.grow(m, 40)
    assert np.abs(got - want).max() < 0.01
    assert np.array_equal(got > 0, want > 0)


def test_a_wide_feather_matches_the_full_size_gaussian():
    m = np.zeros((500, 600), np.float32)
    m[200:300, 250:350] = 1
    exact = np.maximum(m, cv2.GaussianBlur(m, (0, 0), 40, borderType=cv2.BORDER_REPLICATE))
    got = masks.feather(m, 80)
    assert np.abs(got - exact).max() < 0.01
    assert (got[m > 0] == 1).all()


def test_grow_and_feather_of_1000_px_use_no_wide_kernel(monkeypatch):
    """The reproducer: grow=1000 and feather=1000 around a 10x10 selection in 2000x2000 took ~12 minutes
    (a 2001x2001 disk, then a 3001 px Gaussian). No kernel over 33 px, no blur over sigma 16, whatever the radius."""
    seen = []

    def spy(real, what):
        def call(src, *args, **kwargs):
            kernel = args[0] if args else kwargs.get("kernel", kwargs.get("ksize"))
            sigma = kwargs.get("sigmaX", args[1] if len(args) > 1 else 0)
            seen.append(what)
            assert kernel is None or max(np.shape(kernel) or (0,)) <= 33, (what, np.shape(kernel))
            assert sigma <= 16, (what, sigma)
            return real(src, *args, **kwargs)
        return call

    for name in ("dilate", "erode", "GaussianBlur"):
        monkeypatch.setattr(cv2, name, spy(getattr(cv2, name), name))
    m = np.zeros((2000, 2000), np.float32)
    m[995:1005, 995:1005] = 1
    grown = masks.grow(m, 1000)
    out = masks.feather(grown, 1000)
    assert grown[1000, 1999] == 1 and grown[0, 0] == 0  # a disk of radius 1000 around the selection
    assert (out >= grown).all() and out[0, 0] > 0  # the soft rim reaches the corner
    assert masks.grow(out, -1000).max() < 1  # nothing fully selected survives a 1000 px shrink
    assert "GaussianBlur" in seen
