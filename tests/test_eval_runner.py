"""Evaluation runner: peers, tracker specs, parallel runs, resume, failures, GOT-10k toolkit, Dask."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import PEERS, shared
from mixformerv2_benchmarks import accuracy as A
from mixformerv2_benchmarks import peers as P
from mixformerv2_benchmarks.datasets import load_dataset

PEERS_DIR = PEERS
FAKE = '''
import os
import cv2
import numpy as np


class Fake:
    """Deterministic: box of the bright pixels, shifted right by (frame index % 3) px."""

    def __init__(self, threads=None):
        self.score = float("nan")

    def init(self, frame, box):
        self.i, self.box, self.x0 = 0, tuple(box), box[0]

    def update(self, frame):
        self.i += 1
        pts = cv2.findNonZero((cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) > 150).astype(np.uint8))
        x, y, w, h = cv2.boundingRect(pts)
        self.box, self.score = (x + self.i % 3, y, w, h), 1.0 - (self.i % 3) / 10
        return True, self.box


class Crashy(Fake):
    """Raises on the sequence whose target starts near the left border."""

    def update(self, frame):
        if self.x0 < 10 and self.i >= 2:
            raise RuntimeError("boom on purpose")
        return super().update(frame)


class Dying(Fake):
    """Kills its worker process on that sequence."""

    def update(self, frame):
        if self.x0 < 10:
            os._exit(3)
        return super().update(frame)
'''


def write_sequence(folder: Path, x0: int, n: int = 10, img_dir: str = "img", fmt: str = "{:05d}.jpg",
                   gt_name: str = "groundtruth.txt") -> np.ndarray:
    """A bright 16x12 rectangle moving 3 px a frame on a noisy 96x72 background."""
    rng = np.random.default_rng(x0)
    (folder / img_dir).mkdir(parents=True, exist_ok=True)
    boxes = []
    for i in range(n):
        img = rng.integers(20, 60, (72, 96, 3)).astype(np.uint8)
        x, y = x0 + 3 * i, 20 + i
        img[y:y + 12, x:x + 16] = 230
        cv2.imwrite(str(folder / img_dir / fmt.format(i + 1)), img)
        boxes.append((x, y, 16, 12))
    np.savetxt(folder / gt_name, np.array(boxes, float), fmt="%.2f", delimiter=",")
    return np.array(boxes, float)


@pytest.fixture()
def fake(tmp_path_factory, monkeypatch) -> str:
    """Module name of the fake trackers, importable here, in spawned workers and in Dask workers."""
    d = tmp_path_factory.getbasetemp() / "fake_trackers"
    d.mkdir(exist_ok=True)
    (d / "mfv2_fake_trackers.py").write_text(FAKE)
    monkeypatch.syspath_prepend(str(d))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(d), os.environ.get("PYTHONPATH", "")]))
    return "mfv2_fake_trackers"


@pytest.fixture()
def seqs(tmp_path) -> Path:
    root = tmp_path / "seqs"
    for name, x0 in (("a", 30), ("b", 20), ("c", 4)):
        write_sequence(root / name, x0)
    return root


def test_parse_tracker_specs():
    assert A.parse_tracker("kcf", 2) == A.TrackerSpec("kcf", "kcf", 2)
    assert A.parse_tracker("MIL:3", 2) == A.TrackerSpec("mil", "MIL", 3)
    assert A.parse_tracker("default", 1) == A.TrackerSpec("mixformerv2", None, 1)
    assert A.parse_tracker("ov=default:4", 1) == A.TrackerSpec("ov", None, 4)
    assert A.parse_tracker("pkg.mod:Fake", 1) == A.TrackerSpec("Fake", "pkg.mod:Fake", 1)
    assert A.parse_tracker("f=pkg.mod:Fake:2", 1) == A.TrackerSpec("f", "pkg.mod:Fake", 2)
    assert A.parse_tracker("/x/exports/small_int8", 1).label == "small_int8"


def test_peers_report_why_they_are_unavailable(tmp_path, monkeypatch):
    monkeypatch.delenv(P.ENV_PEERS_DIR, raising=False)
    with pytest.raises(P.PeerUnavailable, match=P.ENV_PEERS_DIR):
        P.make_peer("nanotrack")
    with pytest.raises(P.PeerUnavailable, match="vitTracker.onnx"):
        P.make_peer("vittrack", peers_dir=tmp_path)
    with pytest.raises(ValueError, match="unknown peer"):
        P.make_peer("boosting")
    avail = P.available_peers(tmp_path)
    assert set(avail) == set(P.PEERS) and "nanotrack_backbone_sim.onnx" in avail["nanotrack"]
    if hasattr(cv2, "TrackerKCF"):
        assert avail["kcf"] is None
    monkeypatch.delattr(cv2, "TrackerCSRT", raising=False)
    with pytest.raises(P.PeerUnavailable, match="opencv-contrib-python"):
        P.make_peer("csrt")


@pytest.mark.parametrize("name", P.PEERS)
def test_every_peer_tracks_a_moving_rectangle(tmp_path, name):
    for f in P.PEER_FILES.get(name, ()):
        shared(PEERS_DIR / f)  # peer models that only ../shared holds: skip naming the missing file
    gt = write_sequence(tmp_path, 30, n=4)
    trk = P.make_tracker(name, threads=1, peers_dir=PEERS_DIR)
    trk.init(cv2.imread(str(tmp_path / "img" / "00001.jpg")), tuple(gt[0]))
    ok, box = trk.update(cv2.imread(str(tmp_path / "img" / "00002.jpg")))
    assert len(box) == 4 and all(math.isfinite(v) for v in box)
    assert math.isfinite(trk.score) == (name in P.PEER_FILES)


def _box_files(root: Path) -> dict:
    return {p.relative_to(root).as_posix(): p.read_text() for p in sorted(root.rglob("*.txt"))
            if not p.name.endswith(("_time.txt", "_score.txt"))}


def test_parallel_run_resume_and_reports(seqs, tmp_path, fake, capsys):
    out = tmp_path / "out"
    argv = ["--dataset", str(seqs), "--tracker", f"fake={fake}:Fake", "--tracker", "kcf:1",
            "--workers", "2", "--out", str(out), "--no-progress"]
    assert A.main(argv) == 0
    root = out / "seqs"
    assert "| Tracker | AUC |" in capsys.readouterr().out
    a = np.loadtxt(root / "fake" / "a.txt", delimiter="\t")
    assert a.shape == (10, 4) and tuple(a[0]) == (30, 20, 16, 12) and tuple(a[1]) == (34, 21, 16, 12)
    np.testing.assert_allclose(np.loadtxt(root / "fake" / "got10k" / "a" / "a_001.txt", delimiter=","), a)
    assert np.loadtxt(root / "fake" / "got10k" / "a" / "a_time.txt").shape == (10,)
    assert np.loadtxt(root / "fake" / "a_score.txt")[1] == pytest.approx(0.9)
    summary = json.loads((root / "summary.json").read_text())
    assert set(summary["trackers"]) == {"fake", "kcf"}
    fake_overall = summary["trackers"]["fake"]["overall"]
    assert fake_overall["sequences"] == 3 and fake_overall["frames"] == 30 and fake_overall["auc"] > 0.7
    assert set(summary["trackers"]["fake"]["sequences"]["b"]) >= {"auc", "precision", "norm_precision",
                                                                  "ao", "sr50", "sr75", "fps"}
    assert "### AUC (%) per sequence" in (root / "summary.md").read_text()
    for png in ("success.png", "precision.png", "norm_precision.png"):
        assert (root / png).stat().st_size > 1000

    # resume: nothing is rerun, then only the removed result
    stamps = {p: p.stat().st_mtime_ns for p in root.rglob("*.txt")}
    assert A.main(argv) == 0
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    (root / "fake" / "b.txt").unlink()
    assert A.main([a if a != "2" else "1" for a in argv]) == 0  # same, one worker (in-process)
    assert (root / "fake" / "b.txt").is_file()
    assert (root / "fake" / "a.txt").stat().st_mtime_ns == stamps[root / "fake" / "a.txt"]
    assert (root / "kcf" / "c.txt").stat().st_mtime_ns == stamps[root / "kcf" / "c.txt"]


def test_a_crashing_sequence_keeps_the_others(seqs, tmp_path, fake, capsys):
    out = tmp_path / "out"
    rc = A.main(["--dataset", str(seqs), "--tracker", f"crashy={fake}:Crashy", "--out", str(out), "--no-progress"])
    assert rc == 1
    root = out / "seqs" / "crashy"
    assert (root / "a.txt").is_file() and (root / "b.txt").is_file() and not (root / "c.txt").exists()
    assert "boom on purpose" in (root / "c.error.txt").read_text()
    summary = json.loads((out / "seqs" / "summary.json").read_text())
    assert "boom on purpose" in summary["trackers"]["crashy"]["failed"]["c"]
    assert summary["trackers"]["crashy"]["overall"]["sequences"] == 2
    assert "FAILED: crashy on c" in capsys.readouterr().err


def test_a_dying_worker_process_keeps_the_others(seqs, tmp_path, fake):
    ds = load_dataset(seqs)
    spec = A.TrackerSpec("dying", f"{fake}:Dying", 1)
    summary, failures = A.evaluate(ds, [spec], tmp_path / "out", workers=2, progress=False, plots=False)
    assert [f.seq_name for f in failures] == ["c"] and "worker process died" in failures[0].error
    assert summary["trackers"]["dying"]["overall"]["sequences"] == 2


def test_bad_sequences_are_named_and_skipped_or_fatal(seqs, tmp_path, fake, capsys):
    (seqs / "b" / "img" / "00004.jpg").unlink()
    with open(seqs / "c" / "groundtruth.txt", "a") as f:
        f.write("1,1,1,1\n")
    argv = ["--dataset", str(seqs), "--tracker", f"{fake}:Fake", "--out", str(tmp_path / "o"), "--no-progress"]
    assert A.main(argv) == 0
    err = capsys.readouterr().err
    assert "skipped sequence b" in err and "00004.jpg" in err
    assert "skipped sequence c" in err and "11 lines but there are 10 frames" in err
    summary = json.loads((tmp_path / "o" / "seqs" / "summary.json").read_text())
    assert summary["sequences"] == ["a"] and set(summary["skipped_sequences"]) == {"b", "c"}
    assert A.main(argv + ["--strict"]) == 2
    assert "sequence b" in capsys.readouterr().err


def test_unavailable_tracker_fails_before_running(seqs, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv(P.ENV_PEERS_DIR, raising=False)
    rc = A.main(["--dataset", str(seqs), "--tracker", "nanotrack", "--peers-dir", str(tmp_path),
                 "--out", str(tmp_path / "o"), "--no-progress"])
    assert rc == 2 and "nanotrack_backbone_sim.onnx" in capsys.readouterr().err


def test_got10k_results_match_the_got10k_toolkit(tmp_path, fake):
    """Our GOT-10k files, read by the toolkit's own report(), give our AO / SR."""
    pytest.importorskip("six")
    from got10k.experiments import ExperimentGOT10k

    root = tmp_path / "GOT10k"
    names = []
    for k, x0 in enumerate((30, 20, 45)):
        name = f"GOT-10k_Val_{k + 1:06d}"
        d = root / "val" / name
        write_sequence(d, x0, n=8, img_dir=".", fmt="{:08d}.jpg")
        cover = [8, 8, 0, 5, 8, 8, 3, 8] if k == 1 else [8] * 8
        (d / "cover.label").write_text("".join(f"{c}\n" for c in cover))
        (d / "absence.label").write_text("".join(f"{int(c == 0)}\n" for c in cover))
        (d / "cut_by_image.label").write_text("0\n" * 8)
        (d / "meta_info.ini").write_text("[METAINFO]\nobject_class: box\nresolution: (96, 72)\n")
        names.append(name)
    (root / "val" / "list.txt").write_text("\n".join(names) + "\n")
    ds = load_dataset(root)
    summary, failures = A.evaluate(ds, [A.TrackerSpec("fake", f"{fake}:Fake", 1)], tmp_path / "out",
                                   progress=False, plots=False)
    assert not failures and summary["protocol"]["first_frame"] == "exclude"
    exp = ExperimentGOT10k(str(root), subset="val", result_dir=str(tmp_path / "res"),
                           report_dir=str(tmp_path / "rep"))
    (tmp_path / "res" / "GOT-10k").mkdir(parents=True)
    (tmp_path / "res" / "GOT-10k" / "fake").symlink_to(tmp_path / "out" / "got10k_val" / "fake" / "got10k")
    perf = exp.report(["fake"])["fake"]
    ours = summary["trackers"]["fake"]
    assert ours["overall"]["ao"] == pytest.approx(perf["overall"]["ao"], abs=1e-9)
    assert ours["overall"]["sr50"] == pytest.approx(perf["overall"]["sr"], abs=1e-9)
    assert 0.3 < ours["overall"]["ao"] < 0.99
    for name in names:
        assert ours["sequences"][name]["ao"] == pytest.approx(perf["seq_wise"][name]["ao"], abs=1e-9)


