"""NanoTrack v3 and FEAR-XS peers (own tracking loops on ONNX Runtime): decoding by hand, crops, registry,
and a real shared sequence tracked well above a static box."""
from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import SHARED
from mixformerv2_benchmarks import peer_fear as F
from mixformerv2_benchmarks import peer_nanotrack_v3 as N
from mixformerv2_benchmarks import peers as P
from mixformerv2_benchmarks.datasets import load_dataset
from mixformerv2_benchmarks.metrics import OTB, evaluate_sequence

PEERS_DIR = SHARED / "data" / "peers"
SEQUENCES = SHARED / "data" / "sequences"
SEQ = "crossing"  # 120 frames, 360x640


def need(*paths: Path) -> None:
    for p in paths:
        if not p.exists():
            pytest.skip(f"needs {p} (../shared beside the checkout)")


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


# ------------------------------------------------------------------------- NanoTrack v3: decode by hand
def nano_maps(row: int, col: int, d: tuple, logit: float = 8.0):
    """cls: background everywhere except (row, col); reg: 10 px everywhere except d=(l, t, r, b) there."""
    s = N.SCORE_SIZE
    cls = np.zeros((1, 2, s, s), np.float32)
    cls[0, 1] = -logit
    cls[0, 1, row, col] = logit
    reg = np.full((1, 4, s, s), 10.0, np.float32)
    reg[0, :, row, col] = d
    return cls, reg


def test_nanotrack_v3_decode_matches_hand_computation():
    row, col, (l, t, r, b) = 9, 5, (40.0, 30.0, 60.0, 20.0)
    cls, reg = nano_maps(row, col, (l, t, r, b))
    center, size, scale_z = np.array([100.0, 80.0]), np.array([40.0, 20.0]), 2.0

    # by hand: grid point of (row, col) relative to the crop centre, stride 16, 15x15 map -> offset -112
    px, py = -112 + 16 * col, -112 + 16 * row                       # (-32, 32)
    cx_crop, cy_crop, w_crop, h_crop = px + (r - l) / 2, py + (b - t) / 2, l + r, t + b  # (-22, 27, 100, 50)
    score = math.exp(8.0) / (math.exp(8.0) + math.exp(0.0))        # softmax over channels (0, 8), channel 1
    # same aspect ratio as the current size in crop scale (80 x 40) -> r_c = 1; 1.25x larger -> s_c = 1.25
    penalty = math.exp(-(1.0 * 1.25 - 1.0) * 0.138)
    lr = penalty * score * 0.348
    exp_center = (100.0 + cx_crop / scale_z, 80.0 + cy_crop / scale_z)     # (89, 93.5)
    exp_size = (40.0 * (1 - lr) + (w_crop / scale_z) * lr, 20.0 * (1 - lr) + (h_crop / scale_z) * lr)

    sc, boxes = N.decode(cls, reg, N.grid_points())
    k = row * N.SCORE_SIZE + col
    np.testing.assert_allclose(boxes[:, k], [cx_crop, cy_crop, w_crop, h_crop], atol=1e-4)
    assert sc[k] == pytest.approx(score, rel=1e-9)
    new_c, new_s, best_score, best = N.select(sc, boxes, center, size, scale_z, (200, 300), N.hanning_window())
    assert best == k
    assert best_score == pytest.approx(score, rel=1e-9)
    np.testing.assert_allclose(new_c, exp_center, atol=1e-6)
    np.testing.assert_allclose(new_s, exp_size, atol=1e-6)
    # the box the tracker reports: centre - size / 2 (nano_tracker.py:156-159)
    x, y = new_c - new_s / 2
    assert (x, y) == pytest.approx((exp_center[0] - exp_size[0] / 2, exp_center[1] - exp_size[1] / 2))

    # clipping to a small frame (H 30, W 45): centre into [0, W] x [0, H], sides into [10, side]
    new_c, new_s, _, _ = N.select(sc, boxes, center, size, scale_z, (30, 45), N.hanning_window())
    np.testing.assert_allclose(new_c, (45.0, 30.0))
    np.testing.assert_allclose(new_s, (min(exp_size[0], 45.0), max(10.0, min(exp_size[1], 30.0))))


def test_nanotrack_v3_window_beats_a_far_peak():
    """A slightly higher score far from the centre loses to the centre cell through the Hanning window."""
    s = N.SCORE_SIZE
    cls = np.zeros((1, 2, s, s), np.float32)
    cls[0, 1] = -8
    cls[0, 1, 7, 7] = 2.0    # centre cell, p = 0.88
    cls[0, 1, 0, 14] = 3.0   # corner cell, p = 0.95, window 0
    reg = np.full((1, 4, s, s), 20.0, np.float32)
    sc, boxes = N.decode(cls, reg, N.grid_points())
    _, _, _, best = N.select(sc, boxes, np.array([50.0, 50.0]), np.array([20.0, 20.0]), 127 / 40,
                             (100, 100), N.hanning_window())
    assert best == 7 * s + 7


