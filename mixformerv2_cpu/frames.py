"""Frame validation. The one documented conversion rule: grayscale (H,W) or (H,W,1) frames are
expanded to BGR, BGRA (H,W,4) frames lose their alpha channel; anything else that is not
BGR uint8 (H,W,3) is rejected with a message saying what came."""
from __future__ import annotations

import cv2
import numpy as np

from .errors import InvalidFrameError

MIN_SIDE = 10  # the reference clip_box keeps 10 px of the box inside the frame


def as_bgr(frame: object) -> np.ndarray:
    """Validate a frame and return it as BGR uint8 (H,W,3)."""
    if not isinstance(frame, np.ndarray):
        raise InvalidFrameError(f"frame must be a numpy array (H,W,3) uint8 BGR, got {type(frame).__name__}")
    if frame.size == 0:
        raise InvalidFrameError(f"frame is empty (shape {frame.shape}); did the video end or the camera fail?")
    if frame.dtype != np.uint8:
        raise InvalidFrameError(f"frame dtype must be uint8 (0..255 BGR), got {frame.dtype}")
    if frame.ndim == 2 or (frame.ndim == 3 and frame.shape[2] == 1):
        frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    elif frame.ndim == 3 and frame.shape[2] == 4:
        frame = cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
    elif frame.ndim != 3 or frame.shape[2] != 3:
        raise InvalidFrameError(f"frame must have shape (H,W,3) BGR (or (H,W) gray / (H,W,4) BGRA), got {frame.shape}")
    h, w = frame.shape[:2]
    if h < MIN_SIDE or w < MIN_SIDE:
        raise InvalidFrameError(f"frame must be at least {MIN_SIDE}x{MIN_SIDE} px, got {w}x{h}")
    return frame
