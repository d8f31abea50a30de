"""The `mixformerv2` CLI, headless: outputs on the sample clip, error paths, Ctrl-C, info, demo."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from mixformerv2_cpu import cli, demo
from mixformerv2_cpu.drawing import draw_distributions, draw_tracking
from mixformerv2_cpu.errors import ModelFileError

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "samples" / "sample_clip.mp4"
INIT = "127,230,70,89"           # samples/README.md
W, H, N = 640, 360, 120


class MatchTracker:
    """Fake tracker: template matching near the last box, with made-up edge distributions."""

    def __init__(self, delay: float = 0.0, **_: object) -> None:
        self.delay, self.score, self.last_prediction = delay, float("nan"), None

    def init(self, frame: np.ndarray, box) -> None:
        x, y, w, h = (int(round(v)) for v in box)
        self.box, self.tpl = (x, y, w, h), frame[y:y + h, x:x + w].copy()

    def update(self, frame: np.ndarray):
        time.sleep(self.delay)
        x, y, w, h = self.box
        m = max(w, h)
        x1, y1 = max(0, x - m), max(0, y - m)
        x2, y2 = min(frame.shape[1], x + w + m), min(frame.shape[0], y + h + m)
        res = cv2.matchTemplate(frame[y1:y2, x1:x2], self.tpl, cv2.TM_CCOEFF_NORMED)
        _, best, _, loc = cv2.minMaxLoc(res)
        self.box, self.score = (x1 + loc[0], y1 + loc[1], w, h), float(max(0.0, best))
        edges = np.array([self.box[0], self.box[1], self.box[0] + w, self.box[1] + h], float)
        pos = edges[:, None] + np.linspace(-1.5 * m, 1.5 * m, 48)[None]
        sigma = (np.array([4.0, 6.0, 10.0, 3.0]) + 20 * (1 - self.score))[:, None]
        dist = np.exp(-0.5 * ((pos - edges[:, None]) / sigma) ** 2)
        dist /= dist.sum(1, keepdims=True)
        self.last_prediction = SimpleNamespace(box=self.box, score=self.score,
                                               distributions=dist, edge_positions=pos)
        return self.score >= 0.3, self.box


def fake_factory(**kwargs):
    return MatchTracker()


def run_cli(argv, capsys, factory=fake_factory):
    code = cli.main(argv, tracker_factory=factory)
    out, err = capsys.readouterr()
    return code, out, err


def read_video(path: Path):
    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened(), f"{path} is not playable"
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return frames


def read_results(path: Path) -> np.ndarray:
    """x,y,w,h,score per frame as floats; the 6th column (state) is checked here and dropped."""
    rows = [line.split(",") for line in path.read_text().splitlines()]
    assert all(len(r) == 6 for r in rows)
    assert rows[0][5] == "init" and all(r[5] in ("tracking", "lost") for r in rows[1:])
    return np.array([r[:5] for r in rows], dtype=float)


# ---------------------------------------------------------------- headless run on the sample clip
@pytest.mark.parametrize("ext", [".mp4", ".avi"])
def test_headless_run_writes_video_and_results(tmp_path, capsys, ext):
    out, res = tmp_path / f"out{ext}", tmp_path / "out.txt"
    code, stdout, err = run_cli(["track", "--source", str(SAMPLE), "--init", INIT, "--no-show",
                                 "--output", str(out), "--results", str(res),
                                 "--show-distributions"], capsys)
    assert code == 0, err
    frames = read_video(out)
    assert len(frames) == N
    assert all(f.shape == (H, W, 3) for f in frames)
    boxes = read_results(res)
    assert boxes.shape == (N, 5)
    assert boxes[0, :4].tolist() == [127, 230, 70, 89] and np.isnan(boxes[0, 4])
    x, y, w, h, s = boxes.T
    assert (x >= 0).all() and (y >= 0).all() and (w > 0).all() and (h > 0).all()
    assert (x + w <= W).all() and (y + h <= H).all()
    assert ((s[1:] >= 0) & (s[1:] <= 1)).all()
    summary = [line for line in stdout.splitlines() if line.startswith("frames:")]
    assert len(summary) == 1 and "frames: 120" in summary[0]
    assert "mean FPS" in summary[0] and "mean score" in summary[0]
    assert err == ""                                    # no progress bar when not a terminal


def test_headless_run_on_image_folder(tmp_path, capsys):
    folder = tmp_path / "frames"
    folder.mkdir()
    cap = cv2.VideoCapture(str(SAMPLE))
    for i in range(12):
        ok, frame = cap.read()
        cv2.imwrite(str(folder / f"{i:04d}.jpg"), frame)
    cap.release()
    res = tmp_path / "r.txt"
    code, stdout, err = run_cli(["track", "-s", str(folder), "-i", INIT, "--no-show",
                                 "-r", str(res)], capsys)
    assert code == 0, err
    assert len(res.read_text().splitlines()) == 12
    assert "frames: 12" in stdout


def test_init_partly_outside_is_kept_as_the_api_keeps_it(tmp_path, capsys):
    res = tmp_path / "r.txt"
    code, _, err = run_cli(["track", "-s", str(SAMPLE), "-i", "600,300,100,100", "--no-show",
                            "-r", str(res)], capsys)
    assert code == 0, err
    assert read_results(res)[0, :4].tolist() == [600, 300, 100, 100]
    from mixformerv2_cpu.boxes import validate_box  # the rule Tracker.init applies

    assert validate_box((600, 300, 100, 100), 360, 640) == (600, 300, 100, 100)


def test_progress_line_on_a_terminal(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    code, _, err = run_cli(["track", "-s", str(SAMPLE), "-i", INIT, "--no-show",
                            "-r", str(tmp_path / "r.txt")], capsys)
    assert code == 0
    assert "120/120 frames" in err and err.endswith("\n")


# ---------------------------------------------------------------- bad input: one line, exit 2
def _bad_video(tmp_path: Path) -> str:
    path = tmp_path / "broken.mp4"
    path.write_bytes(os.urandom(4096))
    return str(path)


def _empty_dir(tmp_path: Path) -> str:
    (tmp_path / "empty").mkdir()
    return str(tmp_path / "empty")


@pytest.mark.parametrize("argv, needle", [
    (lambda t: ["--source", "97", "--init", INIT], "cannot open camera 97"),
    (lambda t: ["--source", _bad_video(t), "--init", INIT], "cannot open video"),
    (lambda t: ["--source", _empty_dir(t), "--init", INIT], "no image files"),
    (lambda t: ["--source", str(t / "nope.mp4"), "--init", INIT], "no such"),
    (lambda t: ["--source", str(SAMPLE), "--init", "1,2,3"], "four numbers"),
    (lambda t: ["--source", str(SAMPLE), "--init", "a,b,c,d"], "four numbers"),
    (lambda t: ["--source", str(SAMPLE), "--init", "10,10,0,5"], "positive"),
    (lambda t: ["--source", str(SAMPLE), "--init", "9000,9000,10,10"], "outside the 640x360"),
    (lambda t: ["--source", str(SAMPLE), "--init=-50,10,40,40"], "outside"),
    (lambda t: ["--source", str(SAMPLE), "--init", "100,100,1,1"], "too small"),
    (lambda t: ["--source", str(SAMPLE)], "--init"),
    (lambda t: ["--source", str(SAMPLE), "--init", INIT, "-o", str(t / "o.xyz")], "--output"),
    (lambda t: ["--source", str(SAMPLE), "--init", INIT, "-r", str(t / "no/r.txt")], "folder"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, argv, needle):
    code, out, err = run_cli(["track", "--no-show", *argv(tmp_path)], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert needle in lines[0]


def test_tracker_errors_are_one_line(tmp_path, capsys):
    def broken(**_):
        raise ModelFileError("model 'x' is not\na registered name")

    code, _, err = run_cli(["track", "-s", str(SAMPLE), "-i", INIT, "--no-show"], capsys, broken)
    assert code == 2
    assert err.strip() == "error: model 'x' is not a registered name"


def test_real_tracker_with_missing_model_is_one_line(tmp_path, capsys):
    code, _, err = run_cli(["track", "-s", str(SAMPLE), "-i", INIT, "--no-show",
                            "--model", str(tmp_path / "no_such_model")], capsys, None)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "no_such_model" in lines[0]


def test_argparse_errors_exit_2(capsys):
    assert cli.main(["track", "--threads", "0"]) == 2
    assert cli.main(["nonsense"]) == 2
    assert cli.main(["--version"]) == 0
    capsys.readouterr()


# ---------------------------------------------------------------- Ctrl-C keeps the video playable
CHILD = """
import signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)  # an ignored SIGINT is inherited from a parent that ignores it
sys.path.insert(0, {tests!r})
from test_cli import MatchTracker
from mixformerv2_cpu import cli
sys.exit(cli.main({argv!r}, tracker_factory=lambda **k: MatchTracker(delay=0.2)))
"""


def test_ctrl_c_finishes_the_output_video(tmp_path):
    out, res = tmp_path / "out.mp4", tmp_path / "out.txt"
    argv = ["track", "-s", str(SAMPLE), "-i", INIT, "--no-show", "-o", str(out), "-r", str(res)]
    proc = subprocess.Popen([sys.executable, "-c", CHILD.format(tests=str(ROOT / "tests"),
                                                                argv=argv)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # 0.2 s per frame: 120 frames take 24 s, so the interrupt lands mid-run even on a loaded machine;
    # right after a result line appears it also lands next to the writes, which must stay paired
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not res.exists() or
                                           len(res.read_text().splitlines()) < 3):
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "[interrupted]" in stdout
    frames = read_video(out)
    lines = res.read_text().splitlines()
    assert 0 < len(frames) < N
    assert len(frames) == len(lines)
    assert frames[0].shape == (H, W, 3)


# ---------------------------------------------------------------- info, module entry, demo
def test_info(capsys):
    code, out, _ = run_cli(["info"], capsys)
    assert code == 0
    for needle in ("mixformerv2-cpu", "numpy", "opencv", "backends:", "openvino", "onnxruntime",
                   "cpu:", "models:", "display:"):
        assert needle in out
    from mixformerv2_cpu.cpu import INTERESTING_FLAGS, cpu_flags

    flags = cpu_flags()
    assert set(flags) <= set(INTERESTING_FLAGS)
    if Path("/proc/cpuinfo").exists() and "avx2" in Path("/proc/cpuinfo").read_text():
        assert "avx2" in flags and "avx2" in out


def test_python_dash_m_entry():
    proc = subprocess.run([sys.executable, "-m", "mixformerv2_cpu", "info"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "backends:" in proc.stdout


def test_demo_is_the_track_command(monkeypatch):
    calls = []
    monkeypatch.setattr(cli, "main", lambda argv=None, **_: calls.append(argv) or 0)
    assert demo.main(["--no-show", "--init", INIT]) == 0
    assert calls == [["track", "--source", "0", "--no-show", "--init", INIT]]


def test_demo_end_to_end_on_a_file(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cli, "create_tracker", fake_factory)
    res = tmp_path / "r.txt"
    code = demo.main(["--source", str(SAMPLE), "--no-show", "--init", INIT, "-r", str(res)])
    assert code == 0
    assert len(res.read_text().splitlines()) == N
    code = demo.main(["--no-show", "--init", INIT])             # webcam 0: none here
    assert code == 2 and capsys.readouterr().err.startswith("error: cannot open camera 0")


# ---------------------------------------------------------------- drawing
def test_drawing_overlays_change_pixels():
    img = np.full((200, 300, 3), 128, np.uint8)
    pos = np.stack([np.linspace(50, 150, 32), np.linspace(30, 130, 32),
                    np.linspace(120, 220, 32), np.linspace(80, 180, 32)])
    dist = np.exp(-0.5 * ((pos - pos[:, 16:17]) / 8) ** 2)
    dist /= dist.sum(1, keepdims=True)
    out = draw_distributions(img.copy(), (100, 80, 70, 50), dist, pos)
    assert (out != img).any()
    with pytest.raises(ValueError, match="shape"):
        draw_distributions(img.copy(), (1, 1, 5, 5), dist[:3], pos[:3])
    lost = draw_tracking(img.copy(), (100, 80, 70, 50), 0.1, fps=30.0, lost=True, status="x")
    ok = draw_tracking(img.copy(), (100, 80, 70, 50), 0.9, fps=30.0)
    assert (lost != ok).any()


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["openvino", "onnxruntime"])
def test_real_tracker_on_the_sample_clip(export_small, tmp_path, capsys, backend):
    """The real Tracker (SEED-3 random-weight export: boxes are meaningless, plumbing is not)."""
    out, res = tmp_path / "real.mp4", tmp_path / "real.txt"
    code, stdout, err = run_cli(["track", "-s", str(SAMPLE), "-i", INIT, "--no-show",
                                 "--model", str(export_small), "--backend", backend,
                                 "--threads", "2", "-o", str(out), "-r", str(res),
                                 "--show-distributions"], capsys, None)
    assert code == 0, err
    assert "frames: 120" in stdout
    frames = read_video(out)
    assert len(frames) == N and frames[0].shape == (H, W, 3)
    boxes = read_results(res)
    assert boxes.shape == (N, 5)
    x, y, w, h, s = boxes.T
    assert (x >= 0).all() and (y >= 0).all() and (w > 0).all() and (h > 0).all()
    assert (x + w <= W + 1e-3).all() and (y + h <= H + 1e-3).all()
    assert ((s[1:] >= 0) & (s[1:] <= 1)).all()


def test_ctrl_c_between_the_two_writes_is_held_until_both_are_done():
    from mixformerv2_cpu.session import _interrupt_after

    saved = signal.signal(signal.SIGINT, signal.default_int_handler)
    done = []
    try:
        with pytest.raises(KeyboardInterrupt):
            with _interrupt_after():
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.01)  # the signal is handled here, inside the block
                done += ["video frame", "result line"]
    finally:
        signal.signal(signal.SIGINT, saved)
    assert done == ["video frame", "result line"]


def test_console_script_with_its_extra_missing_says_what_to_install(monkeypatch, capsys):
    from mixformerv2_cpu import extras

    def missing(name):
        raise ModuleNotFoundError("No module named 'torch'", name="torch")

    monkeypatch.setattr(extras.importlib, "import_module", missing)
    assert extras.run_with_extra("mixformerv2_export.cli", "export", "mixformerv2-export", ["--help"]) == 2
    err = capsys.readouterr().err
    assert "needs the 'export' extra (torch is not installed)" in err
    assert 'pip install torch==2.13.0 && pip install "mixformerv2-cpu[export]"' in err

    def other(name):
        raise ModuleNotFoundError("No module named 'yaml'", name="yaml")

    monkeypatch.setattr(extras.importlib, "import_module", other)
    with pytest.raises(ModuleNotFoundError):  # not a package of the extra: a real bug, not hidden
        extras.run_with_extra("mixformerv2_export.cli", "export", "mixformerv2-export", [])