def test_nanotrack_v3_subwindow_equals_reference_padding():
    """The crop built window-only equals padding the whole frame with the truncated mean (reference way)."""
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)
    avg = img.mean(axis=(0, 1))
    for center, sz in (((5.3, 7.8), 31), ((55.0, 35.5), 25), ((30.0, 20.0), 11), ((-3.0, 50.0), 20)):
        c = (sz + 1) / 2
        x0, y0 = int(np.floor(center[0] - c + 0.5)), int(np.floor(center[1] - c + 0.5))
        pad = sz + 70
        big = np.zeros((40 + 2 * pad, 60 + 2 * pad, 3), np.uint8)
        big[:] = avg  # numpy assignment truncates, as base_tracker.get_subwindow does
        big[pad:pad + 40, pad:pad + 60] = img
        ref = big[pad + y0:pad + y0 + sz, pad + x0:pad + x0 + sz]
        np.testing.assert_array_equal(N.subwindow(img, np.array(center), sz, sz, avg), ref)
        np.testing.assert_array_equal(N.subwindow(img, np.array(center), 17, sz, avg), cv2.resize(ref, (17, 17)))


def test_nanotrack_v3_template_runs_the_backbone_on_the_127_crop():
    """The 255-declared backbone, re-declared at 127x127, gives the 8x8 template map (as OpenCV's dnn does)."""
    from mixformerv2_benchmarks import peer_ort

    backbone = PEERS_DIR / "nanotrack_v3" / "nanotrack_backbone.onnx"
    need(backbone)
    sess = peer_ort.session(peer_ort.with_fixed_hw(backbone, {"input": (127, 127), "output": (8, 8)}), threads=1)
    x = np.random.default_rng(1).uniform(0, 255, (1, 3, 127, 127)).astype(np.float32)
    y = sess.run(None, {"input": x})[0]
    assert y.shape == (1, 96, 8, 8)
    net = cv2.dnn.readNet(str(backbone))
    net.setInput(x)
    np.testing.assert_allclose(y, net.forward(), atol=1e-3)
    with pytest.raises(ValueError, match="no graph input/output named nope"):
        peer_ort.with_fixed_hw(backbone, {"nope": (1, 1)})


# ------------------------------------------------------------------------------- FEAR-XS: decode by hand
def test_fear_decode_matches_hand_computation():
    s = F.SCORE_SIZE
    row, col, (l, t, r, b) = 10, 6, (20.0, 10.0, 40.0, 30.0)
    cls = np.full((1, 1, s, s), -8.0, np.float32)
    cls[0, 0, row, col] = 4.0
    reg = np.full((1, 4, s, s), 5.0, np.float32)
    reg[0, :, row, col] = (l, t, r, b)
    prev = np.array([48.0, 32.0])                                   # same ratio as 60 x 40, 1.25x smaller

    gx, gy = (col - 8) * 16 + 128, (row - 8) * 16 + 128             # (96, 160)
    x1, y1, w, h = gx - l, gy - t, l + r, t + b                      # (76, 150, 60, 40)
    score = sigmoid(4.0)
    penalty = math.exp(-(1.0 * 1.25 - 1.0) * 0.062)
    lr = penalty * score * 0.765
    exp_w = 48 * (1 - lr) + lr * (lr * 60 + (1 - lr) * 48)         # base_tracker._smooth_size as written
    exp_h = 32 * (1 - lr) + lr * (lr * 40 + (1 - lr) * 32)

    box, sc, rc = F.decode(cls, reg, prev, F.make_grid(), F.cosine_window(), smooth=True)
    assert rc == (row, col) and sc == pytest.approx(score)
    np.testing.assert_allclose(box, [x1, y1, exp_w, exp_h], atol=1e-9)
    box, _, _ = F.decode(cls, reg, prev, F.make_grid(), F.cosine_window(), smooth=False)
    np.testing.assert_allclose(box, [x1, y1, w, h])
    # crop -> frame: context 512 x 384 at (10, 20): scale 2 x 1.5, rounded, sides >= 3
    np.testing.assert_array_equal(F.rescale(np.array([76.0, 150.0, 60.0, 1.0]), np.array([10, 20, 512, 384])),
                                  [162, 245, 120, 3])
    # clamp: inside the frame, a box over the left edge moves (utils.ensure_bbox_boundaries)
    np.testing.assert_array_equal(F.clamp_box((-5, 10, 20, 2), (50, 100)), [0, 10, 20, 3])


