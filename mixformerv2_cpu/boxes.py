"""Boxes: the one place for box types, parsing, validation, conversion, IoU and crop-bin geometry.

Conventions: ``xywh`` = top-left x, y, width, height in pixels; ``cxcywh`` = centre x, y, width,
height. Array functions take and return ``(N, 4)`` float arrays (one box per row).
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .errors import InvalidBoxError

Box = tuple[float, float, float, float]  # x, y, w, h
MIN_INIT_SIDE = 2  # px: the smallest init box side accepted


def parse_box(text: str) -> Box:
    """``"x,y,w,h"`` (commas, spaces or tabs) -> four finite floats; ValueError naming what came."""
    parts = [p for p in text.replace("\t", ",").replace(" ", ",").split(",") if p.strip()]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) != 4 or not all(math.isfinite(v) for v in values):
        raise ValueError(f"a box is four numbers x,y,w,h (pixels), got {text.strip()!r}")
    return values[0], values[1], values[2], values[3]


def validate_box(box: Sequence[float], height: int, width: int) -> Box:
    """Check an init box (xywh) against a frame of height x width; return it as floats.

    A box partly outside the frame is kept as given (the crop pads with zeros, as the reference
    does); one wholly outside, of zero/negative size or under MIN_INIT_SIDE px is an InvalidBoxError.
    """
    try:
        vals = tuple(float(v) for v in box)
    except (TypeError, ValueError) as exc:
        raise InvalidBoxError(f"box must be 4 numbers (x, y, w, h), got {box!r}") from exc
    if len(vals) != 4:
        raise InvalidBoxError(f"box must be 4 numbers (x, y, w, h), got {len(vals)} values: {box!r}")
    if not all(math.isfinite(v) for v in vals):
        raise InvalidBoxError(f"box must be finite, got {vals}")
    x, y, w, h = vals
    if w <= 0 or h <= 0:
        raise InvalidBoxError(f"box width and height must be > 0, got w={w:g}, h={h:g}")
    if w < MIN_INIT_SIDE or h < MIN_INIT_SIDE:
        raise InvalidBoxError(f"box {w:g}x{h:g} px is too small: width and height must be at least "
                              f"{MIN_INIT_SIDE} px")
    if x >= width or y >= height or x + w <= 0 or y + h <= 0:
        raise InvalidBoxError(f"box ({x:g}, {y:g}, {w:g}, {h:g}) lies wholly outside the {width}x{height} frame")
    return x, y, w, h


def cxcywh_to_xywh(boxes: np.ndarray) -> np.ndarray:
    """(N, 4) cx, cy, w, h -> (N, 4) x, y, w, h."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return np.concatenate([b[:, :2] - b[:, 2:] / 2, b[:, 2:]], axis=1)


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of matching rows of two (N, 4) xywh arrays -> (N,) in [0, 1]; NaN where a row has NaN."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    x1 = np.maximum(a[:, 0], b[:, 0])
    y1 = np.maximum(a[:, 1], b[:, 1])
    x2 = np.minimum(a[:, 0] + a[:, 2], b[:, 0] + b[:, 2])
    y2 = np.minimum(a[:, 1] + a[:, 3], b[:, 1] + b[:, 3])
    inter = np.maximum(x2 - x1, 0.0) * np.maximum(y2 - y1, 0.0)
    union = a[:, 2] * a[:, 3] + b[:, 2] * b[:, 3] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)
    out = np.clip(out, 0.0, 1.0)
    out[np.isnan(a).any(1) | np.isnan(b).any(1)] = np.nan
    return out


def crop_origin(box: Sequence[float], side: float) -> tuple[float, float]:
    """Top-left (x0, y0) in image pixels of the square crop of ``side`` px centred on ``box`` (xywh)."""
    x, y, w, h = box
    return x + 0.5 * w - 0.5 * side, y + 0.5 * h - 0.5 * side


def bin_positions(box: Sequence[float], side: float, bins: int) -> np.ndarray:
    """(4, bins) image coordinate of every bin of the left, top, right, bottom edge distributions of a
    search crop of ``side`` px centred on ``box``: bin k sits at origin + k * side / bins."""
    x0, y0 = crop_origin(box, side)
    steps = np.arange(bins) * (side / bins)
    return np.stack([x0 + steps, y0 + steps, x0 + steps, y0 + steps])
