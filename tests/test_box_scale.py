"""train/box_scale.py: the size calibration chosen on the tuning sequences (hand-made trajectories)."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))
import box_scale  # noqa: E402  (train/box_scale.py)
from evaluate import HELD_OUT, TUNING  # noqa: E402


def test_scaled_keeps_centres():
    boxes = np.array([[10.0, 20.0, 40.0, 10.0], [0.0, 0.0, 8.0, 8.0]])
    np.testing.assert_allclose(box_scale.scaled(boxes, 1.25), [[5.0, 18.75, 50.0, 12.5], [-1.0, -1.0, 10.0, 10.0]])


def test_choose_takes_the_middle_of_the_plateau():
    assert box_scale.choose({1.0: 70.0, 1.02: 71.0, 1.04: 71.02, 1.06: 71.01, 1.08: 70.5}, tie=0.05) == 1.04
    assert box_scale.choose({1.0: 70.0, 1.02: 71.0, 1.04: 71.0}, tie=0.0) == 1.02  # lower of two middles


def test_a_model_that_draws_boxes_too_small_gets_the_inverse_factor(tmp_path, capsys):
    """Boxes 0.9 x the ground truth about the true centre on the tuning sequences: factors 1.09-1.13 give
    IoU >= 0.98 there (the harness's best AUC, 95.2 with its 21 thresholds), 1.11 = 1/0.9 is the middle
    of that plateau; the held-out boxes are exact and would prefer 1.00, but they do not decide."""
    rng = np.random.default_rng(0)
    seqs, out = tmp_path / "seqs", tmp_path / "eval"
    for name in TUNING + HELD_OUT:
        gt = np.column_stack([rng.uniform(50, 100, (20, 2)), rng.uniform(20, 40, (20, 2))])
        for root in (seqs / name, out / "gray" / name):
            root.mkdir(parents=True)
            np.savetxt(root / "groundtruth.txt", gt, delimiter=",")
        boxes = box_scale.scaled(gt, 0.9) if name in TUNING else gt
        for sub in ("eval_color/sequences/model", "eval_gray/gray/model"):
            (out / sub).mkdir(parents=True, exist_ok=True)
            np.savetxt(out / sub / f"{name}.txt", boxes, delimiter="\t")
    assert box_scale.main([str(out), "--sequences", str(seqs), "--grid", "1.00:1.20:0.01"]) == 0
    text = capsys.readouterr().out
    assert text.strip().endswith("--box-scale 1.11")
    assert "| 1.11 | 95.2 / 100.0 | 95.2 / 100.0 | 95.24 | 81.7 / 100.0 |" in text
    assert "| 1.00 | 81.7 / 100.0 | 81.7 / 100.0 | 81.67 | 95.2 / 100.0 |" in text
