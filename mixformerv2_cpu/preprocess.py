"""Patch -> network input. The only place where colour order and normalisation happen."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def normalize_patch(patch_bgr: np.ndarray, mean: Sequence[float], std: Sequence[float],
                    out: np.ndarray | None = None) -> np.ndarray:
    """BGR uint8 patch (S,S,3) -> RGB float32 (1,3,S,S), (x/255 - mean) / std per channel.

    ``out``: an optional float32 (3,S,S) array to write into (e.g. one slot of a batch); then
    ``out[None]`` is returned. The channel flip, the uint8 -> float conversion and the scaling
    happen in one strided pass (no intermediate copies). The reference converts OpenCV's BGR
    frames to RGB before cropping; flipping the channel order of the crop is the same thing.
    """
    scale = (1.0 / (255.0 * np.asarray(std, dtype=np.float64))).astype(np.float32)[:, None, None]
    offset = (np.asarray(mean, dtype=np.float64) / np.asarray(std, dtype=np.float64)).astype(np.float32)[:, None, None]
    if out is None:
        out = np.empty((3,) + patch_bgr.shape[:2], np.float32)
    rgb_chw = patch_bgr.transpose(2, 0, 1)[::-1]  # a view
    np.multiply(rgb_chw, scale, out=out, dtype=np.float32, casting="unsafe")
    out -= offset
    return out[None]
