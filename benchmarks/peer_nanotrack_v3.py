"""NanoTrack v3 peer: the reference Python tracking loop of NanoTrack on its v3 ONNX files, on ONNX Runtime.

OpenCV's ``cv2.TrackerNano`` is written for the v2 head (16x16 maps) and fails on the v3 files (15x15
maps), so the loop is written here, after the reference tracker of the repository
https://github.com/HonglinChu/SiamTrackers (Apache-2.0), read at commit 4dbbbbc99d4e:

* ``NanoTrack/nanotrack/tracker/nano_tracker.py`` (``NanoTracker.init`` / ``track``; cited as NT:line),
* ``NanoTrack/nanotrack/tracker/base_tracker.py`` (``SiameseTracker.get_subwindow``; cited as BT:line),
* ``NanoTrack/models/config/configv3.yaml`` (the v3 hyper-parameters; cited as CFG:line).

Model files (``nanotrack_v3/`` of the peers folder, see its SOURCE.txt): ``nanotrack_backbone.onnx``
('input' [1,3,255,255] raw BGR 0..255 -> 'output' [1,96,16,16]) and ``nanotrack_head.onnx`` ('input1'
template features [1,96,8,8], 'input2' search features [1,96,16,16] -> 'output1' cls logits [1,2,15,15],
'output2' box distances [1,4,15,15], already exponentiated).

Template features: the reference runs the backbone on the 127x127 exemplar crop itself
(``ModelBuilder.template``: ``zf = self.backbone(z)``, NanoTrack/nanotrack/models/model_builder.py:36-38)
which gives the 8x8 map the head takes as 'input1'; the head crops its centre 4x4 internally
(``DepthwiseBAN.crop``, NanoTrack/nanotrack/models/head/ban_v3.py). There is no pysot-style crop of a
larger feature map. The exported backbone declares a fixed 255x255 input, so the template session uses
the same file with the declared input size set to 127x127 (:func:`.peer_ort.with_fixed_hw`; the graph
is fully convolutional, OpenCV's dnn gives the same 8x8 features within 1e-5).

Everything but the two ``session.run`` calls is numpy / OpenCV: :func:`subwindow` (crop),
:func:`decode` (maps -> candidate boxes and scores) and :func:`select` (penalties, window, smoothing,
clipping) are pure functions. ``update()`` always returns ok=True: the reference loop has no
lost-target decision (``cv2.TrackerNano`` also returns true on every frame); ``score`` is the
classification probability of the chosen location (NT:161).
"""
from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

from mixformerv2_cpu.boxes import Box
from mixformerv2_cpu.frames import as_bgr  # the runtime's frame rule: gray / BGRA -> BGR, else an error

from . import peer_ort


# ---- constants of the reference (configv3.yaml = CFG, nano_tracker.py = NT, base_tracker.py = BT)
EXEMPLAR_SIZE = 127      # CFG:35 TRACK.EXEMPLAR_SIZE (template crop side)
INSTANCE_SIZE = 255      # CFG:36 TRACK.INSTANCE_SIZE (search crop side)
CONTEXT_AMOUNT = 0.5     # CFG:38 TRACK.CONTEXT_AMOUNT (crop side = sqrt((w + a(w+h)) (h + a(w+h))), NT:76-78)
STRIDE = 16              # CFG:29 POINT.STRIDE (grid step of the score map in search-crop pixels)
SCORE_SIZE = 15          # CFG:39 TRACK.OUTPUT_SIZE (score map side; NT:18)
WINDOW_INFLUENCE = 0.455  # CFG:32 TRACK.WINDOW_INFLUENCE (Hanning window weight, NT:130)
PENALTY_K = 0.138        # CFG:33 TRACK.PENALTY_K (scale / ratio change penalty, NT:124)
LR = 0.348               # CFG:34 TRACK.LR (size smoothing rate, times penalty x score, NT:137)
MIN_SIZE = 10            # NT:61-62 (_bbox_clip: width, height clipped to [10, frame side])
TEMPLATE_FEAT = 8        # head 'input1' side: backbone on the 127 crop (model_builder.py:36-38)


def hanning_window(size: int = SCORE_SIZE) -> np.ndarray:
    """Flattened outer product of two Hanning windows (NT:20-23)."""
    h = np.hanning(size)
    return np.outer(h, h).ravel()


