"""cv2-style single- and multi-target trackers: init / update / score / reset.

Per frame: crop the search region around each target's last box, normalise, run the search
step against the cached template keys/values (one batched call for all targets), decode the
edge distributions, map back and clip, then the online template rule. Templates are encoded
at ``init`` and again only when a target's online template changes.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from .decode import decode_boxes
from .engine import Engine, TemplateState
from .errors import InvalidBoxError, InvalidFrameError, NotInitializedError
from .frames import as_bgr
from .geometry import Box, clip_box, map_back, sample_target, validate_box
from .preprocess import normalize_patch
from .presets import Preset, load_preset
from .template import OnlineTemplatePolicy

MAX_CROP_SIDE_FACTOR = 4  # crop side cap = 4 * max(frame H, W): only padding lies beyond it


@dataclass(frozen=True)
class Prediction:
    """The last update of one target.

    distributions: (4, bins) probabilities of the left, top, right, bottom edge positions.
    edge_positions: (4, bins) image coordinate of each bin (x for left/right, y for top/bottom).
    """

    box: Box
    score: float
    distributions: np.ndarray
    edge_positions: np.ndarray


@dataclass
class _Target:
    box: Box
    policy: OnlineTemplatePolicy[np.ndarray]
    frame_id: int = 0
    score: float = float("nan")
    prediction: Prediction | None = None


@dataclass
class _Session:
    size: tuple[int, int]  # frame (H, W) at init
    targets: list[_Target] = field(default_factory=list)
    templates: TemplateState | None = None


class MultiTracker:
    """Track N targets in one frame with one batched inference per frame.

    Each target follows exactly the single-target rule (results equal N separate Trackers).
    """

    def __init__(self, model: str | os.PathLike | None = None, backend: str = "openvino",
                 preset: str | Path | Mapping[str, Any] | Preset | None = None, threads: int | None = None,
                 precision: str = "fp32", graphs: str = "cached") -> None:
        self.engine = Engine(model, backend, threads, precision, graphs)
        self.preset = load_preset(preset, self.engine.variant)
        self._session: _Session | None = None
        self._batch: np.ndarray | None = None

    # -- geometry helpers -------------------------------------------------------------------
    def _crop(self, frame: np.ndarray, box: Sequence[float], factor: float, size: int):
        cap = MAX_CROP_SIDE_FACTOR * max(frame.shape[:2])
        return sample_target(frame, box, factor, size, max_side=cap)

    def _template_tensor(self, frame: np.ndarray, box: Sequence[float]) -> np.ndarray:
        m = self.engine.meta
        crop = self._crop(frame, box, self.preset.template_factor, m.template_size)
        return normalize_patch(crop.patch, m.mean, m.std)

    def _frame(self, frame: object) -> np.ndarray:
        if self._session is None:
            raise NotInitializedError("update() called before init()")
        frame = as_bgr(frame)
        if frame.shape[:2] != self._session.size:
            h, w = self._session.size
            raise InvalidFrameError(f"frame size changed from {w}x{h} at init to {frame.shape[1]}x{frame.shape[0]}; "
                                    "call init() again for a new video")
        return frame

    # -- API --------------------------------------------------------------------------------
    def init(self, frame: np.ndarray, boxes: Sequence[Sequence[float]]) -> None:
        """Start tracking the targets ``boxes`` (each x, y, w, h in pixels) in ``frame`` (BGR uint8)."""
        frame = as_bgr(frame)
        h, w = frame.shape[:2]
        if not isinstance(boxes, (Sequence, np.ndarray)) or any(np.isscalar(b) for b in boxes):
            raise InvalidBoxError(f"boxes must be a list of (x, y, w, h) boxes (one box: [box]), got {boxes!r}")
        if len(boxes) == 0:
            raise InvalidBoxError("init() needs at least one box, got an empty list")
        boxes = [validate_box(b, h, w) for b in boxes]
        tensors = [self._template_tensor(frame, b) for b in boxes]
        session = _Session((h, w))
        for b, t in zip(boxes, tensors):
            policy = OnlineTemplatePolicy(initial=t, interval=self.preset.update_interval,
                                          gate=self.preset.update_gate, decay=self.preset.score_decay)
            session.targets.append(_Target(box=b, policy=policy))
        stacked = np.concatenate(tensors)
        session.templates = TemplateState(stacked, stacked.copy(), None)
        self._session = session
        self._refresh_templates(list(range(len(boxes))))

    def update(self, frame: np.ndarray) -> list[tuple[bool, Box]]:
        """Track every target into ``frame``; returns [(ok, (x, y, w, h)), ...] in init order."""
        frame = self._frame(frame)
        s = self._session
        m, p = self.engine.meta, self.preset
        crops = [self._crop(frame, t.box, p.search_factor, m.search_size) for t in s.targets]
        batch = self._search_batch(len(crops))
        for i, c in enumerate(crops):
            normalize_patch(c.patch, m.mean, m.std, out=batch[i])
        logits, scores = self.engine.search(batch, s.templates)
        pred, probs = decode_boxes(logits)
        changed = []
        h, w = s.size
        bins = np.arange(m.bins) / m.bins
        for i, (t, crop) in enumerate(zip(s.targets, crops)):
            side = m.search_size / crop.resize_factor
            x0 = t.box[0] + 0.5 * t.box[2] - 0.5 * side
            y0 = t.box[1] + 0.5 * t.box[3] - 0.5 * side
            edges = np.stack([x0 + bins * side, y0 + bins * side, x0 + bins * side, y0 + bins * side])
            box = clip_box(map_back(pred[i], t.box, m.search_size, crop.resize_factor), h, w)
            score = float(scores[i])
            t.box, t.score, t.frame_id = box, score, t.frame_id + 1
            t.prediction = Prediction(box, score, probs[i], edges)
            if t.policy.wants_candidate(score):
                t.policy.set_candidate(self._template_tensor(frame, box), score)
            new_online = t.policy.step(t.frame_id)
            if new_online is not None:
                s.templates.online[i] = new_online[0]
                changed.append(i)
        if changed:
            self._refresh_templates(changed)
        return [(t.score >= p.lost_threshold, t.box) for t in s.targets]

    def _search_batch(self, n: int) -> np.ndarray:
        """The (n,3,S,S) float32 input buffer of the search step, allocated once per target count."""
        if self._batch is None or len(self._batch) != n:
            size = self.engine.meta.search_size
            self._batch = np.empty((n, 3, size, size), np.float32)
        return self._batch

    def _refresh_templates(self, idx: list[int]) -> None:
        """Re-encode the templates of targets ``idx``, one at a time: the template graph only ever
        runs with batch 1 (no recompilation for every count of targets that change together)."""
        st = self._session.templates
        for i in idx:
            kv = self.engine.templates(st.template[i:i + 1], st.online[i:i + 1]).kv
            if kv is None:  # full-graph mode keeps only the crops
                continue
            if st.kv is None:
                st.kv = np.empty((len(st.template),) + kv.shape[1:], kv.dtype)
            st.kv[i] = kv[0]

    @property
    def scores(self) -> list[float]:
        return [t.score for t in self._session.targets] if self._session else []

    @property
    def predictions(self) -> list[Prediction | None]:
        return [t.prediction for t in self._session.targets] if self._session else []

    @property
    def updated(self) -> list[bool]:
        """Whether each target's online template was replaced in the last update."""
        return [t.frame_id > 0 and t.frame_id % self.preset.update_interval == 0 for t in self._session.targets] \
            if self._session else []

    def reset(self) -> None:
        """Forget the targets; the model stays loaded. Call init() to start again."""
        self._session = None


