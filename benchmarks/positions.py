"""Positions in a sequence, shared by the protocols that make several runs of one sequence (recovery
cuts, start frames): fractions of its length given on the command line, frames with a visible target."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def distinct_fractions(values: Sequence[float | str], what: str, include_zero: bool) -> list[float]:
    """Positions (numbers or numeric strings) -> floats; ValueError naming ``what`` ("cut positions")
    unless they are distinct fractions in (0, 1), or in [0, 1) with ``include_zero``."""
    try:
        positions = [float(v) for v in values]
    except ValueError:
        raise ValueError(f"{what} must be numbers, got {list(values)}") from None
    inside = [(0.0 <= a < 1.0) if include_zero else (0.0 < a < 1.0) for a in positions]
    if not positions or not all(inside) or len(set(positions)) != len(positions):
        span = "in [0, 1)" if include_zero else "strictly between 0 and 1"
        raise ValueError(f"{what} must be distinct fractions {span}, got {positions}")
    return positions


def visible(gt: np.ndarray) -> np.ndarray:
    """(N,) True where the ground-truth row is a finite box with w, h > 0."""
    return np.isfinite(gt).all(1) & (gt[:, 2] > 0) & (gt[:, 3] > 0)