def test_fear_extended_crop_geometry():
    img = np.zeros((100, 200, 3), np.uint8)
    img[40:60, 90:110] = 255
    crop, box, ctx = F.extended_crop(img, np.array([90, 40, 20, 20]), 256, 2.0, np.array([7.0, 8.0, 9.0]))
    np.testing.assert_array_equal(ctx, [50, 0, 100, 100])        # 2x the size on each side
    assert crop.shape == (256, 256, 3)
    np.testing.assert_allclose(box, [40 * 2.56, 40 * 2.56, 20 * 2.56, 20 * 2.56])
    crop, box, ctx = F.extended_crop(img, np.array([0, 0, 20, 10]), 256, 2.0, np.array([7.0, 8.0, 9.0]))
    np.testing.assert_array_equal(ctx, [-40, -20, 100, 50])
    assert tuple(crop[0, 0]) == (7, 8, 9)                          # padded with the mean colour


# ------------------------------------------------------------------------------------------- registry
def test_missing_files_say_what_and_where(tmp_path):
    for name, first in (("nanotrack_v3", "nanotrack_v3/nanotrack_backbone.onnx"),
                        ("fear_xs", "fear_xs/fear_xs_template.onnx")):
        with pytest.raises(P.PeerUnavailable) as err:
            P.make_peer(name, peers_dir=tmp_path)
        msg = str(err.value)
        assert str(tmp_path / first) in msg and "--peers-dir" in msg and P.ENV_PEERS_DIR in msg
    assert P.peer_backend("fear_xs") == "onnxruntime" and P.peer_backend("kcf") == "opencv"


# ------------------------------------------------------------------------------ real sequence, AUC floor
def _run(name: str):
    need(PEERS_DIR / name, SEQUENCES / SEQ)
    seq = next(s for s in load_dataset(SEQUENCES).sequences if s.name == SEQ)
    trk = P.make_tracker(name, threads=1, peers_dir=PEERS_DIR)
    frames = [cv2.imread(str(f)) for f in seq.frames]
    trk.init(frames[0], seq.init_box)
    boxes, scores = [seq.init_box], []
    for f in frames[1:]:
        ok, box = trk.update(f)
        assert ok is True and len(box) == 4 and all(math.isfinite(v) for v in box)
        boxes.append(box)
        scores.append(trk.score)
    auc = evaluate_sequence(np.array(boxes), seq.gt, OTB).metrics()["auc"]
    static = evaluate_sequence(np.tile(seq.gt[0], (len(seq.gt), 1)), seq.gt, OTB).metrics()["auc"]
    return auc, static, np.array(scores)


@pytest.mark.parametrize("name, floor", [("nanotrack_v3", 0.65), ("fear_xs", 0.70)])
def test_peer_tracks_a_real_sequence(name, floor):
    """crossing: NanoTrack v3 0.715 and FEAR-XS 0.778 AUC measured, a static box 0.04."""
    auc, static, scores = _run(name)
    assert static < 0.2
    assert auc >= floor and auc >= static + 0.4, (auc, static)
    assert np.all((scores >= 0) & (scores <= 1)) and np.median(scores) > 0.5


def test_fear_score_at_scores_a_given_crop_and_keeps_the_tracked_box():
    """score_at(frame, box[, within]): FEAR-XS is sure of the target in a crop centred on it and not in
    one 60 px to the side (its search region is 5 box widths wide: this 17x46 px pedestrian is then
    outside it); restricting the cells to a square (``within``) never raises the score; no cell in
    the square -> 0; the tracked box does not move."""
    need(PEERS_DIR / "fear_xs", SEQUENCES / SEQ)
    seq = next(s for s in load_dataset(SEQUENCES).sequences if s.name == SEQ)
    trk = P.make_peer("fear_xs", threads=1, peers_dir=PEERS_DIR)
    f0, f5 = cv2.imread(str(seq.frames[0])), cv2.imread(str(seq.frames[5]))
    trk.init(f0, seq.init_box)
    before = trk.box.copy()
    x, y, w, h = seq.gt[5]
    side = math.ceil(math.sqrt(w * h) * 4.5)
    here, here_all = trk.score_at(f5, (x, y, w, h), within=side), trk.score_at(f5, (x, y, w, h))
    np.testing.assert_array_equal(trk.box, before)
    assert here > 0.9 and here_all >= here
    assert trk.score_at(f5, (x - 60, y, w, h), within=side) < 0.2
    assert trk.score_at(f5, (x, y, w, h), within=-1.0) == 0.0
