"""Frame sources for the CLI and the demo: camera index, video file, image folder, stream URL.

Every source yields :class:`Frame` objects (a BGR uint8 ``H x W x 3`` image plus the index
the frame had in the source and the time it was captured).

Live sources (cameras, RTSP/HTTP streams) are read by a :class:`LatestFrameReader`: a
background thread that keeps grabbing frames and keeps only the newest one, so when the
tracker is slower than the camera the frames in between are dropped instead of queueing up
(latency stays at about one tracker step). Files and folders are read in order, every frame.

Nothing here draws or shows anything; errors are :class:`SourceError` with one-line messages.
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Callable, Iterator

import cv2
import numpy as np

from .errors import TrackerError
from .frames import as_bgr

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
STREAM_PREFIXES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://")


class SourceError(TrackerError, RuntimeError):
    """A frame source that cannot be opened or read (message is one line)."""


@dataclass(frozen=True)
class Frame:
    """One frame: ``image`` BGR uint8 (H, W, 3), ``index`` in the source, capture ``timestamp``.

    For live sources ``index`` counts every frame the capture thread grabbed, so gaps between
    the indices of consecutive frames returned by ``read()`` are the frames that were dropped.
    """

    image: np.ndarray
    index: int
    timestamp: float


@contextlib.contextmanager
def quiet_opencv() -> Iterator[None]:
    """Silence OpenCV's and FFmpeg's console messages while opening a capture.

    A camera that does not open or a broken file otherwise prints several ``[ WARN ]`` or
    ``moov atom not found`` lines before our one-line error. FFmpeg writes straight to the
    process's stderr, so file descriptor 2 is pointed at /dev/null for the duration (only
    around opening; everything is restored). Not silenced when this module logs at DEBUG
    level (``mixformerv2 -vv``).
    """
    if log.isEnabledFor(logging.DEBUG):
        yield
        return
    log_api = getattr(getattr(cv2, "utils", None), "logging", None)
    old_level = log_api.getLogLevel() if log_api is not None else None
    saved_fd: int | None = None
    try:
        if log_api is not None:
            log_api.setLogLevel(log_api.LOG_LEVEL_SILENT)
        try:
            sys.stderr.flush()
            saved_fd = os.dup(2)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 2)
            os.close(devnull)
        except (OSError, ValueError, AttributeError):
            saved_fd = None
        yield
    finally:
        if saved_fd is not None:
            os.dup2(saved_fd, 2)
            os.close(saved_fd)
        if log_api is not None:
            log_api.setLogLevel(old_level)


def _to_bgr(image: np.ndarray) -> np.ndarray:
    """16-bit or float images read from disk -> uint8, then the runtime's one frame rule (frames.as_bgr)."""
    if image.dtype != np.uint8:
        if image.dtype == np.uint16:
            image = (image >> 8).astype(np.uint8)
        else:
            image = np.clip(image, 0, 255).astype(np.uint8)
    return as_bgr(image)


class FrameSource:
    """Base class: ``read()`` returns the next :class:`Frame` or None at the end.

    Attributes: ``name`` (what the user passed), ``live`` (True for cameras and streams),
    ``fps`` (frames per second the source reports, or None), ``frame_count`` (known length
    of a file/folder, else None), ``dropped`` (frames skipped by the capture thread).
    """

    name: str = ""
    live: bool = False
    fps: float | None = None
    frame_count: int | None = None

    @property
    def dropped(self) -> int:
        """Frames skipped so far (always 0 for files and folders)."""
        return 0

    def read(self) -> Frame | None:
        """The next frame, or None when the source has ended."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the underlying capture (idempotent)."""

    def __iter__(self) -> Iterator[Frame]:
        while True:
            frame = self.read()
            if frame is None:
                return
            yield frame

    def __enter__(self) -> "FrameSource":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class VideoFileSource(FrameSource):
    """A video file read with ``cv2.VideoCapture``, every frame in order.

    Raises SourceError if the file does not exist, cannot be opened, or has no readable frame.
    """

    def __init__(self, path: str | Path) -> None:
        self.name = str(path)
        if not Path(path).is_file():
            raise SourceError(f"video file not found: {path}")
        with quiet_opencv():
            self._cap = cv2.VideoCapture(str(path))
            opened = self._cap.isOpened()
            ok, first = self._cap.read() if opened else (False, None)
        if not opened:
            raise SourceError(f"cannot open video {path} (not a video OpenCV can read)")
        if not ok or first is None:
            self._cap.release()
            raise SourceError(f"cannot read any frame from video {path}")
        self._pending: np.ndarray | None = first
        fps = self._cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and 0 < fps < 1000 else None
        count = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT))
        self.frame_count = count if count > 0 else None
        self._index = 0

    def read(self) -> Frame | None:
        if self._pending is not None:
            image, self._pending = self._pending, None
        else:
            ok, image = self._cap.read()
            if not ok or image is None:
                return None
        frame = Frame(_to_bgr(image), self._index, time.monotonic())
        self._index += 1
        return frame

    def close(self) -> None:
        self._cap.release()


