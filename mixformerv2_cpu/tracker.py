"""cv2-style single- and multi-target trackers: init / update / score / reset.

Per frame: crop the search region around each target's last box, normalise, run the search
step against the cached template keys/values (one batched call for all targets), decode the
edge distributions, map back and clip, then the online template rule. Templates are encoded
at ``init`` and again only when a target's online template changes.

With ``recovery`` on in the preset, a lost target (:mod:`.recovery`) contributes several crops to
the same batched call (its crop plan) instead of one, and keeps its box and online template until
a candidate re-acquires it.
"""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from .boxes import Box, bin_positions, validate_box
from .decode import decode_boxes, edge_peak
from .engine import Engine, TemplateState
from .errors import InvalidBoxError, InvalidFrameError, NotInitializedError
from .frames import as_bgr
from .geometry import clip_box, map_back, sample_target, scale_box
from .preprocess import input_shape, network_input
from .presets import Preset, load_preset
from .recovery import Candidate, CropSpec, RecoverySettings, RecoveryState, crop_budgets, plan_crops
from .template import OnlineTemplatePolicy

MAX_CROP_SIDE_FACTOR = 4  # crop side cap = 4 * max(frame H, W): only padding lies beyond it


@dataclass(frozen=True)
class Prediction:
    """The last update of one target.

    distributions: (4, bins) probabilities of the left, top, right, bottom edge positions.
    crop_box / crop_side: the box the search crop was centred on and the crop side in image pixels.
    edge_positions: (4, bins) image coordinate of each bin (x for left/right, y for top/bottom),
    computed on first access (only drawing and analysis need it, not the tracking loop).
    """

    box: Box
    score: float
    distributions: np.ndarray
    crop_box: Box
    crop_side: float

    @cached_property
    def edge_positions(self) -> np.ndarray:
        return bin_positions(self.crop_box, self.crop_side, self.distributions.shape[-1])


@dataclass
class _Target:
    box: Box
    policy: OnlineTemplatePolicy[np.ndarray]
    recovery: RecoveryState
    frame_id: int = 0
    score: float = float("nan")
    prediction: Prediction | None = None
    updated: bool = False
    ok: bool = True


@dataclass
class _Session:
    size: tuple[int, int]  # frame (H, W) at init
    targets: list[_Target] = field(default_factory=list)
    templates: TemplateState | None = None
    frames: int = 0  # update() calls so far (rotates the lost targets' shares of the crop budget)


