"""The only place that touches OpenCV windows (kept thin: it cannot be tested headless)."""
from __future__ import annotations

import os
import sys

import cv2
import numpy as np

from .boxes import Box
from .errors import UsageError

WINDOW = "mixformerv2 (r: re-select  p: pause  q/Esc: quit)"


def has_display() -> bool:
    """True unless on Linux/BSD without DISPLAY and WAYLAND_DISPLAY (then no window can open)."""
    if sys.platform.startswith(("linux", "freebsd", "openbsd", "netbsd")):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


class Display:
    """The only place that touches OpenCV windows (kept thin: it cannot be tested headless)."""

    def __init__(self) -> None:
        try:
            flags = cv2.WINDOW_NORMAL | cv2.WINDOW_KEEPRATIO | cv2.WINDOW_GUI_NORMAL
            cv2.namedWindow(WINDOW, flags)
        except cv2.error as exc:
            raise UsageError(
                "this OpenCV build cannot open windows (opencv-python-headless?); install "
                "opencv-python, or run with --no-show --init x,y,w,h"
            ) from exc

        self._sized = False

    def _size_to(self, img: np.ndarray) -> None:
        if not self._sized:  # resizable window, opened at the frame's own size
            cv2.resizeWindow(WINDOW, img.shape[1], img.shape[0])
            self._sized = True

    def show(self, img: np.ndarray) -> int:
        """Show a frame, return the key pressed within 1 ms (-1 if none)."""
        self._size_to(img)
        cv2.imshow(WINDOW, img)
        return cv2.waitKey(1) & 0xFF

    def wait_key(self, ms: int) -> int:
        return cv2.waitKey(ms) & 0xFF

    def closed(self) -> bool:
        try:
            return cv2.getWindowProperty(WINDOW, cv2.WND_PROP_VISIBLE) < 1
        except cv2.error:
            return True

    def select(self, img: np.ndarray) -> Box | None:
        """Mouse box on ``img`` (Enter/Space confirms, c cancels); None when cancelled."""
        self._size_to(img)
        shown = img.copy()
        cv2.putText(shown, "drag a box around the target, then Enter (c: cancel)", (8, 20),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 255, 255), 1, cv2.LINE_AA)
        x, y, w, h = cv2.selectROI(WINDOW, shown, showCrosshair=True, fromCenter=False)
        return (float(x), float(y), float(w), float(h)) if w > 0 and h > 0 else None

    def close(self) -> None:
        try:
            cv2.destroyWindow(WINDOW)
        except cv2.error:
            pass
