"""Network outputs -> box and confidence. The only place where distributions are decoded."""
from __future__ import annotations

from functools import lru_cache

import numpy as np


def edge_distributions(logits: np.ndarray) -> np.ndarray:
    """Softmax over bins. logits (..., 4, bins) rows l,t,r,b -> float64 probabilities, same shape
    (one float64 copy, then in place: fewer temporaries per frame)."""
    e = np.array(logits, dtype=np.float64)
    e -= e.max(axis=-1, keepdims=True)
    np.exp(e, out=e)
    e /= e.sum(axis=-1, keepdims=True)
    return e


@lru_cache(maxsize=8)
def _bin_fractions(bins: int) -> np.ndarray:
    """(bins,) k / bins: the normalised position of every bin (read-only, shared)."""
    v = np.arange(bins, dtype=np.float64) / bins
    v.flags.writeable = False
    return v


def expected_edges(probs: np.ndarray) -> np.ndarray:
    """Edge probabilities (..., 4, bins) -> expected edge positions (..., 4), normalised 0..1.

    Bin k sits at k * stride, stride = search_size / bins, so its normalised position is k / bins.
    """
    return probs @ _bin_fractions(probs.shape[-1])


def edge_peak(probs: np.ndarray) -> np.ndarray:
    """Edge probabilities (..., 4, bins) -> (...,) mean over the four edges of their largest bin
    probability: near 1 when every edge is sure of its position, 1/bins when all are flat."""
    return probs.max(axis=-1).mean(axis=-1)


# (4, 4): ltrb @ _LTRB_TO_CXCYWH -> cx = (l + r) / 2, cy = (t + b) / 2, w = r - l, h = b - t. Every
# product is exact (x 0.5 or x 1) and the other terms are zeros, so it equals the element-wise formula
# to the bit; one matrix product instead of eight element-wise operations per frame.
_LTRB_TO_CXCYWH = np.array([[0.5, 0.0, -1.0, 0.0],
                            [0.0, 0.5, 0.0, -1.0],
                            [0.5, 0.0, 1.0, 0.0],
                            [0.0, 0.5, 0.0, 1.0]])
_LTRB_TO_CXCYWH.flags.writeable = False


def ltrb_to_cxcywh(ltrb: np.ndarray) -> np.ndarray:
    """(..., 4) l,t,r,b -> (..., 4) cx,cy,w,h. Width/height may be negative (nothing forces r > l)."""
    return ltrb @ _LTRB_TO_CXCYWH


def decode_boxes(logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """logits (N,4,bins) -> (normalised cx,cy,w,h (N,4), edge probabilities (N,4,bins))."""
    probs = edge_distributions(logits)
    return ltrb_to_cxcywh(expected_edges(probs)), probs