def test_dask_cluster_gives_the_local_results(seqs, tmp_path, fake):
    distributed = pytest.importorskip("distributed")
    ds = load_dataset(seqs)
    specs = [A.TrackerSpec("fake", f"{fake}:Fake", 1), A.TrackerSpec("kcf", "kcf", 1)]
    A.evaluate(ds, specs, tmp_path / "local", workers=1, progress=False, plots=False)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        summary, failures = A.evaluate(ds, specs, tmp_path / "dask", dask=cluster.scheduler_address,
                                       progress=False, plots=False)
    assert not failures
    local, remote = _box_files(tmp_path / "local" / "seqs"), _box_files(tmp_path / "dask" / "seqs")
    assert len(local) == 12 and local == remote  # 2 trackers x 3 sequences x (pytracking + GOT-10k)
    assert summary["trackers"]["fake"]["overall"]["sequences"] == 3


def test_first_frame_only_ground_truth_gives_results_without_scores(tmp_path, fake):
    """TrackingNet / GOT-10k test: files for the evaluation server, scores n/a (null in JSON)."""
    split = tmp_path / "TrackingNet" / "TEST"
    write_sequence(split / "frames" / "vid", 30, n=5, img_dir=".", fmt="{}.jpg", gt_name="gt.txt")
    (split / "anno").mkdir()
    (split / "frames" / "vid" / "gt.txt").rename(split / "anno" / "vid.txt")
    for i in range(1, 6):  # TrackingNet frames are 0-based
        (split / "frames" / "vid" / f"{i}.jpg").rename(split / "frames" / "vid" / f"{i - 1}.jpg")
    out = tmp_path / "out"
    assert A.main(["--dataset", str(tmp_path / "TrackingNet"), "--tracker", f"f={fake}:Fake",
                   "--out", str(out), "--no-progress"]) == 0
    root = out / "trackingnet_test"
    assert np.loadtxt(root / "f" / "vid.txt", delimiter="\t").shape == (5, 4)
    summary = json.loads((root / "summary.json").read_text())
    assert summary["trackers"]["f"]["overall"]["auc"] is None
    assert summary["trackers"]["f"]["sequences"]["vid"]["frames"] == 5
    assert "| f | n/a |" in (root / "summary.md").read_text()


