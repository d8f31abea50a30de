"""Bad input to the runtime gives clear exceptions; blank frames keep the crop bounded."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from mixformerv2_cpu import (BackendError, InvalidBoxError, InvalidFrameError, ModelFileError, MultiTracker,
                             NotInitializedError, SettingError, Tracker, TrackerError)
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
    # factor 20 on a full-frame box asks for ceil(sqrt(160*120)*20) = 2772 px; the cap is 4 * 160
    from mixformerv2_cpu.geometry import crop_side
    assert crop_side((0, 0, 160, 120), 20.0) > MAX_CROP_SIDE_FACTOR * 160
    sides = []
    for _ in range(5):
        ok, box = t.update(black)
        m = t.preset.min_box_side  # the clip margin (4 px: dict presets override 'default')
        assert m <= box[2] <= 160 and m <= box[3] <= 120
        edges = t.last_prediction.edge_positions[0]  # the crop the search step saw spans the edge bins
        sides.append((edges[1] - edges[0]) * len(edges))
    assert sides[0] == pytest.approx(MAX_CROP_SIDE_FACTOR * 160)  # capped, not 2772
    assert max(sides) <= MAX_CROP_SIDE_FACTOR * 160 + 1e-6


def test_unknown_backend(export_small):
    with pytest.raises(BackendError, match="unknown backend 'tensorrt'; expected one of: openvino, onnxruntime"):
        Tracker(export_small, backend="tensorrt")


@pytest.mark.parametrize("kwargs, error, msg", [
    ({"threads": -1}, SettingError, "threads must be an int >= 1 or None, got -1"),
    ({"threads": 0}, SettingError, "got 0"),
    ({"threads": "2"}, SettingError, "got '2'"),
    ({"threads": 1.5}, SettingError, "got 1.5"),
    ({"threads": True}, SettingError, "got True"),
    ({"graphs": "x"}, SettingError, "graphs must be one of cached, full, got 'x'"),
    ({"precision": "fp8"}, BackendError, "unknown precision 'fp8'; expected one of: auto, fp32, int8, bf16"),
    ({"backend": None}, BackendError, "unknown backend None"),
])
def test_bad_settings_are_tracker_errors_before_any_work(export_small, kwargs, error, msg):
    with pytest.raises(error, match=msg) as info:
        Tracker(export_small, **kwargs)
    assert isinstance(info.value, TrackerError)


def test_empty_box_list_is_a_box_error(export_small):
    multi = MultiTracker(export_small, backend="onnxruntime")
    with pytest.raises(InvalidBoxError, match="at least one box, got an empty list"):
        multi.init(FRAME, [])
    with pytest.raises(InvalidBoxError, match="list of"):
        multi.init(FRAME, (10, 10, 20, 20))  # one box where a list of boxes is expected


def test_model_given_by_one_of_its_files(export_small, tmp_path):
    by_file = Tracker(export_small / "mixformerv2_small.search.onnx", backend="onnxruntime")
    assert by_file.engine.manifest.path == Tracker(export_small, backend="onnxruntime").engine.manifest.path
    stray = tmp_path / "other.onnx"
    shutil.copy(export_small / "mixformerv2_small.search.onnx", stray)
    with pytest.raises(ModelFileError, match="no .*manifest.json beside it lists it"):
        Tracker(stray)
    text = tmp_path / "notes.txt"
    text.write_bytes(b"\xa3\x00 binary")
    with pytest.raises(ModelFileError, match="is not a manifest"):
        Tracker(text)


def test_missing_model(tmp_path):
    with pytest.raises(ModelFileError, match="neither a registered name"):
        Tracker(tmp_path / "nothing")
    with pytest.raises(ModelFileError, match="holds no .*manifest.json"):
        Tracker(tmp_path)


@pytest.mark.parametrize("backend", ["openvino", "onnxruntime"])
@pytest.mark.parametrize("victim", ["mixformerv2_small.search.onnx", "mixformerv2_small.full.onnx",
                                    "mixformerv2_small.weights"])
def test_corrupt_model_file(export_small, tmp_path, backend, victim):
    """Every file of the manifest is checked on load, also one this backend/mode does not open (full)."""
    copy = tmp_path / "exp"
    shutil.copytree(export_small, copy)
    path = copy / victim
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, one byte changed
    path.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match=f"{victim} does not match the sha256"):
        Tracker(copy, backend=backend)
    path.write_bytes(bytes(data[:1000]))
    with pytest.raises(ModelFileError, match="truncated or modified"):
        Tracker(copy, backend=backend)
    path.unlink()
    with pytest.raises(ModelFileError, match="model file missing"):
        Tracker(copy, backend=backend)


def test_model_file_without_metadata(export_small, tmp_path):
    copy = _with_metadata(export_small, tmp_path, roles=("search",), clear=True)
    with pytest.raises(ModelFileError, match="no mixformerv2-cpu metadata"):
        Tracker(copy, backend="onnxruntime")


def _with_metadata(export, tmp_path, roles=("full", "template", "search"), clear=False, **props) -> Path:
    """A copy of an export whose ``roles`` graphs carry changed metadata (``props`` set, or with
    ``clear`` none at all; manifest re-hashed)."""
    import onnx
    from mixformerv2_cpu.manifest import sha256_of

    copy = tmp_path / "exp"
    shutil.copytree(export, copy)
    manifest = next(copy.glob("*.manifest.json"))
    stem = manifest.name[:-len(".manifest.json")]
    data = json.loads(manifest.read_text())
    for role in roles:
        path = copy / f"{stem}.{role}.onnx"
        proto = onnx.load(str(path), load_external_data=False)
        kept = {} if clear else {p.key: p.value for p in proto.metadata_props}
        onnx.helper.set_model_props(proto, {**kept, **props})
        onnx.save(proto, str(path))
        data["files"][path.name] = {"sha256": sha256_of(path), "bytes": path.stat().st_size}
    manifest.write_text(json.dumps(data))
    return copy


@pytest.mark.parametrize("value, msg", [("3", r"box_scale must be in \[0.5, 2.0\], got 3.0"),
                                        ("nan", r"box_scale must be in \[0.5, 2.0\], got nan"),
                                        ("wide", "metadata key 'box_scale' has invalid value 'wide'")])
def test_model_with_invalid_box_scale(export_small, tmp_path, value, msg):
    copy = _with_metadata(export_small, tmp_path, box_scale=value)
    with pytest.raises(ModelFileError, match=msg):
        Tracker(copy, backend="onnxruntime")


def test_graphs_that_disagree_on_metadata(export_small, tmp_path):
    copy = _with_metadata(export_small, tmp_path, roles=("search",), box_scale="1.25")
    with pytest.raises(ModelFileError, match="graphs disagree on metadata 'box_scale': template graph '1.0', "
                                             "search graph '1.25'"):
        Tracker(copy, backend="onnxruntime", precision="fp32")


def test_box_scale_from_the_model_file_scales_the_reported_box(tmp_path):
    """The size calibration in the metadata multiplies the reported w and h about the centre; what the
    tracker follows is unchanged (same scores, same tracked boxes frame after frame). The shipped
    model on the CC0 sample clip: real boxes, away from the frame border. An export without the key
    (older files) reports the network's boxes as the reference does."""
    import cv2
    from mixformerv2_cpu.geometry import scale_box
    from mixformerv2_cpu.metadata import ModelMetadata
    from mixformerv2_cpu.registry import resolve_model

    root = Path(__file__).resolve().parents[1] / "samples"
    cap = cv2.VideoCapture(str(root / "sample_clip.mp4"))
    frames = [cap.read()[1] for _ in range(6)]
    init = tuple(float(v) for v in (root / "sample_clip_gt.txt").read_text().splitlines()[0].split(","))
    default = resolve_model("default").folder
    plain = _with_metadata(default, tmp_path / "plain", box_scale="1.0")
    scaled = _with_metadata(default, tmp_path / "scaled", box_scale="1.25")
    runs, metas = [], []
    for model in (plain, scaled):
        t = Tracker(model, backend="onnxruntime", preset="default", precision="fp32")  # the model's own factor
        t.init(frames[0], init)
        runs.append([(t.update(f)[1], t.score) for f in frames[1:]])
        metas.append(t.engine.meta)
    assert (metas[0].box_scale, metas[1].box_scale) == (1.0, 1.25)
    h, w = frames[0].shape[:2]
    for (box, score), (box_s, score_s) in zip(*runs):
        assert score_s == score
        x, y, bw, bh = box_s
        assert 10 < x and x + bw < w - 10 and 10 < y and y + bh < h - 10  # not clipped here
        np.testing.assert_allclose(box_s, scale_box(box, 1.25), atol=1e-9)
    props = ModelMetadata.from_strings({k: v for k, v in metas[0].to_strings().items() if k != "box_scale"},
                                       "old file")
    assert props.box_scale == 1.0
