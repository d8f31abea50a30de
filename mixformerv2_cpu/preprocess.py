"""Patch -> network input. The only place where colour order, layout and normalisation happen.

Two input formats (``metadata.INPUT_FORMATS``): "rgb_nchw", the reference (RGB, (1,3,S,S), normalised
with the model's mean / std: :func:`normalize_patch`), and "bgr_nhwc_raw", the crop's own BGR pixels as
float (1,S,S,3) (:func:`raw_patch`), for the project's convolutional stems whose weights were trained on
raw BGR. :func:`network_input` picks by the model's metadata.
"""
from __future__ import annotations

import threading
from collections.abc import Sequence
from functools import lru_cache

import cv2
import numpy as np

from .metadata import RAW_INPUT, REFERENCE_INPUT


_SCRATCH = threading.local()  # per thread: {(H, W): three uint8 planes} that cv2.split writes into


def _planes(height: int, width: int) -> list[np.ndarray]:
    """Three reusable (H, W) uint8 planes for splitting a patch, kept per thread and per patch size
    (a tracker alternates between two sizes: search and template crops)."""
    cache = getattr(_SCRATCH, "planes", None)
    if cache is None or len(cache) > 8:
        cache = _SCRATCH.planes = {}
    planes = cache.get((height, width))
    if planes is None:
        planes = cache[(height, width)] = [np.empty((height, width), np.uint8) for _ in range(3)]
    return planes


@lru_cache(maxsize=8)
def _affine(mean: tuple[float, ...], std: tuple[float, ...]) -> tuple[tuple[float, float], ...]:
    """Per RGB channel (scale, offset) with (x/255 - mean)/std == x*scale - offset."""
    return tuple((1.0 / (255.0 * s), m / s) for m, s in zip(mean, std))


def _output(out: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray:
    """``out`` if it is a C-contiguous float32 array of ``shape`` (ValueError if it is not), a new one if None."""
    if out is None:
        return np.empty(shape, np.float32)
    if out.shape != shape or out.dtype != np.float32 or not out.flags.c_contiguous:
        raise ValueError(f"out must be a C-contiguous float32 array of shape {shape}, "
                         f"got {out.dtype} {out.shape} (contiguous: {out.flags.c_contiguous})")
    return out


def normalize_patch(patch_bgr: np.ndarray, mean: Sequence[float], std: Sequence[float],
                    out: np.ndarray | None = None) -> np.ndarray:
    """BGR uint8 patch (S,S,3) -> RGB float32 (1,3,S,S), (x/255 - mean) / std per channel.

    ``out``: an optional C-contiguous float32 (3,S,S) array to write into (e.g. one slot of a
    batch); then ``out[None]`` is returned. Each output plane is written by one OpenCV pass over
    its channel (split into reused planes, then scale+offset with the float conversion fused):
    about a third of the time of the equivalent numpy expression. The reference converts OpenCV's
    BGR frames to RGB before cropping; taking the crop's channels in reverse order is the same thing.
    """
    shape = (3,) + patch_bgr.shape[:2]
    out = _output(out, shape)
    planes = _planes(*shape[1:]) if patch_bgr.dtype == np.uint8 and patch_bgr.ndim == 3 else None
    bgr = cv2.split(patch_bgr, planes)
    for c, (scale, offset) in enumerate(_affine(tuple(map(float, mean)), tuple(map(float, std)))):
        cv2.addWeighted(bgr[2 - c], scale, bgr[2 - c], 0.0, -offset, dst=out[c], dtype=cv2.CV_32F)
    return out[None]


def raw_patch(patch_bgr: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """BGR uint8 patch (S,S,3) -> float32 (1,S,S,3), the same pixel values and channel order (one
    conversion pass; no normalisation, no layout change). ``out``: an optional C-contiguous float32
    (S,S,3) array to write into; then ``out[None]`` is returned."""
    out = _output(out, patch_bgr.shape[:2] + (3,))
    np.copyto(out, patch_bgr, casting="unsafe")
    return out[None]


def input_shape(input_format: str, size: int) -> tuple[int, int, int]:
    """Shape of one image input (without the batch axis) of a graph taking ``input_format`` crops of
    ``size`` px: (3, size, size) for "rgb_nchw", (size, size, 3) for "bgr_nhwc_raw"."""
    if input_format == REFERENCE_INPUT:
        return (3, size, size)
    if input_format == RAW_INPUT:
        return (size, size, 3)
    raise ValueError(f"unknown input format {input_format!r}; expected 'rgb_nchw' or 'bgr_nhwc_raw'")


def network_input(patch_bgr: np.ndarray, meta, out: np.ndarray | None = None) -> np.ndarray:
    """BGR uint8 patch (S,S,3) -> the model's image input (1, *input_shape), as ``meta`` (the model's
    :class:`~.metadata.ModelMetadata`) says: :func:`raw_patch` or :func:`normalize_patch`."""
    if meta.input_format == RAW_INPUT:
        return raw_patch(patch_bgr, out)
    return normalize_patch(patch_bgr, meta.mean, meta.std, out)