class Tracker:
    """Single-target tracker with the OpenCV tracker interface.

    ``Tracker(model=None, backend="openvino", preset=None, threads=None)``: ``model`` is a
    registered name, an export folder or its manifest (None = the default model); ``preset``
    a name (see ``available_presets()``), a JSON file, a dict of values or None ('default').
    ``update()`` returns ``ok = score >= preset.lost_threshold`` (0.3 in the shipped presets);
    the box follows the reference rule either way.

    ``precision``: "fp32" (default, reference-exact), "int8" (the export's NNCF-quantised
    OpenVINO graphs, if exported) or "bf16" (fp32 files computed in bfloat16 by OpenVINO on CPUs
    with AVX512-BF16/AMX: about 2x faster there, not reference-exact). ``graphs``: "cached"
    (default: templates encoded once, search step per frame) or "full" (the single full graph
    every frame, as public ports run it: a baseline and cross-check).
    """

    def __init__(self, model: str | os.PathLike | None = None, backend: str = "openvino",
                 preset: str | Path | Mapping[str, Any] | Preset | None = None, threads: int | None = None,
                 precision: str = "fp32", graphs: str = "cached") -> None:
        self._multi = MultiTracker(model, backend, preset, threads, precision, graphs)

    @property
    def engine(self) -> Engine:
        return self._multi.engine

    @property
    def preset(self) -> Preset:
        return self._multi.preset

    def init(self, frame: np.ndarray, box: Sequence[float]) -> None:
        """Start tracking ``box`` (x, y, w, h in pixels, top-left origin) in ``frame`` (BGR uint8 H×W×3)."""
        self._multi.init(frame, [box])

    def update(self, frame: np.ndarray) -> tuple[bool, Box]:
        """Track into the next frame: ``ok, (x, y, w, h)``."""
        return self._multi.update(frame)[0]

    @property
    def score(self) -> float:
        """Confidence of the last update, 0..1 (NaN right after init)."""
        scores = self._multi.scores
        return scores[0] if scores else float("nan")

    @property
    def last_prediction(self) -> Prediction | None:
        preds = self._multi.predictions
        return preds[0] if preds else None

    @property
    def updated(self) -> bool:
        """Whether the online template was replaced in the last update."""
        return bool(self._multi.updated and self._multi.updated[0])

    def reset(self) -> None:
        self._multi.reset()