def test_precision_reaches_the_tracker_and_unexported_precisions_fail_fast(export_small, seqs, tmp_path, capsys):
    trk = P.make_tracker(str(export_small), threads=1, backend="onnxruntime", precision="fp32")
    assert (trk.engine.backend, trk.engine.precision) == ("onnxruntime", "fp32")
    # the export has fp32 graphs only: asking the runner for int8 names the problem before any worker starts
    rc = A.main(["--dataset", str(seqs), "--tracker", str(export_small), "--backend", "onnxruntime",
                 "--precision", "int8", "--out", str(tmp_path / "out"), "--no-progress"])
    assert rc == 2
    assert "int8" in capsys.readouterr().err


def test_resume_refuses_results_made_with_other_settings(export_small, seqs, tmp_path, capsys):
    """The same label and --out with another precision must not mix old results into the new summary."""
    out = tmp_path / "out"
    base = ["--dataset", str(seqs), "--tracker", f"m={export_small}", "--tracker", "kcf", "--backend", "onnxruntime",
            "--out", str(out), "--no-progress", "--no-plots", "--sequences", "a"]
    assert A.main(base + ["--precision", "fp32"]) == 0
    settings = json.loads((out / "seqs" / "m" / "settings.json").read_text())
    assert settings == {"target": str(export_small), "backend": "onnxruntime", "precision": "fp32", "preset": None}
    assert json.loads((out / "seqs" / "kcf" / "settings.json").read_text()) == {"target": "kcf"}
    capsys.readouterr()
    assert A.main(base + ["--precision", "auto"]) == 2
    err = capsys.readouterr().err
    assert "precision='fp32' there, 'auto' now" in err and "--no-resume" in err
    assert A.main(base + ["--precision", "fp32"]) == 0  # same settings: resumes
    assert A.main(base + ["--precision", "auto", "--no-resume"]) == 0  # rerun replaces them
    assert json.loads((out / "seqs" / "m" / "settings.json").read_text())["precision"] == "auto"


