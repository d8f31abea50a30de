"""Lost-target recovery: the tracking / lost state machine and the plan of candidate crops while lost.

The reference tracker searches one crop around the last box forever. Here every frame's score is
judged against the target's *typical score* ``ref`` (median of its last ``HISTORY`` confident scores;
the model scores some targets 0.99 and others 0.85): a frame is *low* when its score is under
``max(lost_threshold, lost_ratio * ref)``. When ``lost_frames`` of the last ``2 * lost_frames``
frames were low, the target is *lost*; with ``lost_peak_ratio`` > 0 only low frames whose *peak*
(mean over the four edge distributions of their largest probability) is under ``lost_peak_ratio``
times the target's typical peak (median over the same frames as ``ref``) count: a target that is
still there but scored low keeps sharp edges, an absent one does not. With ``recovery`` off that is
only a label. With it on:

* the reported box goes back to the *anchor* (the last box that was not low) and stays there,
  reported with ok=False; the online template is not updated;
* every lost frame evaluates at most ``max_crops`` search crops in one batched inference: the
  "local" crop around the anchor at the preset's search factor, the "verify" crops of the
  candidates found on the previous frame, then the next items of a *candidate cycle*: crops around
  the anchor grown by ``growth_factors``, then "tile" crops covering the whole frame at the target's
  scale (crop side of the anchor, or at least ``tile_min_fraction`` of the frame's shorter side;
  centres ``tile_stride`` tile sides apart, nearest the anchor first). What does not fit in this
  frame comes on the next ones (round robin). Several lost targets of one tracker share one frame's
  budget (:func:`crop_budgets`): a lost frame costs the same however many targets are lost;
* a grown or tile crop whose score reaches ``candidate_threshold`` only nominates a candidate: on
  the next frame a crop at the target's scale is centred on it (up to ``VERIFY_PER_FRAME``
  candidates, best first). A local or verify crop scoring at least ``max(reacquire_threshold,
  reacquire_ratio * ref)`` re-acquires the target: its box becomes the box and normal tracking
  resumes. (Off-centre tile crops score true targets lower and look-alikes higher than a centred
  crop does; the verification is what the normal tracker would see on the next frame.)

Boxes are ``(x, y, w, h)`` in image pixels (top-left corner). Nothing here runs a network: the
tracker asks :func:`plan_crops` what to crop, runs the batch, and reports back to
:class:`RecoveryState` (:meth:`~RecoveryState.observe` while tracking,
:meth:`~RecoveryState.lost_frame` while searching).
"""
from __future__ import annotations

import math
import statistics
from collections import deque
from dataclasses import dataclass, field
from typing import NamedTuple
from collections.abc import Sequence

import numpy as np

from .boxes import Box
TRACKING, LOST = "tracking", "lost"
STATES = (TRACKING, LOST)
HISTORY = 30          # confident scores kept for the typical score
VERIFY_PER_FRAME = 2  # candidates re-checked with a centred crop on the next lost frame


@dataclass(frozen=True)
class RecoverySettings:
    """The preset values the state machine and the crop plan use (see :class:`~.presets.Preset`)."""

    enabled: bool
    lost_threshold: float
    lost_ratio: float
    lost_frames: int
    lost_peak_ratio: float
    candidate_threshold: float
    reacquire_threshold: float
    reacquire_ratio: float
    max_crops: int
    growth_factors: tuple[float, ...]
    tile_stride: float
    search_factor: float
    tile_min_fraction: float = 0.0

    @classmethod
    def from_preset(cls, preset) -> "RecoverySettings":
        return cls(bool(preset.recovery), float(preset.lost_threshold), float(preset.lost_ratio),
                   int(preset.lost_frames), float(preset.lost_peak_ratio), float(preset.candidate_threshold),
                   float(preset.reacquire_threshold),
                   float(preset.reacquire_ratio), int(preset.max_crops_per_frame),
                   tuple(float(g) for g in preset.growth_factors), float(preset.tile_stride),
                   float(preset.search_factor), float(preset.tile_min_fraction))


class CropSpec(NamedTuple):
    """One search crop: ``sample_target(frame, box, factor)``.

    ``box`` has the anchor's size and is centred on the crop centre, so the crop side is
    ``ceil(sqrt(w*h) * factor)`` and the prediction maps back with ``map_back(pred, box, ...)``.
    ``kind``: "track" (the normal search), and while lost "local" (anchor, preset factor),
    "verify" (a candidate of the previous frame, preset factor), "grown" (anchor, larger factor)
    or "tile" (part of the whole-frame cover).
    """

    box: Box
    factor: float
    kind: str


class Candidate(NamedTuple):
    """What one crop of a lost frame found: the crop's kind, its score and predicted image box."""

    kind: str
    score: float
    box: Box


