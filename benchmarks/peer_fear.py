"""FEAR-XS peer: the reference Python tracking loop of FEAR on the FEAR-XS ONNX files, on ONNX Runtime.

Loop after https://github.com/PinataFarms/FEARTracker (MIT), ``model_training/``:

* ``tracker/fear_tracker.py`` at commit ae3cac7 (``FEARTracker.initialize`` / ``update``; cited FT:line),
* ``tracker/base_tracker.py`` at 08dafbd (penalties, window, smoothing, rescale; cited BT:line),
* ``utils/utils.py`` at ae3cac7 (crops, grid, clamping; cited U:line),
* ``dataset/box_coder.py`` at 08dafbd (``decode``; cited BC:line),
* ``config/tracker/siam_tracker.yaml`` at 08dafbd (the tracker constants; cited CFG:line).

Model files (``fear_xs/`` of the peers folder, see its SOURCE.txt): ``fear_xs_template.onnx`` ('image'
[1,3,128,128] RGB 0..255 -> 'features' [1,256,8,8]) and ``fear_xs_track.onnx`` ('image' [1,3,256,256]
RGB 0..255, 'template_features' -> 'bbox' [1,4,16,16] left/top/right/bottom distances in search-crop
pixels, 'cls' [1,1,16,16] logits). The ImageNet mean/std normalisation of the reference
(albumentations ``Normalize``, BT:73) is folded into the first nodes of both graphs (x - 255 mean) /
(255 std), so the crops go in as RGB 0..255. The frames are BGR: the crop is cut, padded and resized
in BGR (padding colour = per-channel frame mean in the same order) and its channels are reversed for the
network, which gives the same pixels as the reference's RGB pipeline.

Crops (U:215-253): the box is enlarged by ``offset`` times its width / height on each side (0.2 for
the template, 2 for the search region, truncated to int32, U:57), padded with the frame mean colour
(``cv2.copyMakeBorder``, U:246) and resized to a square 128 / 256 crop (anisotropic, bilinear,
albumentations ``Resize``, U:235). Boxes in the tracker state are integers (U:71, BT:83-90), as in the
reference.

``smooth`` (default True): the reference applies the cosine window, the scale / ratio penalty and
the size learning rate only when the tracker config has ``smooth: true`` (BT:153, BT:176); the
published ``siam_tracker.yaml`` lists their constants (penalty_k, window_influence, lr) but no ``smooth``
key, so that exact config runs a plain argmax of the classification map. ``smooth=False`` reproduces
that; the default uses the tuned constants (on the 10 shared sequences AUC 65.8 with, 65.6 without;
``FearXS(..., smooth=False)`` or ``tracker.smooth = False`` to switch). The size
smoothing keeps the reference formula (BT:135-138), which is not the usual lerp:
``w = (1-lr) w_prev + lr (lr w_pred + (1-lr) w_prev)``, and keeps the predicted top-left corner (BT:163).

``update()`` always returns ok=True (the Python reference has no lost-target decision; only the iOS
demo drops results below confidence 0.7); ``score`` = sigmoid of the classification logit at the chosen
cell (FT:86).
"""
from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

from mixformerv2_cpu.boxes import Box
from mixformerv2_cpu.frames import as_bgr  # the runtime's frame rule: gray / BGRA -> BGR, else an error

from . import peer_ort


# ---- constants: siam_tracker.yaml (CFG), base_tracker.py (BT), utils.py (U)
PENALTY_K = 0.062          # CFG:3 penalty_k (BT:197)
WINDOW_INFLUENCE = 0.38    # CFG:4 window_influence (BT:202-203)
LR = 0.765                 # CFG:5 lr (size learning rate, BT:159)
WINDOWING = "cosine"       # CFG:6 windowing -> outer product of Hanning windows (BT:65-66)
TOTAL_STRIDE = 16          # CFG:7 total_stride (grid step, U:195)
SCORE_SIZE = 16            # CFG:8 score_size
TEMPLATE_OFFSET = 0.2      # CFG:13 template_bbox_offset (FT:28-33)
SEARCH_CONTEXT = 2.0       # CFG:14 search_context (FT:53-59)
INSTANCE_SIZE = 256        # CFG:15 instance_size (search crop side)
TEMPLATE_SIZE = 128        # CFG:16 template_size (template crop side)
MIN_SIDE = 3               # U:202 clamp_bbox(min_side=3); BT:88-89 max(3, ...)


def cosine_window(size: int = SCORE_SIZE) -> np.ndarray:
    h = np.hanning(size)
    return np.outer(h, h)  # BT:65-66


