"""Overlay drawing for the CLI and the demo: box, score, FPS, tracking / lost state, edge distributions.

All functions draw in place on a BGR uint8 image and return it. Boxes are ``(x, y, w, h)``
in image pixels (top-left corner, width, height). Nothing here shows a window.

The edge distributions (``draw_distributions``) follow the way the MixFormerV2 paper shows
its prediction tokens: each of the four edges (left, top, right, bottom) has a probability
distribution over where that edge lies. Each one is drawn as a filled profile crossing its
edge at the edge's midpoint: the profile's axis is perpendicular to the edge (the axis the
distribution is over) and its height is the probability. A tall narrow spike means the
tracker is sure where the edge is; a low wide hump, or two humps, means it is unsure.
"""
from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np


COLOR_OK = (60, 220, 60)
COLOR_LOST = (40, 40, 230)
COLOR_INIT = (230, 180, 40)
# left, top, right, bottom (BGR): orange, magenta, cyan, yellow
EDGE_COLORS = ((0, 140, 255), (255, 60, 220), (255, 220, 0), (0, 230, 255))
EDGE_NAMES = ("left", "top", "right", "bottom")
FONT = cv2.FONT_HERSHEY_SIMPLEX


def _int_box(box: Sequence[float]) -> tuple[int, int, int, int]:
    x, y, w, h = (float(v) for v in box)
    return int(round(x)), int(round(y)), int(round(x + w)), int(round(y + h))


def put_label(
    img: np.ndarray,
    text: str,
    org: tuple[int, int],
    color: tuple[int, int, int] = (255, 255, 255),
    scale: float = 0.55,
    bg: tuple[int, int, int] | None = (0, 0, 0),
) -> np.ndarray:
    """Text with a dark background box at ``org`` (top-left of the label)."""
    thickness = 1 if scale < 0.8 else 2
    (tw, th), base = cv2.getTextSize(text, FONT, scale, thickness)
    x, y = int(org[0]), int(org[1])
    x = max(0, min(x, img.shape[1] - tw - 4))
    y = max(0, min(y, img.shape[0] - th - base - 4))
    if bg is not None:
        sub = img[y:y + th + base + 4, x:x + tw + 4]
        sub[...] = (sub * 0.35 + np.array(bg) * 0.65).astype(np.uint8)
    cv2.putText(img, text, (x + 2, y + th + 2), FONT, scale, color, thickness, cv2.LINE_AA)
    return img


def draw_box(
    img: np.ndarray,
    box: Sequence[float],
    color: tuple[int, int, int] = COLOR_OK,
    thickness: int = 2,
    dashed: bool = False,
) -> np.ndarray:
    """Rectangle for an ``(x, y, w, h)`` box; ``dashed`` for a box the tracker is unsure of."""
    x1, y1, x2, y2 = _int_box(box)
    if not dashed:
        cv2.rectangle(img, (x1, y1), (x2, y2), color, thickness, cv2.LINE_AA)
        return img
    step = 8
    for a, b in (((x1, y1), (x2, y1)), ((x2, y1), (x2, y2)), ((x2, y2), (x1, y2)), ((x1, y2), (x1, y1))):
        length = max(abs(b[0] - a[0]), abs(b[1] - a[1]))
        for s in range(0, length, 2 * step):
            t0, t1 = s / max(length, 1), min(s + step, length) / max(length, 1)
            p0 = (int(a[0] + (b[0] - a[0]) * t0), int(a[1] + (b[1] - a[1]) * t0))
            p1 = (int(a[0] + (b[0] - a[0]) * t1), int(a[1] + (b[1] - a[1]) * t1))
            cv2.line(img, p0, p1, color, thickness, cv2.LINE_AA)
    return img


