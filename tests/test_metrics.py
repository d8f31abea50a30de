"""Metrics: hand-computed cases, the got10k toolkit, and a loop transliteration of the LaSOT toolkit."""
from __future__ import annotations

import numpy as np
import pytest

from mixformerv2_benchmarks import metrics as M


def test_iou_and_center_error_hand_cases():
    a = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 4, 4]], float)
    b = np.array([[5, 0, 10, 10], [0, 0, 10, 10], [20, 20, 5, 5], [1, 1, 2, 2]], float)
    np.testing.assert_allclose(M.box_iou(a, b), [50 / 150, 1.0, 0.0, 4 / 16])
    # centres x + (w - 1) / 2: (4.5, 4.5) vs (22, 22) for row 3
    np.testing.assert_allclose(M.center_error(a, b), [5.0, 0.0, np.hypot(17.5, 17.5), 0.0])
    # normalised by the ground-truth (second argument) size
    np.testing.assert_allclose(M.center_error(a[:1], b[:1], normalized=True), [0.5])
    # NaN rows give NaN IoU; bound clips both boxes to the image first (GOT-10k)
    assert np.isnan(M.box_iou([[np.nan] * 4], [[0, 0, 1, 1]]))[0]
    np.testing.assert_allclose(M.box_iou([[90, 0, 20, 10]], [[90, 0, 10, 10]], bound=(100, 100)), [1.0])


def test_success_precision_hand_case():
    gt = np.array([[10, 10, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10]], float)
    pred = np.array([[99, 99, 3, 3], [5, 0, 10, 10], [30, 0, 10, 10]], float)
    r = M.evaluate_sequence(pred, gt, M.OTB)
    # frame 1 is replaced by the GT (IoU 1), frame 2 IoU 1/3, frame 3 IoU 0
    # IoU 1 beats 20 of the 21 thresholds (not 1.0), 1/3 beats 0, .05, ..., .30 (7), 0 none
    assert r.metrics()["auc"] == pytest.approx(27 / 63)
    np.testing.assert_allclose(r.success[[0, 6, 7, 20]], [2 / 3, 2 / 3, 1 / 3, 0])
    # centre errors 0, 5, 30 px -> 2/3 within 20 px; normalised 0, 0.5, 3 -> 1/3 within 0.2
    assert r.metrics()["precision"] == pytest.approx(2 / 3)
    assert r.metrics()["norm_precision"] == pytest.approx(1 / 3)
    np.testing.assert_allclose(r.precision[[0, 4, 5, 29, 30]], [1 / 3, 1 / 3, 2 / 3, 2 / 3, 1])
    # AO / SR: frames 2..N only (GOT-10k)
    m = r.metrics()
    assert m["ao"] == pytest.approx((1 / 3 + 0) / 2)
    assert m["sr50"] == 0.0 and m["sr75"] == 0.0


def test_absent_frames_and_first_frame_rules():
    gt = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [np.nan] * 4, [0, 0, 10, 10]], float)
    pred = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [50, 50, 5, 5], [5, 0, 10, 10]], float)
    ex = M.evaluate_sequence(pred, gt, M.OTB)      # absent frame left out: 3 frames
    fail = M.evaluate_sequence(pred, gt, M.LASOT)  # absent frame kept in the denominator: 4 frames
    got = M.evaluate_sequence(pred, gt, M.GOT10K)  # first and absent frames left out: 2 frames
    assert ex.success[0] == pytest.approx(3 / 3) and fail.success[0] == pytest.approx(3 / 4)
    assert got.success[0] == pytest.approx(2 / 2)
    assert ex.success[10] == pytest.approx(2 / 3) and fail.success[10] == pytest.approx(2 / 4)
    assert got.success[10] == pytest.approx(1 / 2)  # IoU 1/3 at frame 4 fails 0.5
    assert ex.precision[20] == pytest.approx(1.0) and fail.precision[20] == pytest.approx(3 / 4)
    for r in (ex, fail, got):  # AO ignores the first and absent frames in every protocol
        assert r.metrics()["ao"] == pytest.approx((1 + 1 / 3) / 2)
    # a GT box of zero size counts as a failure
    z = M.evaluate_sequence(pred[:2], np.array([[0, 0, 10, 10], [0, 0, 0, 10]], float))
    assert z.success[0] == pytest.approx(0.5)


