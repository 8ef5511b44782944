"""The hole-mask generator: ratio ranges are honoured, seeds fix the mask, bad requests fail."""
import numpy as np
import pytest

from backend.training.masks import ALL_BUCKETS, BUCKETS, bucket_mask, generate_mask, hole_ratio


@pytest.mark.parametrize("bucket", list(BUCKETS) + ["boxes 5-20%", "centre 1/4", "pattern 25%", "pixels 80%", "half"])
def test_bucket_masks_land_in_their_ratio_range(bucket):
    kind, (lo, hi) = ALL_BUCKETS[bucket]
    for seed in range(40):
        mask = bucket_mask(bucket, seed, 128, 160)
        assert mask.shape == (128, 160) and mask.dtype == np.uint8
        assert set(np.unique(mask)) <= {0, 255}
        assert lo <= hole_ratio(mask) <= hi, (bucket, seed, hole_ratio(mask))


@pytest.mark.parametrize("kind", ["strokes", "boxes", "blobs", "pattern", "pixels"])
@pytest.mark.parametrize("ratio", [(0.02, 0.05), (0.10, 0.20), (0.30, 0.31), (0.45, 0.60)])
def test_every_kind_hits_arbitrary_ranges(kind, ratio):
    rng = np.random.default_rng(123)
    for _ in range(10):
        mask = generate_mask(rng, 96, 128, kind, ratio)
        assert ratio[0] <= hole_ratio(mask) <= ratio[1], (kind, ratio, hole_ratio(mask))


def test_same_seed_same_mask_and_different_seeds_differ():
    a = bucket_mask("strokes 20-30%", 5, 64, 64)
    b = bucket_mask("strokes 20-30%", 5, 64, 64)
    c = bucket_mask("strokes 20-30%", 6, 64, 64)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_coverage_varies_across_the_range():
    # Masks should spread over the range, not all sit at its lower edge.
    ratios = [hole_ratio(bucket_mask("strokes 10-20%", s, 128, 128)) for s in range(30)]
    assert max(ratios) - min(ratios) > 0.04


def test_blobs_are_one_compact_object():
    import cv2

    for seed in range(10):
        mask = bucket_mask("blobs 5-15%", seed, 128, 128)
        count, _ = cv2.connectedComponents((mask > 0).astype(np.uint8))
        assert count - 1 <= 3  # a body, at most two lobes that may just touch it
        ys, xs = np.nonzero(mask)
        box = (ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1)
        assert len(ys) / box > 0.3  # filled silhouette, not scattered specks


@pytest.mark.parametrize("ratio", [(0.5, 0.4), (-0.1, 0.2), (0.2, 1.5)])
def test_bad_ranges_are_refused(ratio):
    with pytest.raises(ValueError):
        generate_mask(np.random.default_rng(0), 32, 32, "strokes", ratio)


def test_unknown_kind_is_refused():
    with pytest.raises(ValueError):
        generate_mask(np.random.default_rng(0), 32, 32, "spirals", (0.1, 0.2))


def test_centre_mask_is_the_centred_square_of_the_ratio():
    for size, side in ((24, 8), (512, 171), (9, 3)):
        mask = bucket_mask("centre 1/9", 0, size, size)
        ys, xs = np.nonzero(mask)
        assert ys.max() - ys.min() + 1 == side == xs.max() - xs.min() + 1 and np.count_nonzero(mask) == side * side
        assert abs((ys.min() + ys.max()) / 2 - (size - 1) / 2) <= 0.5  # centred
    with pytest.raises(ValueError, match="unknown bucket"):
        bucket_mask("circles", 0)


@pytest.mark.parametrize("kind", ["strokes", "boxes"])
def test_a_target_just_under_the_upper_bound_still_ends(kind):
    # Seed 1074's first draw aims at 1638.2 of 4096 pixels under a 0.4 bound (1638.4): rounding the
    # target up used to ask for 1639 pixels while refusing more than 1638, and the loop never ended.
    assert np.random.default_rng(1074).uniform(0.05, 0.4) * 4096 > 1638
    mask = generate_mask(np.random.default_rng(1074), 64, 64, kind, (0.05, 0.4))
    assert 0.05 <= hole_ratio(mask) <= 0.4


def test_the_masks_of_yeh_et_al():
    """Central block, random pattern, 80 % random pixels, and a random half (§4.2), at the paper's 64x64."""
    block = bucket_mask("centre 1/4", 0, 64, 64)
    assert np.count_nonzero(block[16:48, 16:48]) == 32 * 32 == np.count_nonzero(block)
    halves = {bucket_mask("half", seed, 64, 64).tobytes() for seed in range(40)}
    expected = set()
    for rows, cols in ((slice(None), slice(0, 32)), (slice(None), slice(32, 64)), (slice(0, 32), slice(None)), (slice(32, 64), slice(None))):
        m = np.zeros((64, 64), np.uint8)
        m[rows, cols] = 255
        expected.add(m.tobytes())
    assert halves == expected  # left, right, top and bottom all come up, and nothing else
    pixels = bucket_mask("pixels 80%", 0, 64, 64) > 0
    known = ~pixels
    # Scattered, not clustered: known pixels are spread evenly over the image's quarters.
    assert all(0.15 < known[r, c].mean() < 0.25 for r in (slice(0, 32), slice(32, 64)) for c in (slice(0, 32), slice(32, 64)))
    import cv2

    pattern = bucket_mask("pattern 25%", 0, 128, 128)
    n, _, stats, _ = cv2.connectedComponentsWithStats(pattern, connectivity=4)
    # Blotches, not single pixels: a few regions, the largest holding most of the hole.
    assert 2 <= n - 1 <= 40 and stats[1:, cv2.CC_STAT_AREA].max() > 0.2 * np.count_nonzero(pattern)


def test_the_imagenet_hole_of_infer_match_translate():
    """A centred 224x224 square in a 512x512 image (the paper's fixed-hole test)."""
    mask = bucket_mask("centre 224/512", 0, 512, 512)
    assert np.count_nonzero(mask[144:368, 144:368]) == 224 * 224 == np.count_nonzero(mask)
