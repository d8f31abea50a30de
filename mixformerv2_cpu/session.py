"""The tracking session behind ``mixformerv2 track`` and the webcam demo (``demo.py``).

:func:`run_session` runs one tracker over one frame source, either

* interactive (a window): the target is picked with a mouse box unless an init box is given;
  keys ``r`` re-select, ``p`` pause, ``q``/Esc quit; or
* headless: needs the init box; writes the annotated video and/or the result file, shows a
  progress line for files, and ends with a one-line summary.

Ctrl-C ends the loop, and the output video and result file are closed properly (the video
stays playable). The tracker is any object with ``init(frame, box)``, ``update(frame) ->
(ok, box)``, ``score`` and optionally ``state`` ("tracking" / "lost", shown in the overlay and
written to the results) and ``last_prediction`` (for ``--show-distributions``).
"""
from __future__ import annotations

import contextlib
import logging
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol
from collections.abc import Sequence

import cv2
import numpy as np

from .boxes import Box, validate_box
from .display import Display
from .drawing import draw_tracking, put_label
from .errors import InvalidBoxError, UsageError
from .sources import Frame, FrameSource, SourceError

log = logging.getLogger(__name__)
FOURCC_BY_EXT = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "XVID"}


class TrackerLike(Protocol):
    """What the session needs from a tracker (``mixformerv2_cpu.Tracker`` fits)."""

    score: float

    def init(self, frame: np.ndarray, box: Box) -> None: ...

    def update(self, frame: np.ndarray) -> tuple[bool, Box]: ...


@dataclass
class SessionOptions:
    """How to run: init box, outputs, window, distributions overlay, progress line."""

    init: Box | None = None
    output: Path | None = None
    results: Path | None = None
    show: bool = False
    show_distributions: bool = False
    progress: bool = False


@dataclass
class SessionSummary:
    """What happened: frames processed, tracker-only and overall rates, mean score."""

    frames: int = 0
    updates: int = 0
    update_seconds: float = 0.0
    wall_seconds: float = 0.0
    score_sum: float = 0.0
    lost: int = 0
    dropped: int = 0
    interrupted: bool = False

    @property
    def mean_fps(self) -> float:
        """Tracker updates per second of update time (the tracker's own speed)."""
        return self.updates / self.update_seconds if self.update_seconds > 0 else float("nan")

    @property
    def wall_fps(self) -> float:
        """Frames per second of the whole loop (reading, tracking, drawing, writing)."""
        return self.frames / self.wall_seconds if self.wall_seconds > 0 else float("nan")

    @property
    def mean_score(self) -> float:
        return self.score_sum / self.updates if self.updates else float("nan")

    def line(self) -> str:
        text = (f"frames: {self.frames}  mean FPS: {self.mean_fps:.1f} "
                f"(end-to-end {self.wall_fps:.1f})  mean score: {self.mean_score:.3f}")
        if self.lost:
            text += f"  lost: {self.lost} frames"
        if self.dropped:
            text += f"  dropped (stale camera frames): {self.dropped}"
        if self.interrupted:
            text += "  [interrupted]"
        return text


def init_box(box: Box, width: int, height: int) -> Box:
    """The ``--init`` box checked by the same rule as ``Tracker.init`` (a box partly outside the frame
    is kept as given); UsageError naming ``--init`` otherwise."""
    try:
        box = validate_box(box, height, width)
    except InvalidBoxError as exc:
        raise UsageError(f"--init: {exc}") from None
    x, y, w, h = box
    if x < 0 or y < 0 or x + w > width or y + h > height:
        log.info("--init box reaches outside the %dx%d frame; tracked as given", width, height)
    return box


def open_writer(path: Path, fps: float, size: tuple[int, int]) -> "cv2.VideoWriter":
    """A VideoWriter for ``path`` (codec by extension); UsageError if it cannot be opened."""
    fourcc = FOURCC_BY_EXT.get(path.suffix.lower())
    if fourcc is None:
        raise UsageError(f"--output must end in one of {', '.join(FOURCC_BY_EXT)}, got {path.name!r}")
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*fourcc), fps, size)
    if not writer.isOpened():
        raise UsageError(f"cannot write video {path} with codec {fourcc}")
    return writer


class _Progress:
    """A one-line progress bar on stderr (only for sources of known length)."""

    def __init__(self, total: int | None, stream: IO[str] | None = None) -> None:
        self.total, self._last = total, 0.0
        self.stream = stream if stream is not None else sys.stderr

    def update(self, done: int, fps: float, force: bool = False) -> None:
        now = time.monotonic()
        if not self.total or (not force and now - self._last < 0.25):
            return
        self._last = now
        frac = min(1.0, done / self.total)
        bar = "#" * int(frac * 30)
        self.stream.write(f"\r[{bar:<30}] {done}/{self.total} frames  {fps:5.1f} FPS")
        self.stream.flush()

    def finish(self) -> None:
        if self.total and self._last:
            self.stream.write("\n")
            self.stream.flush()


