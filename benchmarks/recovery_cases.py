"""Absent-and-reappear cases for the recovery protocol, made from any sequence with full ground truth.

Two kinds per sequence (boxes ``x, y, w, h`` in pixels, frame indices 0-based, N = sequence length):

* ``cutaway``: from the cut frame ``c`` (the middle of the sequence, moved to the nearest frame
  where the target is visible just before the cut and during the re-acquisition window after it)
  the ``gap`` (30) frames c .. c+gap-1 are replaced by frames of another sequence (the *donor*,
  resized to this sequence's frame size): the target is absent there (ground truth NaN). Frame
  c+gap onwards is the original frame c+gap: the sequence resumes where it would be ``gap`` frames
  later. The case has N frames like the sequence.
* ``elsewhere``: the same, but every frame from c+gap on is rolled horizontally by ``shift`` px
  (``np.roll(frame, shift, axis=1)``, ground truth x shifted the same way, modulo the width), so the
  target comes back far from where it was lost. The *seam* is where the original right border meets
  the left one; a box must stay off it by half its width. ``shift`` (within [W/4, 3W/4]) keeps the
  longest run of boxes after the cut off the seam, the value nearest W/2 among equals; the case
  ends before the first box the seam would cut (a target crossing the whole frame cannot stay off
  every seam). No shift with at least ``window`` frames: no ``elsewhere`` case for that sequence.

The donor is the next sequence (in name order, cyclically) that does not come from the same video
(names that differ only in a ``_<k>`` suffix, e.g. truck4_1 / truck4_2, are one video); its frames
are taken from its middle on, wrapping around when it is shorter than ``gap``.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from collections.abc import Sequence

import numpy as np

from .positions import distinct_fractions, visible

GAP = 30          # absent frames of a case
WINDOW = 10       # frames after the target's return in which re-acquisition counts
KINDS = ("cutaway", "elsewhere")


@dataclass(frozen=True)
class FrameRef:
    """How to make one frame of a case: read ``path``, resize to ``size`` (W, H) if given, then
    ``np.roll`` by ``roll`` px along x."""

    path: str
    roll: int = 0
    size: tuple[int, int] | None = None


@dataclass(frozen=True)
class RecoveryCase:
    """One absent-and-reappear case.

    frames: (N,) FrameRef; gt: float64 (N, 4) with NaN rows on the absent frames; ``cut`` = first
    absent frame, ``back`` = cut + gap = first frame with the target back; ``shift``: roll after the
    cut (0 for cutaway); ``donor``: sequence that supplied the absent frames.
    """

    name: str
    seq: str
    kind: str
    frames: tuple[FrameRef, ...]
    gt: np.ndarray
    cut: int
    back: int
    shift: int
    donor: str

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def init_box(self) -> tuple[float, float, float, float]:
        return tuple(float(v) for v in self.gt[0])  # type: ignore[return-value]


def choose_cut(gt: np.ndarray, gap: int = GAP, window: int = WINDOW, at: float = 0.5) -> int | None:
    """The cut frame: nearest to ``at`` x N (0-based) such that frames 1..cut-1 exist (cut >= 2),
    the target is visible in frame cut-1 and in frames cut+gap .. cut+gap+window-1 (all inside the
    sequence). None when no frame qualifies."""
    vis = visible(np.asarray(gt, np.float64).reshape(-1, 4))
    n = len(vis)
    ok = [c for c in range(2, n - gap - window + 1) if vis[c - 1] and vis[c + gap:c + gap + window].all()]
    if not ok:
        return None
    target = at * n
    return min(ok, key=lambda c: (abs(c - target), c))


def clip_to_width(gt: np.ndarray, width: int) -> np.ndarray:
    """Boxes (N, 4) cut to the columns 0..width (what np.roll moves); NaN rows stay NaN."""
    out = np.array(gt, np.float64).reshape(-1, 4)
    x1 = np.clip(out[:, 0], 0, width)
    x2 = np.clip(out[:, 0] + out[:, 2], 0, width)
    out[:, 0], out[:, 2] = x1, x2 - x1
    return out


def roll_gt(gt: np.ndarray, shift: int, width: int) -> np.ndarray:
    """Ground truth (N, 4) of frames rolled by ``shift`` px along x: the box cut to the frame's
    columns, then x -> (x + shift) mod width. Only valid for boxes that do not straddle the seam
    (:func:`straddles_seam`)."""
    out = clip_to_width(gt, width)
    out[:, 0] = np.mod(out[:, 0] + shift, width)
    return out


def straddles_seam(gt: np.ndarray, shift: int, width: int, margin: float = 0.5) -> np.ndarray:
    """(N,) True where the box (cut to the frame), rolled by ``shift``, is cut by the seam or
    nearer to it than ``margin`` x its width: the rolled left edge is under that distance from
    the left border or the right edge from the right border. NaN rows: False."""
    g = clip_to_width(gt, width)
    x = np.mod(g[:, 0] + shift, width)
    gap = margin * g[:, 2]
    with np.errstate(invalid="ignore"):
        bad = (x < gap - 1e-9) | (x + g[:, 2] + gap > width + 1e-9)
    return bad & np.isfinite(g).all(1)


def seam_free_run(gt_after: np.ndarray, shift: int, width: int) -> int:
    """Frames of ``gt_after`` (from its first) before the first box the seam would cut."""
    bad = np.flatnonzero(straddles_seam(gt_after, shift, width))
    return int(bad[0]) if bad.size else len(gt_after)


def choose_shift(gt_after: np.ndarray, width: int, min_run: int = WINDOW) -> tuple[int, int] | None:
    """(shift, run): the roll in [width/4, 3*width/4] px with the longest seam-free run of
    ``gt_after`` (:func:`seam_free_run`), nearest width/2 among equals; None when no run reaches
    ``min_run`` frames."""
    half = width // 2
    best: tuple[int, int] | None = None
    for d in range(0, width // 4 + 1):
        for s in ((half - d, half + d) if d else (half,)):
            if not width / 4 <= s <= 3 * width / 4:
                continue
            run = seam_free_run(gt_after, s, width)
            if best is None or run > best[1]:
                best = (s, run)
    return best if best is not None and best[1] >= min_run else None


def video_of(name: str) -> str:
    """Sequences cut from one video share this: the name without a trailing ``_<k>``."""
    return re.sub(r"_\d+$", "", name)


def choose_donor(names: Sequence[str], i: int) -> int | None:
    """Index of the next sequence after ``i`` (cyclically) from another video; None if none."""
    n = len(names)
    for k in range(1, n):
        j = (i + k) % n
        if video_of(names[j]) != video_of(names[i]):
            return j
    return None


def donor_frames(frames: Sequence[str], gap: int) -> list[str]:
    """``gap`` frame paths of the donor from its middle on, wrapping around to its start."""
    n = len(frames)
    start = n // 2
    return [str(frames[(start + k) % n]) for k in range(gap)]


def case_suffix(at: float) -> str:
    """Case-name suffix of a cut position: none for the middle (0.5), else ``@<at>`` (e.g. ``@0.25``)."""
    return "" if at == 0.5 else f"@{at:g}"


def make_cases(name: str, frames: Sequence[str], gt: np.ndarray, size: tuple[int, int], donor_name: str,
               donor: Sequence[str], gap: int = GAP, window: int = WINDOW, at: float = 0.5,
               cut: int | None = None) -> tuple[list[RecoveryCase], list[str]]:
    """The cutaway and elsewhere cases of one sequence at cut position ``at`` (a fraction of its
    length; the case names carry :func:`case_suffix`) -> (cases, reasons for the ones not made).

    ``frames``/``gt``: the sequence (N paths, (N, 4) boxes); ``size``: its frame (W, H); ``donor``:
    the donor sequence's frame paths; ``cut``: the cut frame if already chosen (:func:`choose_cut`).
    """
    gt = np.asarray(gt, np.float64).reshape(-1, 4)
    width = int(size[0])
    cut = choose_cut(gt, gap, window, at) if cut is None else cut
    tag = case_suffix(at)
    if cut is None:
        return [], [f"{name}{tag}: no cut frame with the target visible before the cut and {window} frames after "
                    f"{gap} absent frames (sequence of {len(gt)} frames)"]
    back = cut + gap
    inserted = [FrameRef(p, 0, (int(size[0]), int(size[1]))) for p in donor_frames(donor, gap)]
    before = [FrameRef(str(p)) for p in frames[:cut]]
    absent = np.full((gap, 4), np.nan)
    cases = [RecoveryCase(f"{name}__cutaway{tag}", name, "cutaway",
                          tuple(before + inserted + [FrameRef(str(p)) for p in frames[back:]]),
                          np.concatenate([gt[:cut], absent, gt[back:]]), cut, back, 0, donor_name)]
    skipped = []
    chosen = choose_shift(gt[back:], width, window)
    if chosen is None:
        skipped.append(f"{name}{tag}: no roll within [W/4, 3W/4] keeps {window} boxes after the cut off the seam")
    else:
        shift, run = chosen
        end = back + run
        cases.append(RecoveryCase(f"{name}__elsewhere{tag}", name, "elsewhere",
                                  tuple(before + inserted + [FrameRef(str(p), shift) for p in frames[back:end]]),
                                  np.concatenate([gt[:cut], absent, roll_gt(gt[back:end], shift, width)]),
                                  cut, back, shift, donor_name))
    return cases, skipped


def load_frame(ref: FrameRef) -> np.ndarray:
    """The BGR uint8 frame a FrameRef describes; IOError when the file cannot be read."""
    import cv2

    img = cv2.imread(ref.path, cv2.IMREAD_COLOR)
    if img is None:
        raise IOError(f"cannot read frame {ref.path}")
    if ref.size is not None and (img.shape[1], img.shape[0]) != tuple(ref.size):
        img = cv2.resize(img, tuple(ref.size), interpolation=cv2.INTER_AREA)
    if ref.roll:
        img = np.roll(img, ref.roll, axis=1)
    return img


def cut_positions(values: Sequence[float | str]) -> list[float]:
    """Cut positions (numbers or numeric strings) -> floats; ValueError unless they are distinct
    fractions strictly between 0 and 1."""
    return distinct_fractions(values, "cut positions", include_zero=False)


def dataset_cases(dataset, gap: int = GAP, window: int = WINDOW, at: float | Sequence[float] = 0.5,
                  pool: Sequence | None = None) -> tuple[list[RecoveryCase], list[str]]:
    """Cases of every sequence with full ground truth of a loaded dataset (``benchmarks.datasets``)
    -> (cases, reasons for the cases not made).

    ``at``: the cut position(s), fractions of each sequence's length (0.5: the middle, the protocol
    as specified; several give more cases per sequence; a position whose cut frame another one
    already took is skipped, with a reason). ``pool``: the sequences donors are chosen from
    (default: the dataset's), so that evaluating a subset of sequences gives the same cases as the
    whole dataset.
    """
    positions = cut_positions([at] if isinstance(at, (int, float)) else at)
    pool_seqs = [s for s in (pool if pool is not None else dataset.sequences) if s.full_gt]
    names = [s.name for s in pool_seqs]
    cases: list[RecoveryCase] = []
    skipped: list[str] = []
    for seq in (s for s in dataset.sequences if s.full_gt):
        if seq.name not in names:
            pool_seqs.append(seq)
            names.append(seq.name)
        i = names.index(seq.name)
        j = choose_donor(names, i)
        if j is None:
            skipped.append(f"{seq.name}: no donor sequence from another video")
            continue
        taken: dict[int, float] = {}
        for a in positions:
            cut = choose_cut(seq.gt, gap, window, a)
            if cut is not None and cut in taken:
                skipped.append(f"{seq.name}: cut position {a:g} gives frame {cut}, already cut at {taken[cut]:g}")
                continue
            if cut is not None:
                taken[cut] = a
            made, why = make_cases(seq.name, [str(f) for f in seq.frames], seq.gt, seq.frame_size(), names[j],
                                   [str(f) for f in pool_seqs[j].frames], gap, window, a, cut)
            cases += made
            skipped += why
    return cases, skipped


def first_hit(ok: np.ndarray, iou: np.ndarray, start: int) -> float:
    """Frames from ``start`` to the first frame at or after it with ok and IoU > 0.5; inf if none."""
    hit = np.flatnonzero(np.asarray(ok, bool)[start:] & (np.nan_to_num(np.asarray(iou, float)[start:], nan=0.0) > 0.5))
    return float(hit[0]) if hit.size else math.inf