@dataclass
class RecoveryState:
    """Per-target state machine (rules in the module docstring).

    ``state``: TRACKING or LOST. ``anchor``: last box that was not low (the init box at first);
    the reported box while lost. ``lows``: flags of the last 2*lost_frames tracked frames, set when
    the frame was low and (with ``lost_peak_ratio``) flat; ``history`` / ``peaks``: the scores / edge
    peaks of the last HISTORY frames that were not low; ``low``: whether the last tracked frame was
    low. While lost: ``lost_for`` frames so far, ``cursor`` in the candidate cycle, ``pending``
    candidate boxes to verify on the next frame.
    """

    settings: RecoverySettings
    anchor: Box
    state: str = TRACKING
    low: bool = False
    lost_for: int = 0
    cursor: int = 0
    pending: list[Box] = field(default_factory=list)
    lows: deque = field(default_factory=deque)
    history: deque = field(default_factory=lambda: deque(maxlen=HISTORY))
    peaks: deque = field(default_factory=lambda: deque(maxlen=HISTORY))

    def __post_init__(self) -> None:
        self.anchor = tuple(float(v) for v in self.anchor)  # type: ignore[assignment]
        self.lows = deque(self.lows, maxlen=2 * self.settings.lost_frames)

    @property
    def searching(self) -> bool:
        """True while the tracker must search wider (lost with recovery on)."""
        return self.state == LOST and self.settings.enabled

    @property
    def typical_score(self) -> float | None:
        """Median of the kept confident scores; None before the first one."""
        return float(statistics.median(self.history)) if self.history else None  # <= 30 floats: no numpy

    def low_level(self) -> float:
        """A tracked score under this is low: max(lost_threshold, lost_ratio * typical score)."""
        ref = self.typical_score
        s = self.settings
        return s.lost_threshold if ref is None else max(s.lost_threshold, s.lost_ratio * ref)

    def reacquire_level(self) -> float:
        """A centred crop scoring this re-acquires: max(reacquire_threshold, reacquire_ratio * typical)."""
        ref = self.typical_score
        s = self.settings
        return s.reacquire_threshold if ref is None else max(s.reacquire_threshold, s.reacquire_ratio * ref)

    def flat(self, peak: float | None) -> bool:
        """Whether edge distributions with this mean ``peak`` count as flat: under lost_peak_ratio x the
        typical peak. True (the score alone decides) when the rule is off, before the first kept peak,
        or when no peak is given."""
        ratio = self.settings.lost_peak_ratio
        if ratio <= 0 or peak is None or not self.peaks:
            return True
        return peak < ratio * statistics.median(self.peaks)

    def observe(self, box: Box, score: float, peak: float | None = None) -> str:
        """A tracked frame's box, score and edge ``peak`` (:func:`~.decode.edge_peak`) -> the state after it.

        Low: score under :meth:`low_level` (ok=False with recovery on). Not low: ``box`` becomes the
        anchor, the score and peak join the histories, state TRACKING. Then ``lost_frames`` low frames
        with :meth:`flat` edges among the last 2*lost_frames make the target LOST (the lost period
        starts afresh: cursor, pending candidates and low flags reset).
        """
        self.low = score < self.low_level()
        self.lows.append(self.low and self.flat(peak))
        if not self.low:
            self.state, self.anchor = TRACKING, tuple(float(v) for v in box)  # type: ignore[assignment]
            self.history.append(float(score))
            if peak is not None:
                self.peaks.append(float(peak))
        elif sum(self.lows) >= self.settings.lost_frames and self.state != LOST:
            self.state, self.lost_for, self.cursor, self.pending = LOST, 0, 0, []
            self.lows.clear()
        return self.state

    def lost_frame(self, candidates: Sequence[Candidate]) -> int | None:
        """One searched lost frame: what its crops found -> index of the re-acquiring candidate, or
        None (still lost).

        The best local / verify crop at or above :meth:`reacquire_level` re-acquires (state
        TRACKING, its box the anchor). Otherwise the best grown / tile crops at or above
        ``candidate_threshold`` (at most VERIFY_PER_FRAME) become the pending candidates: the
        anchor's size centred on their predicted centres.
        """
        self.lost_for += 1
        level = self.reacquire_level()
        centred = [i for i, c in enumerate(candidates) if c.kind in ("local", "verify") and c.score >= level]
        if centred:
            best = max(centred, key=lambda i: candidates[i].score)
            self.state, self.low, self.pending = TRACKING, False, []
            self.anchor = tuple(float(v) for v in candidates[best].box)  # type: ignore[assignment]
            self.lows.clear()
            return best
        found = sorted((c for c in candidates if c.kind in ("grown", "tile")
                        and c.score >= self.settings.candidate_threshold), key=lambda c: -c.score)
        self.pending = [centred_box(self.anchor, c.box[0] + 0.5 * c.box[2], c.box[1] + 0.5 * c.box[3])
                        for c in found[:VERIFY_PER_FRAME]]
        return None


def centred_box(box: Sequence[float], cx: float, cy: float) -> Box:
    """``box``'s size centred on (cx, cy)."""
    w, h = float(box[2]), float(box[3])
    return (cx - 0.5 * w, cy - 0.5 * h, w, h)


