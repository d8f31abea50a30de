"""Dataset loaders on tiny synthetic layouts of every supported format."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import SEQUENCES, shared
from mixformerv2_benchmarks import datasets as D
from mixformerv2_benchmarks.datasets.loaders import _UAV123_FIRST_FRAME as UAV123_FIRST_FRAME



@pytest.fixture(scope="module")
def jpg() -> bytes:
    ok, buf = cv2.imencode(".jpg", np.full((12, 16, 3), 90, np.uint8))
    assert ok
    return buf.tobytes()


def frames(folder: Path, jpg: bytes, numbers, fmt: str = "{:05d}.jpg") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for n in numbers:
        (folder / fmt.format(n)).write_bytes(jpg)


def gt_lines(n: int, sep: str = ",", start: int = 0) -> str:
    return "".join(sep.join(str(v) for v in (start + i, 2, 5, 4)) + "\n" for i in range(n))


def test_parse_lines():
    np.testing.assert_array_equal(D.parse_box_line("1,2,3,4"), [1, 2, 3, 4])
    np.testing.assert_array_equal(D.parse_box_line("1\t2\t3\t4"), [1, 2, 3, 4])
    np.testing.assert_array_equal(D.parse_box_line("1 2  3 4"), [1, 2, 3, 4])
    # rotated polygon -> axis-aligned min/max box
    np.testing.assert_allclose(D.parse_box_line("10,0,20,10,10,20,0,10"), [0, 0, 20, 20])
    assert np.isnan(D.parse_box_line("nan,nan,nan,nan")).all() and np.isnan(D.parse_box_line("")).all()
    # VOT mask: offset (3, 4), 5x3 region, runs: 6 zeros, 2 ones (row 1, cols 1-2), 2 zeros, 1 one (row 2 col 0)
    np.testing.assert_array_equal(D.parse_box_line("m3,4,5,3,6,2,2,1,4"), [3, 5, 3, 2])
    assert np.isnan(D.parse_box_line("m0,0,4,4,16")).all()
    with pytest.raises(ValueError):
        D.parse_box_line("1,2,3")


def test_shared_format_and_bad_sequences(tmp_path, jpg):
    root = tmp_path / "seqs"
    for name in ("a", "b", "gap", "short"):
        frames(root / name / "img", jpg, range(1, 7))
        (root / name / "groundtruth.txt").write_text(gt_lines(6))
    (root / "gap" / "img" / "00003.jpg").unlink()
    (root / "short" / "groundtruth.txt").write_text(gt_lines(5))
    assert D.detect_format(root) == "shared"
    ds = D.load_dataset(root)
    assert (ds.name, ds.format) == ("seqs", "shared")
    assert [s.name for s in ds.sequences] == ["a", "b"] and ds.num_frames == 12
    a = ds.sequences[0]
    assert a.gt.shape == (6, 4) and a.init_box == (0, 2, 5, 4) and a.frames[0].name == "00001.jpg"
    assert a.frame_size() == (16, 12)
    assert "00003.jpg" in ds.skipped["gap"]
    assert "5 lines but there are 6 frames" in ds.skipped["short"]
    with pytest.raises(D.DatasetError, match="sequence gap"):
        D.load_dataset(root, strict=True)


def test_wrong_layout_names_the_missing_path(tmp_path, jpg):
    root = tmp_path / "seqs"
    frames(root / "a" / "img", jpg, range(1, 3))
    (root / "a" / "groundtruth.txt").write_text(gt_lines(2))
    with pytest.raises(D.DatasetLayoutError, match=r"list\.txt"):
        D.load_dataset(root, "got10k")
    with pytest.raises(D.DatasetLayoutError, match=str(root / "anno" / "UAV123")):
        D.load_dataset(root, "uav123")
    with pytest.raises(D.DatasetLayoutError, match="groundtruth_rect"):
        D.load_dataset(root, "otb")
    with pytest.raises(D.DatasetLayoutError, match="cannot detect"):
        D.load_dataset(tmp_path / "seqs" / "a" / "img")
    with pytest.raises(D.DatasetLayoutError, match="missing"):
        D.load_dataset(tmp_path / "nope")


def test_lasot(tmp_path, jpg):
    root = tmp_path / "LaSOT"
    for name in ("cat-1", "cat-2"):
        d = root / "cat" / name
        frames(d / "img", jpg, range(1, 6), "{:08d}.jpg")
        (d / "groundtruth.txt").write_text(gt_lines(5))
        (d / "full_occlusion.txt").write_text("0,0,1,0,0")
        (d / "out_of_view.txt").write_text("0,0,0,1,0")
    (root / "testing_set.txt").write_text("cat-2\n")
    assert D.detect_format(root) == "lasot"
    ds = D.load_dataset(root)
    assert [s.name for s in ds.sequences] == ["cat-1", "cat-2"]
    absent = np.isnan(ds.sequences[0].gt).any(1)
    assert absent.tolist() == [False, False, True, True, False]
    assert [s.name for s in D.load_dataset(root, subset="test").sequences] == ["cat-2"]
    assert D.load_dataset(root, subset="test").name == "lasot_test"


def test_got10k_val_and_test(tmp_path, jpg):
    root = tmp_path / "GOT10k"
    d = root / "val" / "GOT-10k_Val_000001"
    frames(d, jpg, range(1, 6), "{:08d}.jpg")
    (d / "groundtruth.txt").write_text(gt_lines(5))
    (d / "absence.label").write_text("0\n0\n1\n0\n0\n")
    (d / "cover.label").write_text("8\n8\n0\n3\n8\n")
    (d / "meta_info.ini").write_text("[METAINFO]\nurl: x\nresolution: (1280, 720)\n")
    (root / "val" / "list.txt").write_text("GOT-10k_Val_000001\n")
    t = root / "test" / "GOT-10k_Test_000001"
    frames(t, jpg, range(1, 8), "{:08d}.jpg")
    (t / "groundtruth.txt").write_text(gt_lines(1))
    (root / "test" / "list.txt").write_text("GOT-10k_Test_000001\n")
    assert D.detect_format(root) == "got10k"
    val = D.load_dataset(root)
    assert val.name == "got10k_val" and len(val) == 1
    s = val.sequences[0]
    assert np.isnan(s.gt[2]).all() and not np.isnan(s.gt[3]).any()
    assert s.image_size == (1280, 720)
    test = D.load_dataset(root, subset="test")
    assert test.sequences[0].full_gt is False and test.sequences[0].gt.shape == (1, 4)
    assert len(test.sequences[0]) == 7
    # the split folder itself is accepted too
    assert D.load_dataset(root / "val", "got10k").sequences[0].name == "GOT-10k_Val_000001"
    (t / "meta_info.ini").write_text("[METAINFO]\nresolution: (16, 12)\n")
    assert D.detect_format(root / "test") == "got10k" and D.detect_format(root / "val") == "got10k"
    assert D.load_dataset(root / "test").sequences[0].full_gt is False


@pytest.mark.parametrize("sep", [",", "\t", " "])
def test_otb_separators_two_targets_and_ranges(tmp_path, jpg, sep):
    root = tmp_path / "OTB"
    frames(root / "Basketball" / "img", jpg, range(1, 5), "{:04d}.jpg")
    (root / "Basketball" / "groundtruth_rect.txt").write_text(gt_lines(4, sep))
    frames(root / "Jogging" / "img", jpg, range(1, 4), "{:04d}.jpg")
    (root / "Jogging" / "groundtruth_rect.1.txt").write_text(gt_lines(3, sep))
    (root / "Jogging" / "groundtruth_rect.2.txt").write_text(gt_lines(3, sep, 7))
    frames(root / "Tiger1" / "img", jpg, range(1, 11), "{:04d}.jpg")  # annotated from frame 6
    (root / "Tiger1" / "groundtruth_rect.txt").write_text(gt_lines(5, sep))
    assert D.detect_format(root) == "otb"
    ds = D.load_dataset(root)
    assert [s.name for s in ds.sequences] == ["Basketball", "Jogging-1", "Jogging-2", "Tiger1"]
    assert ds.sequences[2].init_box == (7, 2, 5, 4)
    tiger = ds.sequences[3]
    assert [f.name for f in tiger.frames] == [f"{i:04d}.jpg" for i in range(6, 11)]


def test_uav123_subsequences_and_nan_rows(tmp_path, jpg, monkeypatch):
    root = tmp_path / "UAV123"
    frames(root / "data_seq" / "UAV123" / "boat1", jpg, range(1, 5), "{:06d}.jpg")
    frames(root / "data_seq" / "UAV123" / "car9", jpg, range(1, 9), "{:06d}.jpg")
    anno = root / "anno" / "UAV123"
    anno.mkdir(parents=True)
    (anno / "boat1.txt").write_text("1,2,5,4\nNaN,NaN,NaN,NaN\n1,2,5,4\n1,2,5,4\n")
    (anno / "car9_1.txt").write_text(gt_lines(5))
    (anno / "car9_2.txt").write_text(gt_lines(4))
    monkeypatch.setitem(UAV123_FIRST_FRAME, "car9_2", 5)  # shares frame 5 with car9_1
    assert D.detect_format(root) == "uav123"
    ds = D.load_dataset(root)
    seqs = {s.name: s for s in ds.sequences}
    assert np.isnan(seqs["boat1"].gt[1]).all()
    assert [f.name for f in seqs["car9_1"].frames] == [f"{i:06d}.jpg" for i in range(1, 6)]
    assert [f.name for f in seqs["car9_2"].frames] == [f"{i:06d}.jpg" for i in range(5, 9)]


def test_trackingnet(tmp_path, jpg):
    root = tmp_path / "TrackingNet"
    frames(root / "TEST" / "frames" / "vid_a", jpg, range(0, 12), "{}.jpg")  # 0-based, unpadded
    (root / "TEST" / "anno").mkdir(parents=True)
    (root / "TEST" / "anno" / "vid_a.txt").write_text(gt_lines(1))
    frames(root / "TRAIN_0" / "frames" / "vid_b", jpg, range(0, 3), "{}.jpg")
    (root / "TRAIN_0" / "anno").mkdir(parents=True)
    (root / "TRAIN_0" / "anno" / "vid_b.txt").write_text(gt_lines(3))
    assert D.detect_format(root) == "trackingnet"
    test = D.load_dataset(root)
    s = test.sequences[0]
    assert s.full_gt is False and [f.name for f in s.frames][:3] == ["0.jpg", "1.jpg", "2.jpg"]
    assert len(s) == 12 and s.frames[-1].name == "11.jpg"
    train = D.load_dataset(root, subset="TRAIN_0")
    assert train.sequences[0].full_gt and train.sequences[0].gt.shape == (3, 4)


def test_vot_polygons(tmp_path, jpg):
    root = tmp_path / "vot"
    frames(root / "ball" / "color", jpg, range(1, 4), "{:08d}.jpg")
    (root / "ball" / "groundtruth.txt").write_text("10,0,20,10,10,20,0,10\n1,1,5,1,5,5,1,5\n2,2,3,3\n")
    frames(root / "car", jpg, range(1, 3), "{:08d}.jpg")  # older VOT: frames beside groundtruth.txt
    (root / "car" / "groundtruth.txt").write_text("0,0,4,0,4,4,0,4\n0,0,4,0,4,4,0,4\n")
    (root / "list.txt").write_text("ball\ncar\n")
    assert D.detect_format(root) == "vot"
    ds = D.load_dataset(root)
    np.testing.assert_allclose(ds.sequences[0].gt, [[0, 0, 20, 20], [1, 1, 4, 4], [2, 2, 3, 3]])
    assert len(ds.sequences[1]) == 2


def test_shared_data_sequences_load():
    ds = D.load_dataset(shared(SEQUENCES))
    assert ds.format == "shared" and len(ds) == 10 and ds.num_frames == 2259 and not ds.skipped
