"""One-pass-evaluation (OPE) metrics as the OTB / LaSOT / GOT-10k toolkits define them.

Boxes are float arrays of shape (N, 4), rows ``x, y, w, h`` (top-left corner, width, height, pixels).
A ground-truth row of NaN marks a frame where the target is absent.

* Success curve: fraction of frames with IoU > t for t in ``IOU_THRESHOLDS = linspace(0, 1, 21)``;
  AUC = mean of the curve (OTB toolkit, LaSOT toolkit, pytracking).
* Precision curve: fraction of frames with centre error <= t px, t = 0..50; precision = value at 20 px.
  The centre is ``x + (w - 1) / 2`` as in the toolkits (the -1 cancels in the error).
* Normalised precision (LaSOT): centres divided by the ground-truth width / height before the
  distance, t = 0, 0.01, ..., 0.5; the reported value is the curve at 0.2 (pytracking).
* AO, SR0.5, SR0.75 (GOT-10k toolkit): mean IoU and fractions with IoU > 0.5 / > 0.75 over frames
  2..N where the target is visible, boxes optionally clipped to the image first; over a dataset
  all those frames are pooled (the toolkit concatenates the IoUs of every sequence).
* Curves over a dataset are the mean of the per-sequence curves (sequence-weighted, as the toolkits).

A :class:`Protocol` states how the first frame and absent-target frames enter the success and
precision curves:

* ``first_frame="gt"``: the prediction of frame 1 is replaced by the ground truth and counted
  (OTB, LaSOT, pytracking); ``"exclude"``: frame 1 is left out (GOT-10k).
* ``absent="exclude"``: absent frames are left out of numerator and denominator (got10k toolkit on
  UAV123/OTB, GOT-10k); ``"fail"``: they stay in the denominator and never count as a success, which
  is what the official LaSOT toolkit does (it drops them but divides by the full sequence length).

Ground-truth boxes with w <= 0 or h <= 0 count as failures (pytracking). Invalid predictions (NaN,
w <= 0 or h <= 0) are replaced by the previous prediction, as the LaSOT toolkit does.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal
from collections.abc import Iterable

import numpy as np

from mixformerv2_cpu.boxes import iou

IOU_THRESHOLDS = np.linspace(0.0, 1.0, 21)
CENTER_THRESHOLDS = np.arange(0, 51, dtype=np.float64)
NORM_CENTER_THRESHOLDS = np.arange(0, 51, dtype=np.float64) / 100.0
PRECISION_INDEX = 20       # 20 px
NORM_PRECISION_INDEX = 20  # 0.2
METRIC_KEYS = ("auc", "precision", "norm_precision", "ao", "sr50", "sr75")


@dataclass(frozen=True)
class Protocol:
    """How a benchmark counts the first frame and absent-target frames (see module docstring)."""

    name: str
    first_frame: Literal["gt", "exclude"] = "gt"
    absent: Literal["exclude", "fail"] = "exclude"
    clip_to_image: bool = False  # clip boxes to the image before the AO/SR IoU (GOT-10k toolkit)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


OTB = Protocol("otb")
LASOT = Protocol("lasot", absent="fail")
GOT10K = Protocol("got10k", first_frame="exclude", clip_to_image=True)
PROTOCOLS: dict[str, Protocol] = {
    "shared": OTB, "otb": OTB, "uav123": OTB, "vot": OTB, "trackingnet": OTB,
    "lasot": LASOT, "got10k": GOT10K}


def box_iou(a: np.ndarray, b: np.ndarray, bound: tuple[float, float] | None = None) -> np.ndarray:
    """IoU of matching rows of two (N, 4) x,y,w,h arrays -> (N,) in [0, 1]; NaN where a row has NaN.

    ``bound=(width, height)`` first clips both boxes to the image (GOT-10k toolkit).
    """
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    if bound is not None:
        a, b = _clip(a, bound), _clip(b, bound)
    return iou(a, b)


def _clip(r: np.ndarray, bound: tuple[float, float]) -> np.ndarray:
    """Clip boxes to [0, W] x [0, H] the way the got10k toolkit does."""
    r = r.copy()
    r[:, 0] = np.clip(r[:, 0], 0, bound[0])
    r[:, 1] = np.clip(r[:, 1], 0, bound[1])
    r[:, 2] = np.clip(r[:, 2], 0, bound[0] - r[:, 0])
    r[:, 3] = np.clip(r[:, 3], 0, bound[1] - r[:, 1])
    return r


def center_error(pred: np.ndarray, gt: np.ndarray, normalized: bool = False) -> np.ndarray:
    """Euclidean distance of box centres -> (N,); ``normalized`` divides by the ground-truth w, h first."""
    pred = np.asarray(pred, dtype=np.float64).reshape(-1, 4)
    gt = np.asarray(gt, dtype=np.float64).reshape(-1, 4)
    cp = pred[:, :2] + (pred[:, 2:] - 1.0) / 2.0
    cg = gt[:, :2] + (gt[:, 2:] - 1.0) / 2.0
    diff = cp - cg
    if normalized:
        with np.errstate(invalid="ignore", divide="ignore"):
            diff = diff / gt[:, 2:]
    return np.sqrt(np.sum(diff ** 2, axis=1))


def fill_invalid(pred: np.ndarray) -> np.ndarray:
    """Copy of (N, 4) predictions where rows with NaN / inf or w, h <= 0 repeat the previous row."""
    out = np.array(pred, dtype=np.float64).reshape(-1, 4)
    for i in range(1, len(out)):
        r = out[i]
        if not (np.isfinite(r).all() and r[2] > 0 and r[3] > 0):
            out[i] = out[i - 1]
    return out


@dataclass
class SequenceResult:
    """Per-sequence curves: success (21,), precision (51,), norm_precision (51,), and the IoUs that
    enter AO / SR (M,), plus the number of frames N of the sequence."""

    success: np.ndarray
    precision: np.ndarray
    norm_precision: np.ndarray
    ao_ious: np.ndarray
    num_frames: int

    def metrics(self) -> dict[str, float]:
        """auc, precision, norm_precision, ao, sr50, sr75 as fractions in [0, 1] (NaN if undefined)."""
        return _scores(self.success, self.precision, self.norm_precision, self.ao_ious)


def _scores(succ: np.ndarray, prec: np.ndarray, nprec: np.ndarray, ious: np.ndarray) -> dict[str, float]:
    has = ious.size > 0
    return {
        "auc": float(np.mean(succ)),
        "precision": float(prec[PRECISION_INDEX]),
        "norm_precision": float(nprec[NORM_PRECISION_INDEX]),
        "ao": float(np.mean(ious)) if has else float("nan"),
        "sr50": float(np.mean(ious > 0.5)) if has else float("nan"),
        "sr75": float(np.mean(ious > 0.75)) if has else float("nan"),
    }


def evaluate_sequence(pred: np.ndarray, gt: np.ndarray, protocol: Protocol = OTB,
                      image_size: tuple[float, float] | None = None) -> SequenceResult:
    """Curves of one sequence. pred, gt: (N, 4) x,y,w,h; gt NaN rows = absent target.

    ``image_size=(width, height)`` is used for the AO/SR IoUs when ``protocol.clip_to_image``.
    Predictions longer than the ground truth are cut; shorter ones raise ValueError.
    """
    gt = np.asarray(gt, dtype=np.float64).reshape(-1, 4)
    pred = np.asarray(pred, dtype=np.float64).reshape(-1, 4)
    if len(pred) < len(gt):
        raise ValueError(f"{len(pred)} predictions for {len(gt)} ground-truth frames")
    pred = pred[: len(gt)].copy()
    if len(gt) and protocol.first_frame == "gt":
        pred[0] = gt[0]
    pred = fill_invalid(pred)

    absent = np.isnan(gt).any(axis=1)
    valid_gt = ~absent & (gt[:, 2] > 0) & (gt[:, 3] > 0)
    iou = box_iou(pred, gt)
    ce = center_error(pred, gt)
    nce = center_error(pred, gt, normalized=True)
    iou = np.where(valid_gt & np.isfinite(iou), iou, -1.0)
    ce = np.where(valid_gt & np.isfinite(ce), ce, np.inf)
    nce = np.where(valid_gt & np.isfinite(nce), nce, np.inf)

    keep = np.ones(len(gt), dtype=bool)
    if protocol.first_frame == "exclude":
        keep[:1] = False
    if protocol.absent == "exclude":
        keep &= ~absent
    denom = max(int(keep.sum()), 1)
    succ = (iou[keep, None] > IOU_THRESHOLDS[None, :]).sum(0) / denom
    prec = (ce[keep, None] <= CENTER_THRESHOLDS[None, :]).sum(0) / denom
    nprec = (nce[keep, None] <= NORM_CENTER_THRESHOLDS[None, :]).sum(0) / denom

    # GOT-10k AO / SR: frames 2..N with a visible target
    vis = ~absent
    vis[:1] = False
    bound = image_size if (protocol.clip_to_image and image_size is not None) else None
    ao_ious = box_iou(pred[vis], gt[vis], bound=bound)
    ao_ious = np.nan_to_num(ao_ious, nan=0.0)
    return SequenceResult(succ, prec, nprec, ao_ious, len(gt))


def aggregate(results: Iterable[SequenceResult]) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Dataset scores and curves: curves averaged over sequences, AO/SR over the pooled frames.

    Returns (scores dict with METRIC_KEYS, curves dict with success (21,), precision (51,),
    norm_precision (51,)). With no sequence every score is NaN and the curves are empty.
    """
    results = list(results)
    if not results:
        nan = float("nan")
        return {k: nan for k in METRIC_KEYS}, {"success": np.zeros(0), "precision": np.zeros(0),
                                                "norm_precision": np.zeros(0)}
    succ = np.mean([r.success for r in results], axis=0)
    prec = np.mean([r.precision for r in results], axis=0)
    nprec = np.mean([r.norm_precision for r in results], axis=0)
    ious = np.concatenate([r.ao_ious for r in results])
    return _scores(succ, prec, nprec, ious), {"success": succ, "precision": prec, "norm_precision": nprec}


def fps_from_times(times: np.ndarray) -> tuple[int, float]:
    """Per-frame seconds (N,) -> (number of update frames, their total time); frame 1 (init) is left out."""
    t = np.asarray(times, dtype=np.float64).reshape(-1)[1:]
    t = t[np.isfinite(t) & (t > 0)]
    return int(t.size), float(t.sum())
