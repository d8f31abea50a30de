"""Crop geometry of the reference tracker (reference facts §3): crop, map back, clip.

Box conventions, types and checks are in ``boxes.py``. Images are H×W×C arrays.
"""
from __future__ import annotations

import math
from typing import NamedTuple
from collections.abc import Sequence

import cv2
import numpy as np

from .boxes import Box
from .errors import InvalidBoxError


class Crop(NamedTuple):
    """A square crop resized to ``out_size``.

    patch: (out_size, out_size, C) uint8. ``resize_factor`` = out_size / crop side in image
    pixels. ``side`` is that crop side (pixels of the source image).
    """

    patch: np.ndarray
    resize_factor: float
    side: int


def crop_side(box: Sequence[float], factor: float) -> int:
    """Side of the square context crop around ``box`` (xywh): ceil(sqrt(w*h) * factor)."""
    _, _, w, h = box
    side = math.ceil(math.sqrt(w * h) * factor)
    if side < 1:
        raise InvalidBoxError(f"box {tuple(box)} is too small to crop (crop side {side} px with factor {factor})")
    return side


def sample_target(image: np.ndarray, box: Sequence[float], factor: float, out_size: int,
                  max_side: int | None = None) -> Crop:
    """Reference crop (``sample_target``): square of side ceil(sqrt(w*h)*factor) around the box
    centre, zero padding outside the image, resized (bilinear) to out_size×out_size.

    Keeps the reference quirk: the right/bottom pad is ``x2 - W + 1``, so a crop that crosses
    the right (bottom) border also replaces the last image column (row) with padding.
    ``max_side`` caps the crop side (used against boxes that grow on blank frames); None = no cap.
    """
    x, y, w, h = box
    side = crop_side(box, factor)
    if max_side is not None:
        side = min(side, max_side)
    x1 = int(round(x + 0.5 * w - 0.5 * side))
    y1 = int(round(y + 0.5 * h - 0.5 * side))
    x2, y2 = x1 + side, y1 + side
    ih, iw = image.shape[:2]
    x1_pad, y1_pad = max(0, -x1), max(0, -y1)
    x2_pad, y2_pad = max(x2 - iw + 1, 0), max(y2 - ih + 1, 0)
    inside = image[y1 + y1_pad:y2 - y2_pad, x1 + x1_pad:x2 - x2_pad]
    if inside.size == 0:
        # wholly outside: the reference would pad an empty slice; the result is all padding
        patch = np.zeros((out_size, out_size) + image.shape[2:], dtype=image.dtype)
        return Crop(patch, out_size / side, side)
    if x1_pad or y1_pad or x2_pad or y2_pad:
        inside = cv2.copyMakeBorder(inside, y1_pad, y2_pad, x1_pad, x2_pad, cv2.BORDER_CONSTANT, value=0)
    patch = cv2.resize(inside, (out_size, out_size))
    return Crop(patch, out_size / side, side)


def map_back(pred_cxcywh: Sequence[float], prev_box: Sequence[float], search_size: int,
             resize_factor: float) -> Box:
    """Normalised search-crop prediction (cx,cy,w,h in 0..1) -> image xywh.

    The crop is centred on the previous box's centre; half the crop side in image pixels is
    ``0.5 * search_size / resize_factor``.
    """
    scale = search_size / resize_factor
    cx, cy, w, h = (float(v) * scale for v in pred_cxcywh)
    px, py, pw, ph = prev_box
    half = 0.5 * scale
    cx_img = cx + (px + 0.5 * pw - half)
    cy_img = cy + (py + 0.5 * ph - half)
    return (cx_img - 0.5 * w, cy_img - 0.5 * h, w, h)


def scale_box(box: Sequence[float], factor: float) -> Box:
    """(x, y, w, h) -> the box of the same centre with w and h multiplied by ``factor``."""
    x, y, w, h = (float(v) for v in box)
    return (x + 0.5 * w * (1.0 - factor), y + 0.5 * h * (1.0 - factor), w * factor, h * factor)


def clip_box(box: Sequence[float], height: int, width: int, margin: float = 10) -> Box:
    """Reference ``clip_box``: keep at least ``margin`` px of the box inside the image.

    x1 = min(max(0, x1), W - margin); x2 = min(max(margin, x2), W); w = max(margin, x2 - x1).
    """
    x1, y1, w, h = box
    x2, y2 = x1 + w, y1 + h
    x1 = min(max(0.0, x1), width - margin)
    x2 = min(max(float(margin), x2), width)
    y1 = min(max(0.0, y1), height - margin)
    y2 = min(max(float(margin), y2), height)
    return (x1, y1, max(float(margin), x2 - x1), max(float(margin), y2 - y1))