def axis_centres(length: int, side: float, stride: float) -> np.ndarray:
    """Crop centres (n,) covering [0, length) with crops of ``side`` px at most ``stride`` px apart.

    One centre in the middle when a crop is at least as long as the axis; else n = ceil((length -
    side) / stride) + 1 centres evenly from side/2 to length - side/2 (the first and last crop touch
    the borders).
    """
    if side >= length:
        return np.array([0.5 * length])
    n = int(math.ceil((length - side) / stride)) + 1
    return np.linspace(0.5 * side, length - 0.5 * side, n)


def tile_side(anchor: Sequence[float], height: int, width: int, search_factor: float,
              min_fraction: float = 0.0) -> float:
    """Side (px) of the whole-frame tiles: the anchor's search crop side, ceil(sqrt(w*h) *
    search_factor), or ``min_fraction`` x min(height, width) when that is larger."""
    own = float(math.ceil(math.sqrt(anchor[2] * anchor[3]) * search_factor))
    return max(own, float(min_fraction * min(height, width)))


def tile_boxes(anchor: Sequence[float], height: int, width: int, search_factor: float,
               tile_stride: float, min_fraction: float = 0.0) -> list[Box]:
    """Boxes (anchor-sized) centred on a grid covering the height x width frame with search crops
    of side :func:`tile_side` (the target's scale, or larger with ``min_fraction``); nearest the
    anchor's centre first (ties: row-major). Centres at most ``tile_stride`` tile sides apart on
    both axes.
    """
    side = tile_side(anchor, height, width, search_factor, min_fraction)
    step = max(1.0, tile_stride * side)
    xs, ys = axis_centres(width, side, step), axis_centres(height, side, step)
    cx, cy = anchor[0] + 0.5 * anchor[2], anchor[1] + 0.5 * anchor[3]
    grid = [(x, y) for y in ys for x in xs]
    order = sorted(range(len(grid)), key=lambda i: (grid[i][0] - cx) ** 2 + (grid[i][1] - cy) ** 2)
    return [centred_box(anchor, *grid[i]) for i in order]


def candidate_cycle(anchor: Sequence[float], height: int, width: int, settings: RecoverySettings) -> list[CropSpec]:
    """The crops a lost period goes through in turn: the grown crops around the anchor (in
    ``growth_factors`` order), then the whole-frame tiles (:func:`tile_boxes`)."""
    anchor = tuple(float(v) for v in anchor)
    grown = [CropSpec(anchor, settings.search_factor * g, "grown") for g in settings.growth_factors]
    side = tile_side(anchor, height, width, settings.search_factor, settings.tile_min_fraction)
    # a tile larger than the target's own crop: the same anchor-sized box with a larger factor
    factor = max(settings.search_factor, side / math.sqrt(anchor[2] * anchor[3]))
    tiles = [CropSpec(b, factor, "tile")
             for b in tile_boxes(anchor, height, width, settings.search_factor, settings.tile_stride,
                                 settings.tile_min_fraction)]
    return grown + tiles  # type: ignore[arg-type]


def crop_budgets(lost: int, max_crops: int, turn: int) -> list[int]:
    """Crops per lost target when ``lost`` targets of one tracker search in the same frame.

    Together they get ``max_crops + lost - 1`` crops, the batch of a frame where one target is lost
    (each other target has its one tracking crop), so a lost frame costs the same however many
    targets are lost and the search batch has one size for all of them. Each lost target gets at
    least one crop (its local crop) and at most ``max_crops``; the remainder goes one each to the
    targets whose turn it is, ``turn`` (e.g. a frame counter) rotating them frame by frame.
    One lost target: ``[max_crops]``, its whole plan, as for a single tracker.
    """
    if lost <= 0:
        return []
    total = max_crops + lost - 1
    base, extra = divmod(total, lost)
    first = turn % lost
    return [base + (0 <= (k - first) % lost < extra) for k in range(lost)]


def plan_crops(state: RecoveryState, height: int, width: int, budget: int | None = None) -> list[CropSpec]:
    """The crops of this lost frame, at most ``max_crops`` (and at most ``budget`` when given, >= 1:
    its share of the frame when several targets are lost, :func:`crop_budgets`), and the cursor
    moved past the cycle items used.

    In order: the "local" crop around the anchor (every lost frame: a target that comes back where
    it vanished is found at once), a "verify" crop per pending candidate, then the next items of
    the candidate cycle from ``state.cursor``, wrapping around (an item at most once per frame).
    """
    s = state.settings
    cap = s.max_crops if budget is None else min(s.max_crops, budget)
    if cap < 1:
        raise ValueError(f"a lost frame needs a budget of at least 1 crop (its local crop), got {budget}")
    plan = [CropSpec(state.anchor, s.search_factor, "local")]
    plan += [CropSpec(b, s.search_factor, "verify") for b in state.pending][: cap - 1]
    cycle = candidate_cycle(state.anchor, height, width, s)
    n = min(cap - len(plan), len(cycle))
    plan += [cycle[(state.cursor + j) % len(cycle)] for j in range(n)]
    state.cursor = (state.cursor + n) % len(cycle) if cycle else 0
    return plan
