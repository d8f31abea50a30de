"""Patch -> network input. The only place where colour order and normalisation happen."""
from __future__ import annotations

from typing import Sequence

import numpy as np


def normalize_patch(patch_bgr: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """BGR uint8 patch (S,S,3) -> RGB float32 (1,3,S,S), ((x/255) - mean) / std per channel.

    The reference converts OpenCV's BGR frames to RGB before cropping; flipping the channel
    order of the crop is the same thing.
    """
    scale = np.asarray(std, dtype=np.float32) * 255.0
    offset = np.asarray(mean, dtype=np.float32) / np.asarray(std, dtype=np.float32)
    rgb = patch_bgr[:, :, ::-1].astype(np.float32)
    chw = (rgb / scale - offset).transpose(2, 0, 1)
    return np.ascontiguousarray(chw[None])