class MultiTracker:
    """Track N targets in one frame with one batched inference per frame.

    Each target follows exactly the single-target rule (results equal N separate Trackers while at most
    one target is lost): every target has its own recovery state machine, and a lost target adds its crop plan
    (up to ``max_crops_per_frame`` crops) to the frame's batch. Several targets lost at once share one
    lost target's budget (``max_crops_per_frame`` + lost - 1 crops, at least one each, the remainder
    rotating; :func:`~.recovery.crop_budgets`): a lost frame costs the same however many targets are
    lost, and each of them searches the frame more slowly than a lone Tracker would.
    """

    def __init__(self, model: str | os.PathLike | None = None, backend: str = "auto",
                 preset: str | Path | Mapping[str, Any] | Preset | None = None, threads: int | None = None,
                 precision: str = "auto", graphs: str = "cached") -> None:
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
        return network_input(crop.patch, m)

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
        settings = RecoverySettings.from_preset(self.preset)
        for b, t in zip(boxes, tensors):
            policy = OnlineTemplatePolicy(initial=t, interval=self.preset.update_interval,
                                          gate=self.preset.update_gate, decay=self.preset.score_decay)
            session.targets.append(_Target(box=b, policy=policy, recovery=RecoveryState(settings, b)))
        stacked = np.concatenate(tensors)
        session.templates = TemplateState(stacked, stacked.copy(), None)
        self._session = session
        self._refresh_templates(list(range(len(boxes))))
        self.engine.prepare(self._batch_sizes(len(boxes)))

    def _batch_sizes(self, n: int) -> set[int]:
        """Search batch sizes to prepare at init for ``n`` targets: all tracking, and with recovery
        the batch of a lost frame (one target's full crop plan beside the others' tracking crops;
        several lost targets share that budget). A shorter plan (a frame covered by few crops) runs
        padded to the prepared size on backends with static shapes, so no frame compiles one."""
        sizes = {n}
        if self.preset.recovery:
            sizes.add(n - 1 + self.preset.max_crops_per_frame)
        return sizes

    def update(self, frame: np.ndarray) -> list[tuple[bool, Box]]:
        """Track every target into ``frame``; returns [(ok, (x, y, w, h)), ...] in init order."""
        frame = self._frame(frame)
        s = self._session
        m, p = self.engine.meta, self.preset
        h, w = s.size
        lost = [i for i, t in enumerate(s.targets) if t.recovery.searching]
        budgets = dict(zip(lost, crop_budgets(len(lost), p.max_crops_per_frame, s.frames)))
        s.frames += 1
        plans = [plan_crops(t.recovery, h, w, budgets[i]) if i in budgets
                 else [CropSpec(t.box, p.search_factor, "track")] for i, t in enumerate(s.targets)]
        spans, specs = [], []  # target i's crops are specs[spans[i]]
        for plan in plans:
            spans.append(range(len(specs), len(specs) + len(plan)))
            specs.extend(plan)
        crops = [self._crop(frame, c.box, c.factor, m.search_size) for c in specs]
        batch = self._search_batch(len(crops))
        for k, c in enumerate(crops):
            network_input(c.patch, m, out=batch[k])
        logits, scores = self.engine.search(batch, self._batch_templates(spans))
        pred, probs = decode_boxes(logits)
        preds = [self._prediction(c, crop, pred[k], probs[k], float(scores[k]))
                 for k, (c, crop) in enumerate(zip(specs, crops))]
        changed = []
        for i, t in enumerate(s.targets):
            t.frame_id, t.updated = t.frame_id + 1, False
            idx = spans[i]
            mine = [preds[k] for k in idx]
            if t.recovery.searching:  # lost: box and online template stay unless a centred crop re-acquires
                found = t.recovery.lost_frame([Candidate(specs[k].kind, q.score, q.box) for k, q in zip(idx, mine)])
                t.prediction = mine[found] if found is not None else max(mine, key=lambda q: q.score)
                t.score, t.ok = t.prediction.score, found is not None
                t.box = t.prediction.box if found is not None else t.recovery.anchor
                continue
            t.prediction = mine[0]
            t.box, t.score = t.prediction.box, t.prediction.score
            peak = float(edge_peak(t.prediction.distributions)) if p.lost_peak_ratio > 0 else None
            t.recovery.observe(t.box, t.score, peak)
            t.ok = t.score >= p.lost_threshold if not p.recovery else not t.recovery.low
            if t.recovery.searching:  # just lost: back to the last box that was not low, kept while lost
                t.box = t.recovery.anchor
                continue
            # online template rule (with recovery on, a low frame never becomes the candidate)
            if t.policy.wants_candidate(t.score) and not (p.recovery and t.recovery.low):
                t.policy.set_candidate(self._template_tensor(frame, t.box), t.score)
            new_online = t.policy.step(t.frame_id)
            if new_online is not None:
                s.templates.online[i] = new_online[0]
                t.updated = True
                changed.append(i)
        if changed:
            self._refresh_templates(changed)
        return [(t.ok, self._reported(t.box)) for t in s.targets]

    def _reported(self, box: Box) -> Box:
        """The box update() returns for the tracker's own box ``box``: scaled about its centre by the
        model's ``box_scale`` calibration (metadata) and clipped as predictions are; ``box`` itself
        when the scale is 1 (reference models). The search, the template crops and recovery keep
        using the network's own box, so a calibration never changes what the tracker follows."""
        scale = self.engine.meta.box_scale
        if scale == 1.0:
            return box
        h, w = self._session.size
        return clip_box(scale_box(box, scale), h, w, margin=self.preset.min_box_side)

    def _prediction(self, spec: CropSpec, crop, pred: np.ndarray, probs: np.ndarray, score: float) -> Prediction:
        """Decoded output of one crop centred on ``spec.box``: pred (4,) normalised cx,cy,w,h, probs
        (4, bins) -> Prediction with the clipped image box and the image position of every bin."""
        m = self.engine.meta
        h, w = self._session.size
        box = clip_box(map_back(pred, spec.box, m.search_size, crop.resize_factor), h, w,
                       margin=self.preset.min_box_side)
        return Prediction(box, score, probs, spec.box, m.search_size / crop.resize_factor)

    def _batch_templates(self, spans: list[range]) -> TemplateState:
        """Templates of this frame's crops, target i owning the crops ``spans[i]`` (consecutive, in
        target order): the session's own state when every target has exactly one crop, else its
        rows gathered."""
        st = self._session.templates
        if all(len(r) == 1 for r in spans):
            return st
        owner = np.repeat(np.arange(len(spans)), [len(r) for r in spans])
        return TemplateState(st.template[owner], st.online[owner], None if st.kv is None else st.kv[owner])

    def _search_batch(self, n: int) -> np.ndarray:
        """The (n, *input_shape) float32 input buffer of the search step ((n,3,S,S) or (n,S,S,3), as the
        model's input format says), allocated once per target count."""
        if self._batch is None or len(self._batch) != n:
            m = self.engine.meta
            self._batch = np.empty((n, *input_shape(m.input_format, m.search_size)), np.float32)
        return self._batch

    def _refresh_templates(self, idx: list[int]) -> None:
        """Re-encode the templates of targets ``idx``, one at a time: the template graph only ever
        runs with batch 1 (no recompilation for every count of targets that change together)."""
        st = self._session.templates
        for i in idx:
            kv = self.engine.encode_templates(st.template[i:i + 1], st.online[i:i + 1]).kv
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
        return [t.updated for t in self._session.targets] if self._session else []

    @property
    def states(self) -> list[str]:
        """"tracking" or "lost" per target (:mod:`.recovery`); with recovery off "lost" is only a label."""
        return [t.recovery.state for t in self._session.targets] if self._session else []

    def reset(self) -> None:
        """Forget the targets; the model stays loaded. Call init() to start again."""
        self._session = None


