"""Mean tracker score on frames where IoU > 0.5 vs frames where IoU < 0.1 (and the AUROC of the score
between those two groups), from eval result files.

    python train/score_separation.py EVAL_OUT/sequences/mixformerv2 ../shared/data/sequences
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from mixformerv2_benchmarks.metrics import box_iou  # (N,4) x,y,w,h


def auroc(pos: np.ndarray, neg: np.ndarray) -> float:
    """Probability that a found frame (pos) scores above a lost one (neg), ties counting half."""
    return float((pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean())


def main(argv: list[str]) -> int:
    res, seqs = Path(argv[0]), Path(argv[1])
    hi, lo = [], []
    for f in sorted(res.glob("*_score.txt")):
        name = f.name[: -len("_score.txt")]
        scores = np.loadtxt(f)
        boxes = np.loadtxt(res / f"{name}.txt", delimiter="\t", ndmin=2)
        gt = np.loadtxt(seqs / name / "groundtruth.txt", delimiter=",", ndmin=2)
        ious = box_iou(boxes[1:], gt[1:])
        s = scores[1:]
        hi += list(s[ious > 0.5])
        lo += list(s[ious < 0.1])
    print(f"mean score IoU>0.5: {np.mean(hi):.3f} over {len(hi)} frames; IoU<0.1: {np.mean(lo):.3f} over {len(lo)} frames;"
          f" AUROC {auroc(np.array(hi), np.array(lo)):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
