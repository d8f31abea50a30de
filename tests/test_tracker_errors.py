"""Bad input to the runtime gives clear exceptions; blank frames keep the crop bounded."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from mixformerv2_cpu import (BackendError, InvalidBoxError, InvalidFrameError, ModelFileError, NotInitializedError,
                             Tracker)
from mixformerv2_cpu.tracker import MAX_CROP_SIDE_FACTOR


@pytest.fixture(scope="module")
def tracker(export_small):
    return Tracker(export_small, backend="onnxruntime")


FRAME = np.full((120, 160, 3), 90, np.uint8)


def test_update_before_init(export_small):
    with pytest.raises(NotInitializedError, match="before init"):
        Tracker(export_small, backend="onnxruntime").update(FRAME)


@pytest.mark.parametrize("frame, msg", [
    (FRAME.astype(np.float32), "dtype must be uint8.*got float32"),
    (np.zeros((120, 160, 2), np.uint8), r"shape \(H,W,3\).*got \(120, 160, 2\)"),
    (np.zeros((0, 160, 3), np.uint8), "empty"),
    ([[1, 2, 3]], "numpy array.*got list"),
    (np.zeros((5, 160, 3), np.uint8), "at least 10x10"),
])
def test_bad_frames(tracker, frame, msg):
    with pytest.raises(InvalidFrameError, match=msg):
        tracker.init(frame, (10, 10, 20, 20))


def test_gray_and_bgra_are_converted_by_the_documented_rule(tracker):
    gray = np.full((120, 160), 90, np.uint8)
    tracker.init(gray, (40, 40, 30, 30))
    ok_gray, box_gray = tracker.update(gray)
    tracker.init(FRAME, (40, 40, 30, 30))
    _, box_bgr = tracker.update(FRAME)
    assert box_gray == box_bgr
    bgra = np.dstack([FRAME, np.zeros((120, 160), np.uint8)])
    tracker.init(bgra, (40, 40, 30, 30))
    assert tracker.update(bgra)[1] == box_bgr


@pytest.mark.parametrize("box, msg", [((10, 10, 0, 20), "> 0"), ((10, 10, -3, 20), "> 0"),
                                      ((np.nan, 10, 5, 5), "finite"), ((500, 10, 20, 20), "wholly outside")])
def test_bad_init_boxes(tracker, box, msg):
    with pytest.raises(InvalidBoxError, match=msg):
        tracker.init(FRAME, box)


def test_frame_size_change(tracker):
    tracker.init(FRAME, (10, 10, 20, 20))
    with pytest.raises(InvalidFrameError, match="size changed from 160x120 at init to 200x100"):
        tracker.update(np.zeros((100, 200, 3), np.uint8))


def test_reset_requires_new_init(tracker):
    tracker.init(FRAME, (10, 10, 20, 20))
    tracker.reset()
    with pytest.raises(NotInitializedError):
        tracker.update(FRAME)


def test_blank_frames_keep_the_search_crop_bounded(export_small):
    t = Tracker(export_small, backend="onnxruntime", preset={"search_factor": 20.0})
    black = np.zeros((120, 160, 3), np.uint8)
    t.init(black, (0, 0, 160, 120))
    for _ in range(5):
        ok, box = t.update(black)
        assert 10 <= box[2] <= 160 and 10 <= box[3] <= 120
    # factor 20 on a full-frame box asks for ceil(sqrt(160*120)*20) = 2772 px; the cap is 4 * 160
    from mixformerv2_cpu.geometry import crop_side
    assert crop_side((0, 0, 160, 120), 20.0) > MAX_CROP_SIDE_FACTOR * 160


def test_unknown_backend(export_small):
    with pytest.raises(BackendError, match="unknown backend 'tensorrt'; valid: openvino, onnxruntime"):
        Tracker(export_small, backend="tensorrt")


def test_missing_model(tmp_path):
    with pytest.raises(ModelFileError, match="neither a registered name"):
        Tracker(tmp_path / "nothing")
    with pytest.raises(ModelFileError, match="holds no .*manifest.json"):
        Tracker(tmp_path)


def test_corrupt_model_file(export_small, tmp_path):
    copy = tmp_path / "exp"
    shutil.copytree(export_small, copy)
    xml = copy / "mixformerv2_small.search.xml"
    xml.write_bytes(xml.read_bytes()[:1000])
    with pytest.raises(ModelFileError, match="does not match the sha256"):
        Tracker(copy)


def test_model_file_without_metadata(export_small, tmp_path):
    import onnx

    copy = tmp_path / "exp"
    shutil.copytree(export_small, copy)
    path = copy / "mixformerv2_small.search.onnx"
    proto = onnx.load(str(path))
    del proto.metadata_props[:]
    onnx.save(proto, str(path))
    manifest = copy / "mixformerv2_small.manifest.json"
    data = json.loads(manifest.read_text())
    from mixformerv2_cpu.manifest import sha256_of
    data["files"][path.name] = {"sha256": sha256_of(path), "bytes": path.stat().st_size}
    manifest.write_text(json.dumps(data))
    with pytest.raises(ModelFileError, match="no mixformerv2-cpu metadata"):
        Tracker(copy, backend="onnxruntime")
