"""Choose a model's box-size calibration (``mixformerv2-export --box-scale``) on the tuning sequences.

    python train/box_scale.py runs/eval_v3          # a train/evaluate.py output folder (its model, scale 1)

Scales the recorded boxes of the ``model`` tracker about their centres by each factor of a grid and
prints, per factor, success AUC / SR0.75 on the colour and grayscale runs for the tuning sequences
(the choice) and, for the record, the held-out ones and all ten. The chosen factor is the middle
of the factors whose mean tuning AUC (colour and grayscale) is within ``--tie`` of the best. The
trajectories are those of scale 1: the tracker follows the network's own box whatever the scale,
so scaling the recorded boxes gives exactly what the calibrated export reports (up to clipping at
the frame border, which can only raise the overlap).

One pass per sequence can show a size bias that several starts do not (v3: +0.7 AUC at 1.05 on one
pass, -0.65 with ``mixformerv2-eval --starts 0,0.25,0.5,0.75``; model card): confirm a factor on
multi-start runs before shipping it.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from mixformerv2_benchmarks.metrics import aggregate, evaluate_sequence
from mixformerv2_cpu.geometry import scale_box

sys.path.insert(0, str(Path(__file__).resolve().parent))
from evaluate import HELD_OUT, TUNING  # noqa: E402  (train/ is a folder of scripts, not a package)

RUNS = {"colour": ("eval_color", "sequences"), "gray": ("eval_gray", "gray")}


def scaled(boxes: np.ndarray, factor: float) -> np.ndarray:
    """(N,4) xywh boxes -> the same boxes with w and h times ``factor`` about their centres."""
    return np.array([scale_box(b, factor) for b in boxes]).reshape(-1, 4)


def split_scores(runs: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]], factor: float,
                 names: tuple[str, ...]) -> dict[str, tuple[float, float]]:
    """Per run kind: (AUC, SR0.75) in % over ``names`` with the boxes scaled by ``factor``.
    ``runs[kind][name]`` = (boxes (N,4), ground truth (N,4))."""
    out = {}
    for kind, seqs in runs.items():
        stats, _ = aggregate([evaluate_sequence(scaled(seqs[n][0], factor), seqs[n][1]) for n in names])
        out[kind] = (100 * stats["auc"], 100 * stats["sr75"])
    return out


def choose(tuning_auc: dict[float, float], tie: float) -> float:
    """The middle factor (lower of two middles) of those whose tuning AUC is within ``tie`` of the best."""
    best = max(tuning_auc.values())
    near = sorted(f for f, a in tuning_auc.items() if a >= best - tie)
    return near[(len(near) - 1) // 2]


def load_runs(folder: Path, sequences: Path, label: str = "model") -> dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]:
    runs = {}
    for kind, (sub, dataset) in RUNS.items():
        gt_root = sequences if kind == "colour" else folder / "gray"
        runs[kind] = {}
        for name in TUNING + HELD_OUT:
            boxes = folder / sub / dataset / label / f"{name}.txt"
            if not boxes.is_file():
                raise SystemExit(f"missing {boxes}: pass a train/evaluate.py output folder")
            runs[kind][name] = (np.loadtxt(boxes, delimiter="\t", ndmin=2),
                                np.loadtxt(gt_root / name / "groundtruth.txt", delimiter=",", ndmin=2))
    return runs


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("folder", type=Path, help="train/evaluate.py --out folder of the uncalibrated model")
    p.add_argument("--sequences", type=Path, default=Path("../shared/data/sequences"))
    p.add_argument("--grid", default="1.00:1.10:0.01", help="start:stop:step (inclusive), default 1.00:1.10:0.01")
    p.add_argument("--tie", type=float, default=0.05, help="AUC points counted as a tie (default 0.05)")
    args = p.parse_args(argv)
    start, stop, step = (float(v) for v in args.grid.split(":"))
    factors = [round(f, 4) for f in np.arange(start, stop + step / 2, step)]
    runs = load_runs(args.folder, args.sequences)
    tuning_auc = {}
    print("| factor | tuning colour | tuning gray | mean tuning AUC | held-out colour | all colour | all gray |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for f in factors:
        t, h, a = (split_scores(runs, f, names) for names in (TUNING, HELD_OUT, TUNING + HELD_OUT))
        tuning_auc[f] = (t["colour"][0] + t["gray"][0]) / 2
        cells = [t["colour"], t["gray"]]
        print(f"| {f:.2f} | " + " | ".join(f"{c[0]:.1f} / {c[1]:.1f}" for c in cells)
              + f" | {tuning_auc[f]:.2f} | " + " | ".join(f"{c[0]:.1f} / {c[1]:.1f}" for c in
                                                          (h["colour"], a["colour"], a["gray"])) + " |")
    print(f"chosen on the tuning sequences ({', '.join(TUNING)}): --box-scale {choose(tuning_auc, args.tie):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
