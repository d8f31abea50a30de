"""Tracker reproduces the reference tracker run (reference/tracker_small.npz) on both backends."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from mixformerv2_cpu import MultiTracker, Tracker

PRESETS = {"got10k": "got10k_test", "trackingnet": "trackingnet"}


def _run(tracker, ref):
    frames = ref["synthetic__frames_bgr"]
    tracker.init(frames[0], ref["synthetic__init_xywh"])
    states, scores, updated = [np.asarray(ref["synthetic__init_xywh"])], [np.nan], [0]
    for f in frames[1:]:
        ok, box = tracker.update(f)
        states.append(box)
        scores.append(tracker.score)
        updated.append(int(tracker.updated))
        assert ok == (tracker.score >= tracker.preset.lost_threshold)
    return np.array(states), np.array(scores), np.array(updated)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["openvino", "onnxruntime"])
@pytest.mark.parametrize("preset", list(PRESETS))
def test_reproduces_reference_tracking(export_small, tracker_ref, backend, preset):
    key = f"synthetic__{PRESETS[preset]}__"
    tracker = Tracker(export_small, backend=backend, preset=preset, threads=2)
    states, scores, updated = _run(tracker, tracker_ref)
    assert np.abs(states - tracker_ref[key + "states_xywh"]).max() < 0.01
    assert np.nanmax(np.abs(scores - tracker_ref[key + "scores"])) < 1e-4
    np.testing.assert_array_equal(updated, tracker_ref[key + "updated"])
    assert updated.sum() >= 1  # the online update is really exercised


@pytest.fixture(scope="module")
def clip() -> dict:
    """30 frames of the bundled sample clip and its first box, under the reference file's key names."""
    import cv2

    from conftest import SAMPLES

    cap = cv2.VideoCapture(str(SAMPLES / "sample_clip.mp4"))
    frames = [cap.read()[1] for _ in range(30)]
    box = tuple(float(v) for v in (SAMPLES / "sample_clip_gt.txt").read_text().split()[0].split(","))
    return {"synthetic__frames_bgr": np.stack(frames), "synthetic__init_xywh": box}


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["openvino", "onnxruntime"])
def test_cached_path_equals_full_graph(export_small, clip, backend):
    cached = _run(Tracker(export_small, backend=backend, preset="got10k"), clip)
    full = _run(Tracker(export_small, backend=backend, preset="got10k", graphs="full"), clip)
    assert np.abs(cached[0] - full[0]).max() < 1e-3
    assert np.nanmax(np.abs(cached[1] - full[1])) < 1e-5


@pytest.mark.slow
def test_multi_target_equals_separate_trackers(export_small, clip):
    frames = clip["synthetic__frames_bgr"]
    boxes = [tuple(clip["synthetic__init_xywh"]), (40.0, 60.0, 30.0, 40.0), (120.0, 100.0, 50.0, 30.0)]
    multi = MultiTracker(export_small, preset="got10k")
    multi.init(frames[0], boxes)
    singles = [Tracker(export_small, preset="got10k") for _ in boxes]
    for t, b in zip(singles, boxes):
        t.init(frames[0], b)
    for f in frames[1:]:
        res = multi.update(f)
        for (ok, box), t, score in zip(res, singles, multi.scores):
            ok1, box1 = t.update(f)
            assert ok == ok1 and np.abs(np.subtract(box, box1)).max() < 1e-3 and abs(score - t.score) < 1e-5


def test_prediction_distributions(export_small, clip):
    frames = clip["synthetic__frames_bgr"]
    t = Tracker(export_small, backend="onnxruntime")
    t.init(frames[0], clip["synthetic__init_xywh"])
    assert t.last_prediction is None and np.isnan(t.score)
    ok, box = t.update(frames[1])
    p = t.last_prediction
    assert p.box == box and p.distributions.shape == (4, 96)
    np.testing.assert_allclose(p.distributions.sum(1), 1, rtol=1e-9)
    # the expected left edge in image pixels equals the box's left edge (before clipping: inside here)
    left = (p.distributions[0] * p.edge_positions[0]).sum()
    assert left == pytest.approx(box[0], abs=1e-6)
    top = (p.distributions[1] * p.edge_positions[1]).sum()
    assert top == pytest.approx(box[1], abs=1e-6)


def test_import_leaves_torch_unimported():
    code = ("import sys, mixformerv2_cpu, mixformerv2_cpu.tracker, mixformerv2_cpu.backends.openvino, "
            "mixformerv2_cpu.backends.onnxruntime; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_min_box_side_bounds_the_reported_box(export_small, clip):
    """The preset's min_box_side is the clip margin of every prediction: the same tiny-target update
    gives clip_box(expected edges, margin=min_box_side), with 1 px and with the reference's 10."""
    from mixformerv2_cpu.geometry import clip_box

    frames, tiny = clip["synthetic__frames_bgr"], (60.0, 50.0, 4.0, 3.0)
    h, w = frames.shape[1:3]
    boxes = {}
    for side in (1, 10):
        t = Tracker(export_small, backend="onnxruntime", preset={"min_box_side": side})
        t.init(frames[0], tiny)
        _, box = t.update(frames[1])
        p = t.last_prediction
        l, t_, r, b = [(p.distributions[k] * p.edge_positions[k]).sum() for k in range(4)]
        assert box == pytest.approx(clip_box((l, t_, r - l, b - t_), h, w, margin=side), abs=1e-6)
        boxes[side] = box
    assert min(boxes[1][2:]) < 10 <= min(boxes[10][2:])
