"""train/evaluate.py's split report over several start frames (hand-made result files, no tracker)."""
from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))
import evaluate  # noqa: E402  (train/evaluate.py)


def test_split_report_pools_every_start_with_its_own_ground_truth(tmp_path):
    seqs, res = tmp_path / "seqs", tmp_path / "res"
    res.mkdir()
    gt = np.array([[10 + i, 10, 20, 20] for i in range(20)], float)
    for name in ("a", "b"):
        (seqs / name / "img").mkdir(parents=True)
        for i in range(20):
            cv2.imwrite(str(seqs / name / "img" / f"{i + 1:05d}.jpg"), np.zeros((64, 64, 3), np.uint8))
        np.savetxt(seqs / name / "groundtruth.txt", gt, delimiter=",")
        np.savetxt(res / f"{name}.txt", gt, delimiter="\t")                # the first pass: exact boxes
        wrong = gt[10:].copy()
        wrong[1:, 0] += 100                                                # from frame 10: lost after the init
        np.savetxt(res / f"{name}@0.5.txt", wrong, delimiter="\t")
    sequences = evaluate.load_dataset(seqs, "shared").sequences
    one = evaluate.split_report(res, sequences, ("a",))
    both = evaluate.split_report(res, sequences, ("a", "b"), starts=(0.0, 0.5))
    assert one["runs"] == 1 and one["sr75"] == 100.0
    # pooled over 4 runs: 2 x 19 tracked frames exact, 2 x 9 frames with IoU 0
    assert both["runs"] == 4 and both["sr75"] == 100.0 * 38 / 56
