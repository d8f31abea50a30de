"""Crop, map-back and clip against hand-computed cases of the reference rules."""
from __future__ import annotations

import numpy as np
import pytest

from mixformerv2_cpu.boxes import validate_box
from mixformerv2_cpu.decode import decode_boxes, edge_peak, ltrb_to_cxcywh
from mixformerv2_cpu.errors import InvalidBoxError
from mixformerv2_cpu.geometry import clip_box, crop_side, map_back, sample_target, scale_box
from mixformerv2_cpu.preprocess import normalize_patch


def _ramp(h=20, w=30):
    """Image whose pixel (y, x) holds value 1 + x + 100*y in channel 0 (uint16 to keep it exact)."""
    y, x = np.mgrid[0:h, 0:w]
    img = np.zeros((h, w, 3), np.uint16)
    img[..., 0] = 1 + x + 100 * y
    return img


def test_crop_side_is_ceil_of_sqrt_area_times_factor():
    assert crop_side((0, 0, 4, 9), 2.0) == 12  # sqrt(36) * 2
    assert crop_side((0, 0, 41, 31), 4.55) == 163  # ceil(35.651 * 4.55 = 162.21)
    with pytest.raises(InvalidBoxError):
        crop_side((0, 0, 0, 0), 2.0)


def test_inside_crop_is_a_plain_slice():
    img = _ramp()
    # box centre (12, 8), side ceil(sqrt(4*4)*1.5)=6 -> x1 = round(12-3) = 9, y1 = round(8-3) = 5
    crop = sample_target(img, (10, 6, 4, 4), 1.5, 6)
    assert crop.side == 6 and crop.resize_factor == 1.0
    np.testing.assert_array_equal(crop.patch, img[5:11, 9:15])


def test_round_half_to_even_and_left_top_padding():
    img = _ramp()
    # centre (1.5, 1.5), side 4 -> x1 = round(-0.5) = 0 (half to even; not -1), y1 same
    crop = sample_target(img, (0.5, 0.5, 2, 2), 2.0, 4)
    np.testing.assert_array_equal(crop.patch, img[0:4, 0:4])
    # centre (0, 0), side 4 -> x1 = y1 = -2: two rows/cols of zero padding on the left/top
    crop = sample_target(img, (-1, -1, 2, 2), 2.0, 4)
    assert (crop.patch[:2] == 0).all() and (crop.patch[:, :2] == 0).all()
    np.testing.assert_array_equal(crop.patch[2:, 2:], img[0:2, 0:2])


def test_right_bottom_padding_quirk_drops_the_last_column_and_row():
    img = _ramp()
    # centre (28, 18), side 4 -> x1 = 26, x2 = 30 = W: pad x2 - W + 1 = 1, so column 29 is replaced by 0
    crop = sample_target(img, (27, 17, 2, 2), 2.0, 4)
    np.testing.assert_array_equal(crop.patch[:3, :3], img[16:19, 26:29])
    assert (crop.patch[:, 3] == 0).all() and (crop.patch[3, :] == 0).all()


def test_resize_factor_and_cap():
    img = np.full((40, 50, 3), 7, np.uint8)
    crop = sample_target(img, (10, 10, 10, 10), 2.0, 10)
    assert crop.side == 20 and crop.resize_factor == 0.5 and crop.patch.shape == (10, 10, 3)
    capped = sample_target(img, (0, 0, 50, 40), 4.0, 10, max_side=60)
    assert capped.side == 60 and capped.resize_factor == 10 / 60


def test_map_back_uses_previous_centre():
    # previous box centre (100, 50); crop side = search_size / resize_factor = 200 / 2 = 100
    box = map_back((0.5, 0.25, 0.2, 0.1), (90, 40, 20, 20), search_size=200, resize_factor=2.0)
    # cx = 50 + (100 - 50) = 100, cy = 25 + (50 - 50) = 25, w = 20, h = 10
    assert box == pytest.approx((90, 20, 20, 10))


def test_clip_box_keeps_ten_pixels_inside():
    assert clip_box((-30, -5, 20, 20), 100, 200) == (0, 0, 10, 15)
    assert clip_box((195, 95, 20, 20), 100, 200) == (190, 90, 10, 10)
    assert clip_box((10, 10, -5, 4), 100, 200) == (10, 10, 10, 10)


def test_clip_box_margin_lets_tiny_boxes_stay_tiny():
    # a 4x3 px box survives a 2 px margin; at the border 2 px of it stay inside
    assert clip_box((50, 40, 4, 3), 100, 200, margin=2) == (50, 40, 4, 3)
    assert clip_box((50, 40, 4, 3), 100, 200) == (50, 40, 10, 10)
    assert clip_box((199, 99, 4, 3), 100, 200, margin=2) == (198, 98, 2, 2)