def _result_line(box: Sequence[float], score: float | None, state: str) -> str:
    """``x,y,w,h,score,state``: score nan and state "init" on the init frame; state "tracking" or
    "lost" (the tracker's ``state``; for a tracker without one: "lost" when it reported ok=False)."""
    s = "nan" if score is None else f"{score:.4f}"
    return f"{box[0]:.2f},{box[1]:.2f},{box[2]:.2f},{box[3]:.2f},{s},{state}\n"


def run_session(
    source: FrameSource,
    tracker: TrackerLike,
    opts: SessionOptions,
    display: Display | None = None,
) -> SessionSummary:
    """Track over ``source`` until it ends, the user quits, or Ctrl-C; return the summary.

    Writes one result line ``x,y,w,h,score`` per processed frame (the init frame's score is
    ``nan``) and one annotated video frame per processed frame. Raises UsageError,
    SourceError or the tracker's errors; outputs are closed in every case.
    """
    summary = SessionSummary()
    writer = None
    results: IO[str] | None = None
    progress = _Progress(source.frame_count if opts.progress else None)
    start = time.monotonic()
    try:
        first = source.read()
        if first is None:
            raise SourceError(f"{source.name} delivered no frame")
        height, width = first.image.shape[:2]
        if opts.show and display is None:
            display = Display()
        if opts.init is not None:
            box = init_box(opts.init, width, height)
        elif display is not None:
            picked = display.select(first.image)
            if picked is None:
                log.info("no target selected; quitting")
                return summary
            box = picked
        else:
            raise UsageError("headless tracking (--no-show or no display) needs --init x,y,w,h")
        if opts.results is not None:
            results = open(opts.results, "w", encoding="utf-8", buffering=1)  # line-buffered
        if opts.output is not None:
            fps_out = source.fps or 25.0
            writer = open_writer(opts.output, fps_out, (width, height))
        _loop(source, tracker, opts, display, first, box, writer, results, summary, progress)
    except KeyboardInterrupt:
        summary.interrupted = True
    finally:
        progress.finish()
        summary.wall_seconds = time.monotonic() - start
        summary.dropped = source.dropped
        if writer is not None:
            writer.release()
        if results is not None:
            results.close()
        if display is not None:
            display.close()
    return summary


@contextlib.contextmanager
def _interrupt_after():
    """Hold a SIGINT that arrives inside the block and deliver it when the block ends, so the video and
    the result file always hold the same frames (main thread only; elsewhere nothing changes)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[tuple] = []
    previous = signal.signal(signal.SIGINT, lambda *args: held.append(args))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if held and callable(previous):
            previous(*held[0])


def _loop(
    source: FrameSource,
    tracker: TrackerLike,
    opts: SessionOptions,
    display: Display | None,
    frame: Frame,
    box: Box,
    writer: "cv2.VideoWriter" | None,
    results: IO[str] | None,
    summary: SessionSummary,
    progress: _Progress,
) -> None:
    """The per-frame loop of :func:`run_session` (init on ``frame``, then update)."""
    tracker.init(frame.image, box)
    score: float | None = None
    state = "init"
    ok, fps_ema, paused = True, None, False
    prediction = None
    new_frame = True
    while True:
        if new_frame:
            summary.frames += 1
            status = f"frame {frame.index}" + (f"  dropped {source.dropped}" if source.live else "")
            shown = draw_tracking(frame.image.copy(), box, score, fps_ema, lost=not ok,
                                  status=status, prediction=prediction, state=None if score is None else state,
                                  show_distributions=opts.show_distributions and score is not None)
            with _interrupt_after():  # Ctrl-C here: both outputs get this frame, then the loop stops
                if writer is not None:
                    writer.write(shown)
                if results is not None:
                    results.write(_result_line(box, score, state))
            progress.update(summary.frames, summary.mean_fps if summary.updates else 0.0)
        if display is not None:
            key = display.show(shown) if new_frame else display.wait_key(30)
            if key in (ord("q"), 27) or display.closed():
                break
            if key == ord("p"):
                paused = not paused
                if paused:
                    display.show(put_label(shown.copy(), "PAUSED (p: resume)", (6, 34),
                                           color=(0, 255, 255), scale=0.6))
            if key == ord("r"):
                picked = display.select(frame.image)
                if picked is not None:
                    box, score, ok, prediction, state = picked, None, True, None, "init"
                    tracker.init(frame.image, box)
                    shown = draw_tracking(frame.image.copy(), box, None, fps_ema)
                    display.show(shown)
            if paused:
                new_frame = False
                continue
        nxt = source.read()
        if nxt is None:
            break
        frame = nxt
        t0 = time.perf_counter()
        ok, out_box = tracker.update(frame.image)
        dt = time.perf_counter() - t0
        box = tuple(float(v) for v in out_box)  # type: ignore[assignment]
        score = float(tracker.score)
        state = str(getattr(tracker, "state", "tracking" if ok else "lost"))
        prediction = getattr(tracker, "last_prediction", None)
        summary.updates += 1
        summary.lost += state == "lost"
        summary.update_seconds += dt
        summary.score_sum += score
        inst = 1.0 / dt if dt > 0 else 0.0
        fps_ema = inst if fps_ema is None else 0.9 * fps_ema + 0.1 * inst
        new_frame = True
    progress.update(summary.frames, summary.mean_fps if summary.updates else 0.0, force=True)
