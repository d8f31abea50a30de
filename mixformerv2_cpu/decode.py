"""Network outputs -> box and confidence. The only place where distributions are decoded."""
from __future__ import annotations

import numpy as np


def edge_distributions(logits: np.ndarray) -> np.ndarray:
    """Softmax over bins. logits (..., 4, bins) rows l,t,r,b -> probabilities, same shape."""
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def expected_edges(probs: np.ndarray) -> np.ndarray:
    """Edge probabilities (..., 4, bins) -> expected edge positions (..., 4), normalised 0..1.

    Bin k sits at k * stride, stride = search_size / bins, so its normalised position is k / bins.
    """
    bins = probs.shape[-1]
    return probs @ (np.arange(bins, dtype=np.float64) / bins)


def ltrb_to_cxcywh(ltrb: np.ndarray) -> np.ndarray:
    """(..., 4) l,t,r,b -> (..., 4) cx,cy,w,h. Width/height may be negative (nothing forces r > l)."""
    out = np.empty_like(ltrb)
    out[..., 0] = (ltrb[..., 0] + ltrb[..., 2]) / 2
    out[..., 1] = (ltrb[..., 1] + ltrb[..., 3]) / 2
    out[..., 2] = ltrb[..., 2] - ltrb[..., 0]
    out[..., 3] = ltrb[..., 3] - ltrb[..., 1]
    return out


def decode_boxes(logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """logits (N,4,bins) -> (normalised cx,cy,w,h (N,4), edge probabilities (N,4,bins))."""
    probs = edge_distributions(logits.astype(np.float64))
    return ltrb_to_cxcywh(expected_edges(probs)), probs