def test_start_sequences_cut_each_sequence_at_its_fractions():
    from mixformerv2_benchmarks.datasets.records import Sequence
    from mixformerv2_benchmarks.starts import start_positions, start_sequences

    gt = np.array([[i, 0, 5, 5] for i in range(40)], float)
    gt[20:23] = np.nan  # absent at the 50 % start: moved to the next visible frame
    seq = Sequence("s", [Path(f"{i}.jpg") for i in range(40)], gt)
    first_only = Sequence("g", [Path(f"{i}.jpg") for i in range(40)], gt[:1], full_gt=False)
    runs, reasons = start_sequences([seq, first_only], [0.0, 0.25, 0.5, 0.8])
    assert [r.name for r in runs] == ["s", "s@0.25", "s@0.5", "g"]
    assert [r.frames[0].name for r in runs] == ["0.jpg", "10.jpg", "23.jpg", "0.jpg"]
    np.testing.assert_array_equal(runs[2].gt[0], [23, 0, 5, 5])
    assert len(runs[1]) == 30 and runs[1].gt.shape == (30, 4) and len(seq) == 40  # the original is untouched
    assert reasons == ["s@0.8: fewer than 10 frames left after a visible target",
                       "g@0.25: only the first frame's box is known", "g@0.5: only the first frame's box is known",
                       "g@0.8: only the first frame's box is known"]
    _, same = start_sequences([seq], [0.5, 0.51])  # both land on frame 23
    assert same == ["s@0.51: starts at frame 23, as another start of s"]
    for bad in (["1"], ["-0.1"], ["0.5", "0.5"], ["x"], []):
        with pytest.raises(ValueError, match="start positions must be"):
            start_positions(bad)