@pytest.mark.parametrize("box, msg", [
    ((0, 0, 0, 5), "must be > 0"), ((0, 0, -1, 5), "must be > 0"), ((np.nan, 0, 5, 5), "finite"),
    ((300, 0, 5, 5), "wholly outside"), ((-10, -10, 5, 5), "wholly outside"), ((1, 2, 3), "4 numbers"),
])
def test_validate_box(box, msg):
    with pytest.raises(InvalidBoxError, match=msg):
        validate_box(box, 100, 200)


def test_normalize_patch_flips_to_rgb_and_normalises():
    patch = np.zeros((2, 2, 3), np.uint8)
    patch[..., 2] = 255  # red in BGR
    out = normalize_patch(patch, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    assert out.shape == (1, 3, 2, 2) and out.dtype == np.float32
    np.testing.assert_allclose(out[0, :, 0, 0], [(1 - 0.485) / 0.229, -0.456 / 0.224, -0.406 / 0.225], rtol=1e-6)


def test_normalize_patch_writes_into_a_batch_slot():
    rng = np.random.default_rng(0)
    patch = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    batch = np.zeros((2, 3, 5, 7), np.float32)
    returned = normalize_patch(patch, mean, std, out=batch[1])
    expected = (patch[..., ::-1].astype(np.float64) / 255 - mean) / std  # RGB, HWC
    np.testing.assert_allclose(batch[1], expected.transpose(2, 0, 1), atol=1e-6)
    assert np.shares_memory(returned, batch) and not batch[0].any()
    with pytest.raises(ValueError, match=r"C-contiguous float32 array of shape \(3, 5, 7\)"):
        normalize_patch(patch, mean, std, out=np.zeros((3, 5, 14), np.float32)[:, :, ::2])


def test_normalize_patch_reuses_its_planes_across_sizes_and_threads():
    """The split planes are reused per thread and size: alternating template- and search-sized
    patches, and two threads at once, each still get exactly their own patch normalised."""
    from concurrent.futures import ThreadPoolExecutor
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    rng = np.random.default_rng(1)
    patches = [rng.integers(0, 256, (s, s, 3), dtype=np.uint8) for s in (6, 12, 6, 12, 6)]

    def expected(p):
        return ((p[..., ::-1].astype(np.float64) / 255 - mean) / std).transpose(2, 0, 1)[None]

    for p in patches:
        np.testing.assert_allclose(normalize_patch(p, mean, std), expected(p), atol=1e-6)

    def many(p):
        return all(np.allclose(normalize_patch(p, mean, std), expected(p), atol=1e-6) for _ in range(200))

    with ThreadPoolExecutor(2) as pool:
        assert all(pool.map(many, patches))


def test_decode_distribution_expectation():
    bins = 4
    logits = np.full((1, 4, bins), -1e9)
    logits[0, 0, 1] = logits[0, 1, 0] = logits[0, 2, 3] = logits[0, 3, 2] = 0  # l=1/4 t=0 r=3/4 b=2/4
    box, probs = decode_boxes(logits)
    np.testing.assert_allclose(box[0], [0.5, 0.25, 0.5, 0.5])
    np.testing.assert_allclose(probs.sum(-1), 1)


def test_ltrb_to_cxcywh_matches_the_element_wise_formula_to_the_bit():
    ltrb = np.random.default_rng(3).uniform(-0.2, 1.2, (64, 4))
    l, t, r, b = ltrb.T
    expected = np.stack([(l + r) / 2, (t + b) / 2, r - l, b - t], axis=-1)
    assert np.array_equal(ltrb_to_cxcywh(ltrb), expected)
    assert np.array_equal(ltrb_to_cxcywh(ltrb[None, :2]), expected[None, :2])


def test_edge_peak_is_the_mean_of_the_four_largest_bins():
    probs = np.array([[[1.0, 0, 0, 0], [0.5, 0.5, 0, 0], [0.25] * 4, [0.1, 0.2, 0.7, 0]]])  # (1, 4, 4)
    np.testing.assert_allclose(edge_peak(probs), [(1.0 + 0.5 + 0.25 + 0.7) / 4])
    assert edge_peak(probs[0]).shape == ()


def test_scale_box_keeps_the_centre():
    assert scale_box((10.0, 20.0, 40.0, 10.0), 1.25) == (5.0, 18.75, 50.0, 12.5)
    assert scale_box((10, 20, 40, 10), 1.0) == (10.0, 20.0, 40.0, 10.0)
