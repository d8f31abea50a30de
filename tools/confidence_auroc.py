"""How well candidate confidence measures separate found from lost frames (AUROC), per model.

Tracks every sequence of ``--sequences`` once (the model's own preset; the trajectory follows the
network score as ``update()`` does) and, per frame, records the IoU with the ground truth, the network
score and measures of how peaked the four edge distributions are. Prints, for each measure, the AUROC
between found (IoU > 0.5) and lost (IoU < 0.1) frames over all sequences and without ``truck4_1``
(a 5x4 px target every tracker loses), and the mean on found / lost frames.

    python tools/confidence_auroc.py --model runs/exports/v2_s8000 [--model default]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

from mixformerv2_benchmarks.metrics import box_iou
from mixformerv2_cpu import Tracker

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))
from evaluate import auroc  # noqa: E402


def measures(distributions: np.ndarray, score: float) -> dict[str, float]:
    """Candidate confidences of one frame: distributions (4, bins) edge probabilities."""
    peak = distributions.max(axis=1)
    entropy = -(distributions * np.log(distributions + 1e-12)).sum(axis=1)
    return {"score": score, "mean peak prob": float(peak.mean()), "min peak prob": float(peak.min()),
            "neg. mean entropy": float(-entropy.mean()), "score x mean peak": score * float(peak.mean())}


def track(model: str, folder: Path, backend: str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    files = sorted((folder / "img").glob("*.jpg"))
    gt = np.loadtxt(folder / "groundtruth.txt", delimiter=",", ndmin=2)
    tracker = Tracker(model, backend=backend, threads=1, precision="fp32")
    tracker.init(cv2.imread(str(files[0])), gt[0])
    ious, rows = [], []
    for k, f in enumerate(files[1:], start=1):
        _, box = tracker.update(cv2.imread(str(f)))
        ious.append(float(box_iou(np.array([box]), gt[k:k + 1])[0]))
        rows.append(measures(tracker.last_prediction.distributions, tracker.score))
    return np.array(ious), {key: np.array([r[key] for r in rows]) for key in rows[0]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", action="append", required=True)
    p.add_argument("--sequences", type=Path, default=Path("../shared/data/sequences"))
    p.add_argument("--backend", default="openvino")
    args = p.parse_args(argv)
    folders = sorted(d for d in args.sequences.iterdir() if (d / "groundtruth.txt").is_file())
    for model in args.model:
        per_seq = {d.name: track(model, d, args.backend) for d in folders}
        names = np.concatenate([[n] * len(iou) for n, (iou, _) in per_seq.items()])
        iou = np.concatenate([v[0] for v in per_seq.values()])
        found, lost, keep = iou > 0.5, iou < 0.1, names != "truck4_1"
        print(f"## {model}: {found.sum()} found, {lost.sum()} lost frames ({(lost & keep).sum()} without truck4_1)")
        print("| measure | AUROC | AUROC without truck4_1 | mean found | mean lost |\n|---|---:|---:|---:|---:|")
        for key in next(iter(per_seq.values()))[1]:
            v = np.concatenate([m[key] for _, m in per_seq.values()])
            print(f"| {key} | {auroc(v[found], v[lost]):.3f} | {auroc(v[found & keep], v[lost & keep]):.3f} | "
                  f"{v[found].mean():.3f} | {v[lost].mean():.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