def _natural_key(path: Path) -> list:
    """Sort key so that img2.png comes before img10.png."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", path.name)]


class ImageFolderSource(FrameSource):
    """The images of a folder (by extension), in natural filename order.

    Raises SourceError if the folder has no image. Unreadable images are skipped with a warning.
    """

    def __init__(self, folder: str | Path, fps: float | None = None) -> None:
        self.name = str(folder)
        folder = Path(folder)
        self.paths = sorted(
            (p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS),
            key=_natural_key,
        )
        if not self.paths:
            raise SourceError(
                f"no image files in folder {folder} (looked for {', '.join(IMAGE_EXTENSIONS)})"
            )
        self.frame_count = len(self.paths)
        self.fps = fps
        self._next = 0
        self._index = 0

    def read(self) -> Frame | None:
        while self._next < len(self.paths):
            path = self.paths[self._next]
            self._next += 1
            image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
            if image is None:
                log.warning("skipping unreadable image %s", path)
                continue
            frame = Frame(_to_bgr(image), self._index, time.monotonic())
            self._index += 1
            return frame
        return None


class LatestFrameReader:
    """Capture thread that keeps only the newest frame of a live source.

    ``grab`` is called in a loop on a background thread; it returns the next image (blocking
    as long as the device needs) or None when the source has ended. Each grabbed image gets
    the next index; an image not yet taken by :meth:`read` when a newer one arrives is dropped.

    :meth:`read` returns the newest frame not yet returned, waiting for one if needed, or None
    once the source has ended (or ``timeout`` seconds passed without a new frame).
    """

    def __init__(
        self,
        grab: Callable[[], np.ndarray | None],
        timeout: float | None = 10.0,
        name: str = "capture",
    ) -> None:
        self._grab = grab
        self._timeout = timeout
        self._cond = threading.Condition()
        self._latest: Frame | None = None
        self._last_returned = -1
        self._captured = 0
        self._dropped = 0
        self._ended = False
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    @property
    def captured(self) -> int:
        """Frames grabbed so far; the newest available frame has index ``captured - 1``."""
        with self._cond:
            return self._captured

    @property
    def dropped(self) -> int:
        """Frames replaced by a newer one before anybody read them."""
        with self._cond:
            return self._dropped

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                image = self._grab()
                if image is None:
                    break
                frame = Frame(image, self._captured, time.monotonic())
                with self._cond:
                    if self._latest is not None and self._latest.index > self._last_returned:
                        self._dropped += 1
                    self._latest = frame
                    self._captured += 1
                    self._cond.notify_all()
        except Exception as exc:  # noqa: BLE001 - reported to the reader thread
            log.error("capture thread failed: %s", exc)
            self._error = exc
        finally:
            with self._cond:
                self._ended = True
                self._cond.notify_all()

    def read(self) -> Frame | None:
        """The newest unread frame (waits for one), or None when the source has ended."""
        deadline = None if self._timeout is None else time.monotonic() + self._timeout
        with self._cond:
            while True:
                latest = self._latest
                if latest is not None and latest.index > self._last_returned:
                    self._last_returned = latest.index
                    return latest
                if self._ended:
                    if self._error is not None:  # a crashing camera is not the end of the stream
                        raise SourceError(f"{self._thread.name} failed: {self._error}") from self._error
                    return None
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    log.warning("no new frame for %.1f s; treating the source as ended",
                                self._timeout)
                    return None
                self._cond.wait(remaining)

    def stop(self, join_timeout: float = 2.0) -> None:
        """Ask the thread to stop and wait (briefly) for it."""
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(join_timeout)


class LiveSource(FrameSource):
    """A camera or network stream, read by a :class:`LatestFrameReader` (stale frames dropped)."""

    live = True

    def __init__(self, spec: int | str, open_timeout: float = 10.0) -> None:
        self.name = str(spec)
        what = f"camera {spec}" if isinstance(spec, int) else f"stream {spec}"
        with quiet_opencv():
            self._cap = cv2.VideoCapture(spec)
            opened = self._cap.isOpened()
            ok, first = self._cap.read() if opened else (False, None)
        if not opened:
            raise SourceError(f"cannot open {what}")
        if not ok or first is None:
            self._cap.release()
            raise SourceError(f"{what} opened but delivered no frame")
        fps = self._cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and 0 < fps < 1000 else None
        self._first: np.ndarray | None = _to_bgr(first)
        self._lock = threading.Lock()
        self._reader = LatestFrameReader(self._grab, timeout=open_timeout, name=f"capture-{spec}")

    def _grab(self) -> np.ndarray | None:
        if self._first is not None:
            image, self._first = self._first, None
            return image
        with self._lock:
            if not self._cap.isOpened():
                return None
            ok, image = self._cap.read()
        return _to_bgr(image) if ok and image is not None else None

    @property
    def dropped(self) -> int:
        return self._reader.dropped

    def read(self) -> Frame | None:
        return self._reader.read()

    def close(self) -> None:
        self._reader.stop()
        with self._lock:
            self._cap.release()


def open_source(spec: str | int) -> FrameSource:
    """Open what the user named: a camera index ("0"), a stream URL, an image folder or a video.

    Raises SourceError (one-line message) when it cannot be opened or holds no frame.
    """
    text = str(spec).strip()
    if re.fullmatch(r"\d+", text):
        return LiveSource(int(text))
    if text.lower().startswith(STREAM_PREFIXES):
        return LiveSource(text)
    path = Path(text).expanduser()
    if path.is_dir():
        return ImageFolderSource(path)
    if path.is_file():
        if path.suffix.lower() in IMAGE_EXTENSIONS:
            raise SourceError(f"{path} is a single image; pass the folder that holds the frames")
        return VideoFileSource(path)
    raise SourceError(f"no such camera index, stream URL, folder or video file: {text}")


__all__ = [
    "Frame",
    "FrameSource",
    "ImageFolderSource",
    "LatestFrameReader",
    "LiveSource",
    "SourceError",
    "VideoFileSource",
    "open_source",
]
