"""Which frames a lost rule would count: score alone vs score and flat edge distributions.

Runs each model with recovery off (the search follows the network as the reference does) over the
cut-away cases of the recovery protocol (``mixformerv2-eval --protocol recovery``: 30 frames of
another sequence in the middle, the target absent there) on the given sequences, and per frame
records the score and the edge peak (:func:`mixformerv2_cpu.decode.edge_peak`). Prints, for a score
level and peak ratios R, the share of absent frames and of frames with the target tracked (IoU > 0.5)
that are low (score under the level) and flat (peak under R x the median peak of the frames so far
that were not low): what ``lost_peak_ratio`` R counts towards "lost", by the runtime's own rule
(``RecoveryState``; R = 0: every low frame).

    python tools/lost_signals.py --model default --model runs/exports/ft11_s1200
"""
from __future__ import annotations

import argparse

import numpy as np

from mixformerv2_benchmarks.datasets import load_dataset
from mixformerv2_benchmarks.metrics import box_iou
from mixformerv2_benchmarks.recovery_cases import dataset_cases, load_frame
from mixformerv2_cpu import Tracker, load_preset
from mixformerv2_cpu.decode import edge_peak
from mixformerv2_cpu.recovery import RecoverySettings, RecoveryState

TUNING = "ball1,boat1,crossing,person11,truck4_2"


def frames_of(model: str, cases, threads: int) -> list[tuple[float, float, bool, float]]:
    """(score, peak, absent, IoU) of every frame after the first of every case, recovery off."""
    tracker = Tracker(model=model, backend="onnxruntime", precision="fp32", threads=threads,
                      preset={"recovery": False})
    rows = []
    for case in cases:
        tracker.init(load_frame(case.frames[0]), case.init_box)
        for i in range(1, len(case)):
            _, box = tracker.update(load_frame(case.frames[i]))
            gt = case.gt[i]
            iou = float("nan") if np.isnan(gt).any() else float(box_iou(np.array(box), gt)[0])
            rows.append((tracker.score, float(edge_peak(tracker.last_prediction.distributions)),
                         case.cut <= i < case.back, iou))
        rows.append(None)  # case boundary: the peak history starts afresh
    return rows


def flagged(rows, level: float, ratio: float) -> tuple[float, float]:
    """% of absent frames and of tracked frames (IoU > 0.5) that the runtime's lost rule
    (:class:`~mixformerv2_cpu.recovery.RecoveryState`, score level ``level``, ``lost_peak_ratio``
    ``ratio``; 0 = score only) counts towards "lost": low and flat."""
    settings = RecoverySettings.from_preset(load_preset({"recovery": False, "lost_threshold": level, "lost_ratio": 0.0,
                                                         "lost_peak_ratio": ratio}, "other"))
    counts = np.zeros((2, 2))  # [absent, tracked] x [flagged, all]
    state = RecoveryState(settings, (0.0, 0.0, 1.0, 1.0))
    for row in rows:
        if row is None:  # a new case: the rule's histories start afresh
            state = RecoveryState(settings, (0.0, 0.0, 1.0, 1.0))
            continue
        score, peak, absent, iou = row
        counted = score < state.low_level() and state.flat(peak)
        state.observe(state.anchor, score, peak)
        for k, member in enumerate((absent, not absent and iou > 0.5)):
            if member:
                counts[k] += (counted, 1)
    return tuple(100 * counts[:, 0] / np.maximum(counts[:, 1], 1))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", action="append", required=True, help="registered name or export folder (repeatable)")
    p.add_argument("--dataset", default="../shared/data/sequences")
    p.add_argument("--sequences", default=TUNING, help=f"comma-separated (default the tuning five: {TUNING})")
    p.add_argument("--cuts", default="0.25,0.5,0.75")
    p.add_argument("--level", type=float, default=0.45, help="score level of a low frame (default 0.45)")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    names = set(args.sequences.split(","))
    cases, _ = dataset_cases(load_dataset(args.dataset), at=[float(v) for v in args.cuts.split(",")])
    cases = [c for c in cases if c.seq in names and c.kind == "cutaway"]
    print(f"{len(cases)} cut-away cases; low = score < {args.level}")
    print("| model | peak ratio R | absent frames counted % | tracked frames counted % |")
    print("|---|---:|---:|---:|")
    for model in args.model:
        rows = frames_of(model, cases, args.threads)
        for ratio in (0.0, 0.8, 0.7, 0.6):
            absent, tracked = flagged(rows, args.level, ratio)
            label = "score only" if ratio == 0.0 else f"{ratio}"
            print(f"| {model} | {label} | {absent:.1f} | {tracked:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