def test_invalid_predictions_repeat_the_previous_box():
    pred = np.array([[1, 1, 5, 5], [np.nan] * 4, [2, 2, 0, 3], [3, 3, 4, 4]], float)
    np.testing.assert_array_equal(M.fill_invalid(pred), [[1, 1, 5, 5]] * 3 + [[3, 3, 4, 4]])
    with pytest.raises(ValueError):
        M.evaluate_sequence(pred[:2], np.zeros((3, 4)))


def test_aggregate_sequence_weighted_curves_frame_weighted_ao():
    gt = np.tile([0, 0, 10, 10], (3, 1)).astype(float)
    a = M.evaluate_sequence(gt.copy(), gt)                        # perfect, 2 AO frames
    b = M.evaluate_sequence(np.vstack([gt[:1], np.tile([5, 0, 10, 10], (5, 1))]), np.tile(gt[0], (6, 1)))
    scores, curves = M.aggregate([a, b])
    np.testing.assert_allclose(curves["success"], (a.success + b.success) / 2)
    assert scores["ao"] == pytest.approx((2 * 1 + 5 * (1 / 3)) / 7)
    nan_scores, _ = M.aggregate([])
    assert np.isnan(nan_scores["auc"])


def _random_boxes(rng, n):
    xy = rng.uniform(0, 200, (n, 2))
    wh = rng.uniform(5, 80, (n, 2))
    return np.hstack([xy, wh])


def test_against_got10k_toolkit_otb_and_uav():
    """Curves vs got10k ExperimentOTB._calc_curves / ExperimentUAV123._calc_metrics on random data."""
    gm = pytest.importorskip("got10k.utils.metrics")
    from got10k.experiments.otb import ExperimentOTB
    from got10k.experiments.uav123 import ExperimentUAV123

    rng = np.random.default_rng(0)
    exp = ExperimentOTB.__new__(ExperimentOTB)
    exp.nbins_iou, exp.nbins_ce = 21, 51
    uav = ExperimentUAV123.__new__(ExperimentUAV123)
    uav.nbins_iou, uav.nbins_ce = 21, 51
    for _ in range(5):
        gt = _random_boxes(rng, 300)
        pred = gt + rng.normal(0, 12, gt.shape)
        pred[:, 2:] = np.abs(pred[:, 2:]) + 1
        np.testing.assert_allclose(M.box_iou(pred, gt), gm.rect_iou(pred.copy(), gt.copy()), atol=1e-12)
        np.testing.assert_allclose(M.center_error(pred, gt), gm.center_error(pred, gt))
        ref = pred.copy()
        ref[0] = gt[0]  # ExperimentOTB.report does boxes[0] = anno[0]
        succ, prec = exp._calc_curves(gm.rect_iou(ref, gt.copy()), gm.center_error(ref, gt))
        ours = M.evaluate_sequence(pred, gt, M.OTB)
        np.testing.assert_allclose(ours.success, succ, atol=1e-12)
        np.testing.assert_allclose(ours.precision, prec, atol=1e-12)
        # UAV123: NaN ground-truth rows are left out
        gt_nan = gt.copy()
        gt_nan[rng.choice(np.arange(1, 300), 40, replace=False)] = np.nan
        ious, ces = uav._calc_metrics(ref, gt_nan)
        succ, prec = uav._calc_curves(ious, ces)
        ours = M.evaluate_sequence(pred, gt_nan, M.OTB)
        np.testing.assert_allclose(ours.success, succ, atol=1e-12)
        np.testing.assert_allclose(ours.precision, prec, atol=1e-12)