def grid_points(stride: int = STRIDE, size: int = SCORE_SIZE) -> np.ndarray:
    """(size*size, 2) x, y of every score-map cell relative to the crop centre, row-major (NT:29-36):
    ``-(size // 2) * stride + stride * k``."""
    k = -(size // 2) * stride + stride * np.arange(size, dtype=np.float32)
    x, y = np.meshgrid(k, k)
    return np.stack([x.ravel(), y.ravel()], axis=1)


def subwindow(img: np.ndarray, center: np.ndarray, out_size: int, crop_size: int,
              avg: np.ndarray) -> np.ndarray:
    """The square ``crop_size`` crop centred on ``center``, padded with the frame mean, resized to
    ``out_size`` (uint8 HxWx3, same channel order as ``img``).

    Same pixels as ``get_subwindow`` (BT:37-90): the window starts at floor(c - (s+1)/2 + 0.5) (BT:50-55),
    outside pixels take ``avg`` cast to uint8 (numpy assignment truncates, BT:70-79), then
    ``cv2.resize`` (bilinear) when the sizes differ (BT:86-87). Only the window is built, not the whole
    padded frame.
    """
    sz = int(crop_size)
    c = (sz + 1) / 2
    x0 = int(np.floor(center[0] - c + 0.5))
    y0 = int(np.floor(center[1] - c + 0.5))
    h, w = img.shape[:2]
    if x0 >= 0 and y0 >= 0 and x0 + sz <= w and y0 + sz <= h:
        patch = img[y0:y0 + sz, x0:x0 + sz]
    else:
        patch = np.empty((sz, sz, img.shape[2]), np.uint8)
        patch[:] = avg.astype(np.uint8)
        ix0, iy0, ix1, iy1 = max(x0, 0), max(y0, 0), min(x0 + sz, w), min(y0 + sz, h)
        if ix1 > ix0 and iy1 > iy0:
            patch[iy0 - y0:iy1 - y0, ix0 - x0:ix1 - x0] = img[iy0:iy1, ix0:ix1]
    if sz != out_size:
        patch = cv2.resize(patch, (out_size, out_size))
    return patch


def decode(cls: np.ndarray, reg: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Head outputs -> (score (N,), boxes (4, N) as cx, cy, w, h in search-crop pixels relative to the
    crop centre). ``cls``: (1, 2, S, S) logits, score = softmax over the 2 channels, channel 1 (NT:49-56);
    ``reg``: (1, 4, S, S) left, top, right, bottom distances from each grid point (NT:38-47)."""
    logits = cls.reshape(2, -1).astype(np.float64)
    m = logits.max(axis=0)
    e = np.exp(logits - m)
    score = e[1] / e.sum(axis=0)
    d = reg.reshape(4, -1).astype(np.float64)
    x1, y1 = points[:, 0] - d[0], points[:, 1] - d[1]
    x2, y2 = points[:, 0] + d[2], points[:, 1] + d[3]
    boxes = np.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1])  # corner2center
    return score, boxes


def _change(r: np.ndarray) -> np.ndarray:
    return np.maximum(r, 1.0 / r)  # NT:110-111


def _sz(w, h):
    pad = (w + h) * 0.5  # NT:113-115
    return np.sqrt((w + pad) * (h + pad))


def select(score: np.ndarray, boxes: np.ndarray, center: np.ndarray, size: np.ndarray, scale_z: float,
           frame_hw: tuple[int, int], window: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, int]:
    """One tracking step after decoding -> (new centre, new size, score, chosen index).

    Scale and aspect-ratio change penalty exp(-(r_c s_c - 1) k) against the current size in crop
    scale (NT:117-124), penalised score blended with the Hanning window (NT:127-131), argmax (NT:133),
    box back to frame scale (NT:135), size smoothed with lr = penalty x score x LR (NT:137-146),
    centre and size clipped to the frame (NT:149-150, _bbox_clip NT:58-63).
    """
    s_c = _change(_sz(boxes[2], boxes[3]) / _sz(size[0] * scale_z, size[1] * scale_z))
    r_c = _change((size[0] / size[1]) / (boxes[2] / boxes[3]))
    penalty = np.exp(-(r_c * s_c - 1) * PENALTY_K)
    pscore = penalty * score
    pscore = pscore * (1 - WINDOW_INFLUENCE) + window * WINDOW_INFLUENCE
    best = int(np.argmax(pscore))
    bbox = boxes[:, best] / scale_z
    lr = penalty[best] * score[best] * LR
    cx, cy = bbox[0] + center[0], bbox[1] + center[1]
    width = size[0] * (1 - lr) + bbox[2] * lr
    height = size[1] * (1 - lr) + bbox[3] * lr
    fh, fw = frame_hw
    cx, cy = max(0.0, min(cx, fw)), max(0.0, min(cy, fh))
    width, height = max(MIN_SIZE, min(width, fw)), max(MIN_SIZE, min(height, fh))
    return np.array([cx, cy]), np.array([width, height]), float(score[best]), best


def crop_side(size: np.ndarray) -> float:
    """Unrounded template crop side sqrt(w_z h_z) with the context amount (NT:76-78, NT:96-98)."""
    ctx = CONTEXT_AMOUNT * float(size[0] + size[1])
    return math.sqrt((size[0] + ctx) * (size[1] + ctx))


def _blob(patch: np.ndarray) -> np.ndarray:
    # raw BGR 0..255 as float32 NCHW, no normalisation (BT:88-90)
    return np.ascontiguousarray(patch.transpose(2, 0, 1)[None], dtype=np.float32)


class NanoTrackV3:
    """NanoTrack v3 with the init / update / score interface of ``mixformerv2_cpu.Tracker``."""

    name = "nanotrack_v3"

    def __init__(self, backbone: Path, head: Path, threads: int | None = None) -> None:
        peer_ort.set_threads(threads)
        self._search_net = peer_ort.session(backbone, threads)
        self._template_net = peer_ort.session(peer_ort.with_fixed_hw(
            backbone, {"input": (EXEMPLAR_SIZE, EXEMPLAR_SIZE), "output": (TEMPLATE_FEAT, TEMPLATE_FEAT)}), threads)
        # the 15x15 head runs at 1 thread: a second multi-thread pool spinning beside the backbone's costs
        # more than it gives (boat1, 2 threads, 2-core EPYC: mean 3.20 ms, p90 6.23 -> mean 1.88, p90 2.34)
        self._head = peer_ort.session(head, 1 if threads else threads)
        self._window = hanning_window()
        self._points = grid_points()
        self._zf: np.ndarray | None = None
        self.center = np.zeros(2)
        self.size = np.ones(2)
        self._avg = np.zeros(3)
        self.score: float = math.nan

    def init(self, frame: np.ndarray, box: Box) -> None:
        """Start tracking ``box`` (x, y, w, h) in ``frame`` ((H, W, 3) uint8 BGR). NT:65-87."""
        img = as_bgr(frame)
        x, y, w, h = (float(v) for v in box)
        self.center = np.array([x + (w - 1) / 2, y + (h - 1) / 2])  # NT:71-72
        self.size = np.array([max(w, 1.0), max(h, 1.0)])      # NT:73 (w, h >= 1 px here)
        s_z = int(round(crop_side(self.size)))                     # NT:78 (round)
        self._avg = img.mean(axis=(0, 1))                           # NT:81
        z = subwindow(img, self.center, EXEMPLAR_SIZE, max(s_z, 1), self._avg)
        self._zf = self._template_net.run(None, {"input": _blob(z)})[0]
        self.score = math.nan

    def update(self, frame: np.ndarray) -> tuple[bool, Box]:
        """Track into ``frame``; returns (True, (x, y, w, h)). NT:89-165."""
        if self._zf is None:
            raise RuntimeError(f"{self.name}: update() called before init()")
        img = as_bgr(frame)
        s_z = crop_side(self.size)
        scale_z = EXEMPLAR_SIZE / s_z                                # NT:99
        s_x = s_z * (INSTANCE_SIZE / EXEMPLAR_SIZE)                  # NT:100
        x = subwindow(img, self.center, INSTANCE_SIZE, int(round(s_x)), self._avg)  # NT:101-103
        xf = self._search_net.run(None, {"input": _blob(x)})[0]
        cls, reg = self._head.run(["output1", "output2"], {"input1": self._zf, "input2": xf})
        score, boxes = decode(cls, reg, self._points)
        self.center, self.size, self.score, _ = select(score, boxes, self.center, self.size, scale_z,
                                                       img.shape[:2], self._window)
        cx, cy = self.center
        w, h = self.size
        return True, (float(cx - w / 2), float(cy - h / 2), float(w), float(h))  # NT:156-159