def draw_distributions(
    img: np.ndarray,
    box: Sequence[float],
    distributions: np.ndarray,
    edge_positions: np.ndarray,
    height: float | None = None,
    alpha: float = 0.45,
    tail: float = 0.02,
) -> np.ndarray:
    """Draw the four edge distributions across the box edges.

    ``distributions``: (4, bins) probabilities, rows left, top, right, bottom (each sums to 1).
    ``edge_positions``: (4, bins) image coordinate of each bin: x for rows left/right, y for
    rows top/bottom. The left/right profiles cross the box at its middle row (left one grows
    upwards, right one downwards); top/bottom ones cross at its middle column (top one grows
    leftwards, bottom one rightwards), so the four never cover each other. Heights are
    relative to the largest probability of all four, so the edges can be compared.
    ``height``: pixel height of that largest bar (default: 40% of the box's shorter side,
    between 18 and 80 px). ``tail``: bins below this fraction of their row's peak, at either
    end of a row, are not drawn (a distribution with two humps keeps both and the gap).
    """
    probs = np.asarray(distributions, dtype=np.float64)
    pos = np.asarray(edge_positions, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[0] != 4 or pos.shape != probs.shape:
        raise ValueError(
            f"expected distributions and edge_positions of shape (4, bins), got "
            f"{probs.shape} and {pos.shape}"
        )
    x, y, w, h = (float(v) for v in box)
    cx, cy = x + w / 2.0, y + h / 2.0
    if height is None:
        height = float(np.clip(0.4 * min(abs(w), abs(h)), 18.0, 80.0))
    peak = float(probs.max()) if probs.size and probs.max() > 0 else 1.0
    overlay = img.copy()
    lines = []
    # (row, baseline coordinate, bins run along x?, sign of growth)
    layout = ((0, cy, True, -1.0), (1, cx, False, -1.0), (2, cy, True, 1.0), (3, cx, False, 1.0))
    for row, base, along_x, sign in layout:
        # only the part that carries probability: the long flat tails would cross the frame
        keep = np.flatnonzero(probs[row] >= tail * probs[row].max())
        lo, hi = max(int(keep[0]) - 1, 0), min(int(keep[-1]) + 2, probs.shape[1])
        p_row, x_row = probs[row, lo:hi], pos[row, lo:hi]
        amp = p_row / peak * height * sign
        if along_x:
            pts = np.stack([x_row, base + amp], axis=1)
            ends = np.array([[x_row[0], base], [x_row[-1], base]])
        else:
            pts = np.stack([base + amp, x_row], axis=1)
            ends = np.array([[base, x_row[0]], [base, x_row[-1]]])
        poly = np.concatenate([ends[:1], pts, ends[1:]]).round().astype(np.int32)
        cv2.fillPoly(overlay, [poly], EDGE_COLORS[row], cv2.LINE_AA)
        lines.append((row, pts.round().astype(np.int32), ends.round().astype(np.int32)))
    cv2.addWeighted(overlay, alpha, img, 1.0 - alpha, 0.0, dst=img)
    for row, curve, base_line in lines:
        p0, p1 = (int(v) for v in base_line[0]), (int(v) for v in base_line[1])
        cv2.line(img, tuple(p0), tuple(p1), EDGE_COLORS[row], 1, cv2.LINE_AA)
        cv2.polylines(img, [curve], False, EDGE_COLORS[row], 1, cv2.LINE_AA)
    return img


def draw_legend(img: np.ndarray, org: tuple[int, int] = (8, 0)) -> np.ndarray:
    """Small colour key for the four edge distributions (bottom-left corner by default)."""
    x = org[0]
    y = org[1] or img.shape[0] - 24
    for name, color in zip(EDGE_NAMES, EDGE_COLORS):
        put_label(img, name, (x, y), color=color, scale=0.45)
        x += cv2.getTextSize(name, FONT, 0.45, 1)[0][0] + 10
    return img


def draw_tracking(
    img: np.ndarray,
    box: Sequence[float] | None,
    score: float | None,
    fps: float | None = None,
    lost: bool = False,
    status: str | None = None,
    prediction: object | None = None,
    show_distributions: bool = False,
    state: str | None = None,
) -> np.ndarray:
    """The whole overlay: box, score label at the box, FPS/status line, optional distributions.

    ``prediction``: the tracker's ``last_prediction`` (an object with ``distributions`` and
    ``edge_positions``); used only when ``show_distributions`` is true and it is not None.
    ``score`` None means "just initialised" (the box is the given one, not a prediction).
    ``lost``: the tracker reported ok=False (dashed red box). ``state``: the tracker's state
    ("tracking" / "lost"), shown in the status line. The labels say which of the two it is: "LOST"
    at the box and "LOST - searching" top right in the lost state (also when ``lost`` is not given);
    "LOW" and "LOW SCORE" for an ok=False frame while the state is still "tracking" (a low score that
    has not yet lasted ``lost_frames``); "LOST" for ok=False without a state (trackers without one).
    """
    searching = state == "lost"
    lost = lost or searching
    word = "LOW" if lost and state == "tracking" else "LOST"
    if show_distributions and prediction is not None and box is not None:
        dist = getattr(prediction, "distributions", None)
        edges = getattr(prediction, "edge_positions", None)
        if dist is not None and edges is not None:
            draw_distributions(img, box, dist, edges)
    if box is not None:
        if score is None:
            color, label = COLOR_INIT, "init"
        elif lost:
            color, label = COLOR_LOST, f"{word} {score:.2f}"
        else:
            color, label = COLOR_OK, f"{score:.2f}"
        draw_box(img, box, color, 2, dashed=lost)
        x1, y1, _, _ = _int_box(box)
        put_label(img, label, (x1, y1 - 22), color=color)
    hud = []
    if fps is not None:
        hud.append(f"FPS {fps:5.1f}")
    if status:
        hud.append(status)
    if state:
        hud.append(f"state: {state}")
    if hud:
        put_label(img, "  ".join(hud), (6, 6), scale=0.6)
    if lost:
        text = "LOST - searching" if searching else ("LOW SCORE" if word == "LOW" else "LOST")
        (tw, _), _ = cv2.getTextSize(text, FONT, 1.0, 2)
        put_label(img, text, (img.shape[1] - tw - 14, 6), color=COLOR_LOST, scale=1.0)
    if show_distributions:
        draw_legend(img)
    return img


__all__ = [
    "COLOR_INIT",
    "COLOR_LOST",
    "COLOR_OK",
    "EDGE_COLORS",
    "draw_box",
    "draw_distributions",
    "draw_legend",
    "draw_tracking",
    "put_label",
]