def test_against_got10k_toolkit_ao_sr():
    """AO / SR vs the GOT-10k toolkit: IoUs of frames 2..N with cover > 0, clipped, pooled."""
    gm = pytest.importorskip("got10k.utils.metrics")
    pytest.importorskip("six")
    from got10k.experiments.got10k import ExperimentGOT10k

    exp = ExperimentGOT10k.__new__(ExperimentGOT10k)
    exp.nbins_iou = 101
    rng = np.random.default_rng(1)
    bound = (220, 190)
    ours, pooled = [], []
    for n in (50, 80, 120):
        gt = _random_boxes(rng, n)
        pred = gt + rng.normal(0, 10, gt.shape)
        pred[:, 2:] = np.abs(pred[:, 2:]) + 1
        cover = rng.integers(0, 9, n)
        cover[0] = 8
        gt_nan = gt.copy()
        gt_nan[cover == 0] = np.nan
        ious = gm.rect_iou(pred[1:].copy(), gt[1:].copy(), bound=bound)[cover[1:] > 0]
        pooled.append(ious)
        ao, sr, _, _ = exp._evaluate(ious, np.zeros(0))
        r = M.evaluate_sequence(pred, gt_nan, M.GOT10K, image_size=bound)
        assert r.metrics()["ao"] == pytest.approx(ao, abs=1e-12)
        assert r.metrics()["sr50"] == pytest.approx(sr, abs=1e-12)
        assert r.metrics()["sr75"] == pytest.approx(np.mean(ious > 0.75), abs=1e-12)
        ours.append(r)
    ao, sr, _, _ = exp._evaluate(np.concatenate(pooled), np.zeros(0))
    scores, _ = M.aggregate(ours)
    assert scores["ao"] == pytest.approx(ao, abs=1e-12) and scores["sr50"] == pytest.approx(sr, abs=1e-12)


def _lasot_toolkit(res, anno, absent, norm_dst):
    """Loop transliteration of the LaSOT toolkit (calc_seq_err_robust.m + eval_tracker.m)."""
    res, anno = res.copy(), anno.copy()
    n = len(anno)
    for i in range(1, n):
        r = res[i]
        if (np.isnan(r).any() or r[2] <= 0 or r[3] <= 0) and not np.isnan(anno[i]).any():
            res[i] = res[i - 1]
    res[0] = anno[0]
    keep = absent != 1
    res, anno = res[keep], anno[keep]
    errs, covs = [], []
    for p, g in zip(res, anno):
        cp = np.array([p[0] + (p[2] - 1) / 2, p[1] + (p[3] - 1) / 2])
        cg = np.array([g[0] + (g[2] - 1) / 2, g[1] + (g[3] - 1) / 2])
        if norm_dst:
            cp, cg = cp / g[2:], cg / g[2:]
        e = float(np.sqrt(((cp - cg) ** 2).sum()))
        if g[2] > 0 and g[3] > 0:  # the toolkit also demands x, y > 0; the random boxes here have them
            iw = max(0.0, min(p[0] + p[2], g[0] + g[2]) - max(p[0], g[0]))
            ih = max(0.0, min(p[1] + p[3], g[1] + g[3]) - max(p[1], g[1]))
            covs.append(min(1.0, iw * ih / (p[2] * p[3] + g[2] * g[3] - iw * ih)))  # float noise at 1
            errs.append(e)
        else:
            covs.append(-1.0)
            errs.append(-1.0)
    thr_o = np.arange(0, 1.05, 0.05)
    thr_e = np.arange(0, 51) / (100.0 if norm_dst else 1.0)
    succ = np.array([sum(c > t for c in covs) for t in thr_o]) / n
    prec = np.array([sum(e <= t for e in errs) for t in thr_e]) / n
    return succ, prec


def test_against_lasot_toolkit_transliteration():
    rng = np.random.default_rng(2)
    for _ in range(4):
        n = 120
        gt = _random_boxes(rng, n) + [5, 5, 0, 0]
        pred = gt + rng.normal(0, 15, gt.shape)
        pred[:, 2:] = np.abs(pred[:, 2:]) + 0.5
        pred[rng.choice(np.arange(1, n), 5)] = np.nan  # invalid predictions -> previous box
        absent = (rng.random(n) < 0.15).astype(int)
        absent[0] = 0
        gt_nan = gt.copy()
        gt_nan[absent == 1] = np.nan
        ours = M.evaluate_sequence(pred, gt_nan, M.LASOT)
        succ, prec = _lasot_toolkit(pred, gt, absent, False)
        _, nprec = _lasot_toolkit(pred, gt, absent, True)
        np.testing.assert_allclose(ours.success, succ, atol=1e-12)
        np.testing.assert_allclose(ours.precision, prec, atol=1e-12)
        np.testing.assert_allclose(ours.norm_precision, nprec, atol=1e-12)
