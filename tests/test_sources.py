"""Frame sources: files, folders, bad input, and the capture thread's stale-frame dropping."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from mixformerv2_cpu.session import SessionOptions, run_session
from mixformerv2_cpu.sources import (Frame, FrameSource, ImageFolderSource, LatestFrameReader,
                                     LiveSource,
                                     SourceError, VideoFileSource, open_source)

SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "sample_clip.mp4"


# ---------------------------------------------------------------- fakes: a live camera, a slow tracker
def encode(index: int, shape=(48, 64, 3)) -> np.ndarray:
    """A frame whose first pixel carries its index (low byte, high byte)."""
    img = np.full(shape, 90, np.uint8)
    img[0, 0, 0], img[0, 0, 1] = index & 0xFF, (index >> 8) & 0xFF
    return img


def decode(img: np.ndarray) -> int:
    return int(img[0, 0, 0]) | (int(img[0, 0, 1]) << 8)


class FakeCamera:
    """Produces encoded frames at a fixed rate (``grab`` blocks like a real device)."""

    def __init__(self, fps: float = 200.0, count: int | None = None) -> None:
        self.period, self.count, self.produced = 1.0 / fps, count, 0
        self._next = time.monotonic()

    def grab(self) -> np.ndarray | None:
        if self.count is not None and self.produced >= self.count:
            return None
        self._next += self.period
        delay = self._next - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        img = encode(self.produced)
        self.produced += 1
        return img


class LiveFake(FrameSource):
    """A live FrameSource over FakeCamera, read through the real LatestFrameReader."""

    live = True

    def __init__(self, camera: FakeCamera) -> None:
        self.name, self.fps = "fake-camera", 200.0
        self.reader = LatestFrameReader(camera.grab, timeout=5.0)

    @property
    def dropped(self) -> int:
        return self.reader.dropped

    def read(self) -> Frame | None:
        return self.reader.read()

    def close(self) -> None:
        self.reader.stop()


class SlowTracker:
    """Takes ``delay`` seconds per update and records which frame it was given."""

    def __init__(self, delay: float = 0.03) -> None:
        self.delay = delay
        self.seen: list[int] = []
        self.score, self.box = float("nan"), (0.0, 0.0, 1.0, 1.0)

    def init(self, frame: np.ndarray, box) -> None:
        self.seen.append(decode(frame))
        self.box = tuple(float(v) for v in box)

    def update(self, frame: np.ndarray):
        time.sleep(self.delay)
        self.seen.append(decode(frame))
        self.score = 0.9
        return True, self.box


# ---------------------------------------------------------------- capture thread
def test_capture_thread_returns_newest_frame_and_drops_stale_ones():
    camera = FakeCamera(fps=200.0)
    reader = LatestFrameReader(camera.grab, timeout=5.0)
    try:
        got = []
        for _ in range(12):
            newest_before = reader.captured - 1          # newest frame available right now
            frame = reader.read()
            assert frame is not None
            assert decode(frame.image) == frame.index    # the image is the frame it claims
            assert frame.index >= newest_before          # never an older frame than available
            got.append(frame.index)
            time.sleep(0.03)                             # a tracker slower than the camera
        assert got == sorted(set(got))                   # strictly newer every time
        gaps = np.diff(got)
        assert (gaps > 1).sum() >= len(gaps) // 2        # frames in between were dropped
        assert reader.dropped > 0
        # every grabbed frame was either returned or dropped (one may still be pending)
        assert reader.captured - len(got) - reader.dropped in (0, 1)
    finally:
        reader.stop()


def test_capture_thread_ends_with_the_source():
    camera = FakeCamera(fps=1000.0, count=5)
    reader = LatestFrameReader(camera.grab, timeout=5.0)
    time.sleep(0.1)                                      # all 5 grabbed, none read
    frame = reader.read()
    assert frame is not None and frame.index == 4        # only the newest survives
    assert reader.read() is None
    assert reader.dropped == 4


def test_a_crashing_camera_is_an_error_not_the_end_of_the_stream():
    grabs = iter([np.zeros((20, 20, 3), np.uint8)])

    def grab() -> np.ndarray | None:
        try:
            return next(grabs)
        except StopIteration:
            raise OSError("USB camera unplugged") from None

    reader = LatestFrameReader(grab, timeout=5.0, name="camera 0")
    time.sleep(0.1)
    assert reader.read() is not None                      # the frame grabbed before the crash
    with pytest.raises(SourceError, match="camera 0 failed: USB camera unplugged"):
        reader.read()
    reader.stop()


def test_capture_thread_times_out_on_a_stalled_source():
    release = threading.Event()

    def stalled() -> np.ndarray | None:
        release.wait(5.0)
        return None

    reader = LatestFrameReader(stalled, timeout=0.2)
    t0 = time.monotonic()
    assert reader.read() is None
    assert time.monotonic() - t0 < 2.0
    release.set()
    reader.stop()


def test_session_with_slow_tracker_processes_newest_frames(tmp_path):
    source = LiveFake(FakeCamera(fps=200.0, count=120))  # 0.6 s of camera frames
    tracker = SlowTracker(delay=0.03)
    results = tmp_path / "live.txt"
    opts = SessionOptions(init=(5, 5, 20, 20), results=results)
    try:
        summary = run_session(source, tracker, opts)
    finally:
        source.close()
    seen = tracker.seen
    assert seen == sorted(set(seen))                     # always forward in time
    assert summary.frames == len(seen) < 120             # far fewer processed than produced
    assert summary.dropped > 0
    assert max(np.diff(seen)) > 1
    assert len(results.read_text().splitlines()) == summary.frames


# ---------------------------------------------------------------- files and folders
def test_video_file_source_reads_every_frame():
    with open_source(str(SAMPLE)) as src:
        assert isinstance(src, VideoFileSource) and not src.live
        frames = list(src)
    assert len(frames) == 120 == src.frame_count
    assert [f.index for f in frames] == list(range(120))
    assert frames[0].image.shape == (360, 640, 3) and frames[0].image.dtype == np.uint8
    assert src.fps == pytest.approx(24.0)


def test_image_folder_natural_order_grey_and_unreadable(tmp_path, caplog):
    for i in (10, 2, 1):
        cv2.imwrite(str(tmp_path / f"img{i}.png"), np.full((20, 30), i, np.uint8))  # grey
    (tmp_path / "img5.jpg").write_bytes(b"not an image")
    (tmp_path / "notes.txt").write_text("ignored")
    src = open_source(str(tmp_path))
    assert isinstance(src, ImageFolderSource)
    assert [p.name for p in src.paths] == ["img1.png", "img2.png", "img5.jpg", "img10.png"]
    frames = list(src)
    assert [int(f.image[0, 0, 0]) for f in frames] == [1, 2, 10]
    assert all(f.image.shape == (20, 30, 3) for f in frames)
    assert [f.index for f in frames] == [0, 1, 2]
    assert "unreadable image" in caplog.text


@pytest.mark.parametrize("make, message", [
    (lambda d: d, "no image files"),                                          # empty folder
    (lambda d: (d / "a.txt").write_text("x") and d, "no image files"),        # no images
    (lambda d: d / "missing.mp4", "no such"),                                 # missing file
    (lambda d: (d / "bad.mp4").write_bytes(b"\x00garbage" * 500) and d / "bad.mp4", "cannot open video"),
    (lambda d: (d / "empty.avi").write_bytes(b"") and d / "empty.avi", "cannot"),
    (lambda d: cv2.imwrite(str(d / "one.png"), np.zeros((4, 4), np.uint8)) and d / "one.png", "single image"),
])
def test_bad_sources_raise_one_line_errors(tmp_path, make, message):
    target = make(tmp_path)
    with pytest.raises(SourceError, match=message) as info:
        open_source(str(target))
    assert "\n" not in str(info.value)


def test_camera_that_does_not_open():
    with pytest.raises(SourceError, match="cannot open camera 97"):
        open_source("97")


def test_live_source_class_over_a_fast_stream():
    """The real LiveSource (cv2 capture + thread); a file decodes faster than we consume."""
    src = LiveSource(str(SAMPLE))
    got = []
    try:
        while True:
            frame = src.read()
            if frame is None:
                break
            assert frame.image.shape == (360, 640, 3)
            got.append(frame.index)
            time.sleep(0.02)
    finally:
        src.close()
    # frame 0 itself may be replaced before the first read() on a busy machine: it then counts as dropped
    assert got == sorted(set(got))
    assert len(got) < 120 and src.dropped > 0
    assert got[-1] + 1 == len(got) + src.dropped       # every frame is returned or counted; the last is never dropped


def test_stream_url_that_does_not_open():
    with pytest.raises(SourceError, match="cannot open stream rtsp://127.0.0.1:9/x"):
        open_source("rtsp://127.0.0.1:9/x")