def test_starts_run_each_sequence_again_from_later_frames(tmp_path, fake, capsys):
    seqs = tmp_path / "long"
    for name, x0 in (("a", 4), ("b", 8)):
        write_sequence(seqs / name, x0, n=24)
    out = tmp_path / "out"
    argv = ["--dataset", str(seqs), "--tracker", f"fake={fake}:Fake", "--out", str(out), "--no-progress",
            "--no-plots", "--starts", "0,0.5"]
    assert A.main(argv) == 0
    root = out / "long" / "fake"
    a, a_half = (np.loadtxt(root / f, delimiter="\t") for f in ("a.txt", "a@0.5.txt"))
    gt = np.loadtxt(seqs / "a" / "groundtruth.txt", delimiter=",")
    assert a.shape == (24, 4) and a_half.shape == (12, 4)
    np.testing.assert_allclose(a_half[0], gt[12])  # initialised on the ground truth of frame 12
    summary = json.loads((out / "long" / "summary.json").read_text())["trackers"]["fake"]
    assert set(summary["sequences"]) == {"a", "b", "a@0.5", "b@0.5"}
    assert summary["overall"]["sequences"] == 4 and summary["overall"]["frames"] == 72
    code = A.main(["--dataset", str(seqs), "--tracker", f"fake={fake}:Fake", "--out", str(tmp_path / "o2"),
                   "--protocol", "recovery", "--starts", "0,0.5"])
    assert code == 2 and "--starts is for the one-pass protocol" in capsys.readouterr().err