class Tracker:
    """Single-target tracker with the OpenCV tracker interface.

    Lost-target recovery (rules in :mod:`.recovery`): ``state`` is "tracking" or "lost" (lost when
    ``lost_frames`` of the last 2 x lost_frames scores were low: under max(lost_threshold,
    lost_ratio x the target's typical score)). With ``recovery`` on (the ``default`` preset) ok is
    False on low frames; a lost tracker reports its last box that was not low with ok=False, stops
    updating the online template and searches wider (a crop grown around that box, then the whole
    frame at the target's scale; at most ``max_crops_per_frame`` crops per frame, one batched
    inference) until a crop centred on a candidate scores max(reacquire_threshold, reacquire_ratio
    x typical score). With it off (the reference presets) the box follows the reference rule and
    "lost" is only a label.

    ``Tracker(model=None, backend="auto", preset=None, threads=None, precision="auto")``: ``model``
    is a registered name, an export folder, its manifest or one of its files (None = the default
    model); ``preset`` a name (see ``available_presets()``), a JSON file, a dict of values or None
    ('default'). ``update()`` returns ``ok = score >= preset.lost_threshold`` (0.3 in the shipped
    presets), with recovery on ok=False also on low frames and while lost (see above).

    ``backend``: "openvino", "onnxruntime" or "auto" (default: the faster one for this CPU and
    model, from a short timed trial on first use, cached per machine and model; see
    ``tracker.engine.description``). ``precision``: "auto" (default: the fastest precision whose
    accuracy was measured for this model: fp32, or int8 when the export's int8 report passed its
    gate), "fp32" (reference-exact), "int8" (the export's int8 graphs that passed its gate: ONNX
    Runtime's dynamic int8 with 7-bit weights, or NNCF OpenVINO IR, each run by its own backend) or
    "bf16" (fp32 files computed in bfloat16 by OpenVINO on CPUs with AVX512-BF16/AMX; never chosen
    automatically). ``threads``: an int >= 1 or None (the backend's default). ``graphs``: "cached"
    (default: templates encoded once, search step per frame) or "full" (the single full graph
    every frame, as public ports run it: a baseline and cross-check).
    """

    def __init__(self, model: str | os.PathLike | None = None, backend: str = "auto",
                 preset: str | Path | Mapping[str, Any] | Preset | None = None, threads: int | None = None,
                 precision: str = "auto", graphs: str = "cached") -> None:
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

    @property
    def state(self) -> str:
        """"tracking" or "lost" (see the class docstring); "tracking" before init."""
        states = self._multi.states
        return states[0] if states else "tracking"

    def reset(self) -> None:
        self._multi.reset()