def make_grid(score_size: int = SCORE_SIZE, stride: int = TOTAL_STRIDE,
              instance_size: int = INSTANCE_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """(S, S) x and y of every score cell in search-crop pixels: (k - S//2) * stride + instance//2 (U:184-199)."""
    k = np.arange(score_size) - np.floor(float(score_size // 2))
    x, y = np.meshgrid(k, k)
    return x * stride + instance_size // 2, y * stride + instance_size // 2


def extend_box(box, offset: float) -> np.ndarray:
    """Box enlarged by ``offset`` x its size on each side, truncated to int32 (extend_bbox, U:29-57)."""
    x, y, w, h = (float(v) for v in box)
    return np.array([x - w * offset, y - h * offset, w * (1.0 + 2 * offset), h * (1.0 + 2 * offset)]).astype(np.int32)


def inside_box(box, hw: tuple[int, int]) -> np.ndarray:
    """ensure_bbox_boundaries (U:60-71): x1, y1 clipped to the image, x2 = clip(x1 + w), int32.
    (The clipped x1 is used for x2, so a box hanging over the left / top edge moves rather than shrinks.)"""
    x1, y1, w, h = (float(v) for v in box)
    x1, y1 = min(max(0.0, x1), hw[1]), min(max(0.0, y1), hw[0])
    x2, y2 = min(max(0.0, x1 + w), hw[1]), min(max(0.0, y1 + h), hw[0])
    return np.array([x1, y1, x2 - x1, y2 - y1]).astype(np.int32)


def clamp_box(box, hw: tuple[int, int], min_side: int = MIN_SIDE) -> np.ndarray:
    """clamp_bbox (U:202-212): inside the image, then sides of at least ``min_side`` px."""
    x, y, w, h = (int(v) for v in inside_box(box, hw))
    if w < min_side:
        w = min_side
        x -= max(0, x + w - hw[1])
    if h < min_side:
        h = min_side
        y -= max(0, y + h - hw[0])
    return np.array([x, y, w, h])


def extended_crop(img: np.ndarray, box, crop_size: int, offset: float,
                  pad_value: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """get_extended_crop (U:215-253) -> (crop_size x crop_size crop, box in crop pixels (float x, y, w, h),
    context box in frame pixels (int32 x, y, w, h))."""
    ctx = extend_box(box, offset)
    H, W = img.shape[:2]
    cx, cy, cw, ch = (int(v) for v in ctx)
    pl, pt = max(-cx, 0), max(-cy, 0)
    pr, pb = max(cx + cw - W, 0), max(cy + ch - H, 0)
    crop = img[cy + pt:cy + ch - pb, cx + pl:cx + cw - pr]
    if pl or pt or pr or pb:
        crop = cv2.copyMakeBorder(crop, pt, pb, pl, pr, cv2.BORDER_CONSTANT,
                                  value=tuple(float(v) for v in pad_value))
    ph, pw = crop.shape[:2]
    inner = inside_box((box[0] - cx, box[1] - cy, box[2], box[3]), (ph, pw))  # U:249-250
    sx, sy = crop_size / pw, crop_size / ph
    out = crop if (pw, ph) == (crop_size, crop_size) else \
        cv2.resize(crop, (crop_size, crop_size), interpolation=cv2.INTER_LINEAR)
    return out, np.array([inner[0] * sx, inner[1] * sy, inner[2] * sx, inner[3] * sy]), ctx


def _limit(r):
    return np.maximum(r, 1.0 / r)  # U:74-77


def _squared_size(w, h):
    pad = (w + h) * 0.5  # U:80-86
    return np.sqrt((w + pad) * (h + pad))


def score_map(cls: np.ndarray) -> np.ndarray:
    """Classification logits (any shape holding S*S) -> (S, S) cell probabilities, sigmoid (FT:75)."""
    return 1.0 / (1.0 + np.exp(-cls.reshape(SCORE_SIZE, SCORE_SIZE).astype(np.float64)))


def decode(cls: np.ndarray, reg: np.ndarray, prev_size: np.ndarray, grid: tuple[np.ndarray, np.ndarray],
           window: np.ndarray, smooth: bool = True) -> tuple[np.ndarray, float, tuple[int, int]]:
    """Model outputs -> (box x, y, w, h in search-crop pixels, score, (row, col) of the chosen cell).

    score map = sigmoid(cls) (FT:75); boxes = grid -/+ distances (BC:91-99); with ``smooth``: penalty
    exp(-(r_c s_c - 1) k) of the scale / ratio change against ``prev_size`` (the previous box in crop
    pixels, BT:179-197), penalised score blended with the cosine window (BT:198-203), argmax (BC:102),
    size smoothed with lr = penalty x score x LR (BT:149-164); without: argmax of the score map.
    """
    score = score_map(cls)
    d = reg.reshape(4, SCORE_SIZE, SCORE_SIZE).astype(np.float64)
    gx, gy = grid
    x1, y1, x2, y2 = gx - d[0], gy - d[1], gx + d[2], gy + d[3]
    w, h = x2 - x1, y2 - y1
    if smooth:
        s_c = _limit(_squared_size(w, h) / _squared_size(prev_size[0], prev_size[1]))
        r_c = _limit((prev_size[0] / prev_size[1]) / (w / h))
        penalty = np.exp(-(r_c * s_c - 1) * PENALTY_K)
        pscore = penalty * score * (1 - WINDOW_INFLUENCE) + window * WINDOW_INFLUENCE
    else:
        penalty, pscore = None, score
    r, c = np.unravel_index(int(np.argmax(pscore)), pscore.shape)
    box = np.array([x1[r, c], y1[r, c], w[r, c], h[r, c]])
    if smooth:
        lr = penalty[r, c] * score[r, c] * LR
        size = box[2:] * lr                      # BT:135-138, as written there
        prev = np.asarray(prev_size, np.float64) * (1 - lr)
        box[2:] = prev + lr * (size + prev)
    return box, float(score[r, c]), (int(r), int(c))


def rescale(box: np.ndarray, ctx: np.ndarray) -> np.ndarray:
    """Crop box -> frame box, integer (_rescale_bbox, BT:83-90; round half to even as Python's round)."""
    ws, hs = ctx[2] / INSTANCE_SIZE, ctx[3] / INSTANCE_SIZE
    return np.array([round(box[0] * ws + ctx[0]), round(box[1] * hs + ctx[1]),
                     max(MIN_SIDE, round(box[2] * ws)), max(MIN_SIDE, round(box[3] * hs))], dtype=np.int64)


def _blob_rgb(crop_bgr: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(crop_bgr[:, :, ::-1].transpose(2, 0, 1)[None], dtype=np.float32)


class FearXS:
    """FEAR-XS with the init / update / score interface of ``mixformerv2_cpu.Tracker``."""

    name = "fear_xs"

    def __init__(self, template: Path, track: Path, threads: int | None = None, smooth: bool = True) -> None:
        peer_ort.set_threads(threads)
        self._template_net = peer_ort.session(template, threads)
        self._track_net = peer_ort.session(track, threads)
        self._template_out = self._template_net.get_outputs()[0].name
        self.smooth = bool(smooth)
        self._grid = make_grid()
        self._window = cosine_window() if WINDOWING == "cosine" else np.ones((SCORE_SIZE, SCORE_SIZE))
        self._features: np.ndarray | None = None
        self.box = np.zeros(4, np.int64)
        self._mean = np.zeros(3)
        self.score: float = math.nan

    def init(self, frame: np.ndarray, box: Box) -> None:
        """Start tracking ``box`` (x, y, w, h) in ``frame`` ((H, W, 3) uint8 BGR). FT:17-34."""
        img = as_bgr(frame)
        self.box = clamp_box(box, img.shape[:2])                    # FT:24
        self._mean = img.mean(axis=(0, 1))                          # FT:27
        crop, _, _ = extended_crop(img, self.box, TEMPLATE_SIZE, TEMPLATE_OFFSET, self._mean)  # FT:37-42
        self._features = self._template_net.run([self._template_out], {"image": _blob_rgb(crop)})[0]
        self.score = math.nan

    def _search(self, img: np.ndarray, box, caller: str):
        """One search step on the region around ``box`` -> (bbox, cls outputs, box in crop pixels,
        context box in frame pixels). FT:53-59."""
        if self._features is None:
            raise RuntimeError(f"{self.name}: {caller}() called before init()")
        crop, crop_box, ctx = extended_crop(img, box, INSTANCE_SIZE, SEARCH_CONTEXT, self._mean)
        reg, cls = self._track_net.run(["bbox", "cls"], {"image": _blob_rgb(crop),
                                                          "template_features": self._features})
        return reg, cls, crop_box, ctx

    def update(self, frame: np.ndarray) -> tuple[bool, Box]:
        """Track into ``frame``; returns (True, (x, y, w, h)). FT:46-86."""
        img = as_bgr(frame)
        reg, cls, crop_box, ctx = self._search(img, self.box, "update")
        box, self.score, _ = decode(cls, reg, crop_box[2:], self._grid, self._window, self.smooth)
        self.box = clamp_box(rescale(box, ctx), img.shape[:2])     # FT:63-64
        x, y, w, h = (float(v) for v in self.box)
        return True, (x, y, w, h)

    def score_at(self, frame: np.ndarray, box: Box, within: float | None = None) -> float:
        """FEAR-XS's confidence that its target is in the search region centred on ``box`` (x, y, w, h);
        the tracked box is left as it was. The largest cell probability (sigmoid of the classification
        map, no window or penalties) over the whole region, or with ``within`` (px) over the cells whose
        centres lie in the square of that side centred on the box: "is the target in *this* crop",
        asked of crops chosen by someone else (a score teacher, ``train/sampling.py``); 0.0 when no cell
        lies in it."""
        img = as_bgr(frame)
        b = clamp_box(box, img.shape[:2])
        _, cls, _, ctx = self._search(img, b, "score_at")
        prob = score_map(cls)
        if within is not None:
            gx, gy = self._grid  # cell centres in search-crop pixels -> frame pixels
            ix, iy = ctx[0] + gx * ctx[2] / INSTANCE_SIZE, ctx[1] + gy * ctx[3] / INSTANCE_SIZE
            cx, cy = b[0] + b[2] / 2, b[1] + b[3] / 2
            inside = (np.abs(ix - cx) <= within / 2) & (np.abs(iy - cy) <= within / 2)
            if not inside.any():
                return 0.0
            prob = prob[inside]
        return float(prob.max())
