"""Evaluate a default-model candidate the way its card reports it: tuning vs held-out sequences, score
separation, and the same on grayscale copies of the sequences.

    python train/evaluate.py --out runs/eval_v2 [--model default|EXPORT] [--peer nanotrack --peer fear_xs]

Model and settings are chosen on the TUNING sequences only; the HELD_OUT ones are reported
separately. Runs ``mixformerv2-eval`` (one thread per worker) on ``--sequences`` and on grayscale
copies of them (written once under ``<out>/gray``), then prints per tracker and split: success AUC,
SR0.75, and for trackers with a score the mean score on found (IoU > 0.5) and lost (IoU < 0.1)
frames and the AUROC between the two. Writes ``<out>/report.json``. ``--starts 0,0.25,0.5,0.75``
runs every sequence from those start frames too (``mixformerv2-eval --starts``) and reports over all
runs: single failure events then weigh less in a choice between candidates.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

from mixformerv2_benchmarks import accuracy
from mixformerv2_benchmarks.datasets import load_dataset
from mixformerv2_benchmarks.metrics import aggregate, box_iou, evaluate_sequence
from mixformerv2_benchmarks.starts import start_positions, start_sequences

TUNING = ("ball1", "boat1", "crossing", "person11", "truck4_2")
HELD_OUT = ("building4", "demo360", "person12_1", "truck4_1", "wakeboard10")


def auroc(pos: np.ndarray, neg: np.ndarray) -> float:
    """Probability that a found frame (pos) scores above a lost one (neg), ties counting half."""
    if not len(pos) or not len(neg):
        return float("nan")
    return float((pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean())


def gray_copy(src: Path, dst: Path) -> Path:
    """Grayscale (3 equal channels) copies of every sequence's frames, ground truth unchanged."""
    for seq in sorted(p for p in src.iterdir() if (p / "groundtruth.txt").is_file()):
        out = dst / seq.name
        if (out / "groundtruth.txt").is_file():
            continue
        (out / "img").mkdir(parents=True, exist_ok=True)
        for f in sorted((seq / "img").glob("*.jpg")):
            cv2.imwrite(str(out / "img" / f.name), cv2.imread(str(f), cv2.IMREAD_GRAYSCALE),
                        [cv2.IMWRITE_JPEG_QUALITY, 95])
        (out / "groundtruth.txt").write_text((seq / "groundtruth.txt").read_text())
    return dst


def split_report(results: Path, sequences: list, names: tuple[str, ...], starts: tuple[float, ...] = (0.0,)) -> dict:
    """AUC / SR0.75 (the harness's aggregate over ``names``) and score separation from result files;
    ``sequences``: the dataset's loaded sequences (``load_dataset(...).sequences``); with ``starts``
    (``mixformerv2-eval --starts``) over every start's run of those sequences."""
    runs, _ = start_sequences([s for s in sequences if s.name in names], starts)
    seq_results, found, lost = [], [], []
    for run in runs:
        boxes = np.loadtxt(results / f"{run.name}.txt", delimiter="\t", ndmin=2)
        gt = run.gt
        seq_results.append(evaluate_sequence(boxes, gt))
        score_file = results / f"{run.name}_score.txt"
        if score_file.is_file():
            scores = np.loadtxt(score_file)[1:]
            ious = box_iou(boxes[1:], gt[1:])
            ok = np.isfinite(scores)
            found += list(scores[ok & (ious > 0.5)])
            lost += list(scores[ok & (ious < 0.1)])
    scores, _ = aggregate(seq_results)
    out = {"auc": 100 * scores["auc"], "sr75": 100 * scores["sr75"], "sequences": list(names), "runs": len(runs)}
    if found or lost:
        out.update(found_frames=len(found), lost_frames=len(lost),
                   mean_score_found=float(np.mean(found)) if found else float("nan"),
                   mean_score_lost=float(np.mean(lost)) if lost else float("nan"),
                   auroc=auroc(np.array(found), np.array(lost)))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--model", default="default", help="registered name or export folder (default: default)")
    p.add_argument("--peer", action="append", default=[], help="also run this peer (repeatable)")
    p.add_argument("--sequences", type=Path, default=Path("../shared/data/sequences"))
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--backend", default="onnxruntime", help="backend of the model (default onnxruntime)")
    p.add_argument("--precision", default="auto", choices=("auto", "fp32", "int8", "bf16"),
                   help="precision of the model (default auto: what Tracker() picks on this machine)")
    p.add_argument("--starts", default="0", metavar="F,F,...",
                   help="start frames per sequence as fractions (mixformerv2-eval --starts; default 0 = one pass; "
                        "0,0.25,0.5,0.75 ranks candidates with four runs per sequence)")
    args = p.parse_args(argv)
    try:
        starts = tuple(start_positions([v for v in args.starts.split(",") if v.strip()]))
    except ValueError as exc:
        p.error(f"--starts {args.starts!r}: {exc}")
    trackers = [f"model={args.model}", *args.peer]
    sets = {"color": args.sequences.resolve(), "gray": gray_copy(args.sequences.resolve(), args.out / "gray")}
    report: dict = {"tuning": TUNING, "held_out": HELD_OUT, "model": args.model, "backend": args.backend,
                    "precision": args.precision, "starts": list(starts), "trackers": {}}
    for kind, root in sets.items():
        eval_out = args.out / f"eval_{kind}"
        argv_eval = ["--dataset", str(root), "--workers", str(args.workers), "--threads", "1", "--out", str(eval_out),
                     "--backend", args.backend, "--precision", args.precision, "--no-progress",
                     "--starts", ",".join(str(f) for f in starts)]
        for t in trackers:
            argv_eval += ["--tracker", t]
        if accuracy.main(argv_eval) not in (0,):
            print(f"evaluation of {kind} failed", file=sys.stderr)
            return 1
        sequences = load_dataset(root, "shared").sequences  # once per copy: every tracker and split reads it
        for t in trackers:
            label = t.split("=")[0]
            res = eval_out / root.name / label
            report["trackers"].setdefault(label, {})[kind] = {
                split: split_report(res, sequences, names, starts) for split, names in
                (("all", TUNING + HELD_OUT), ("tuning", TUNING), ("held_out", HELD_OUT))}
    (args.out / "report.json").write_text(json.dumps(report, indent=1))
    print("| tracker | frames | split | AUC | SR0.75 | score found / lost | AUROC |")
    print("|---|---|---|---:|---:|---:|---:|")
    for label, kinds in report["trackers"].items():
        for kind, splits in kinds.items():
            for split, r in splits.items():
                sep = (f"{r['mean_score_found']:.3f} / {r['mean_score_lost']:.3f}" if "auroc" in r else "—")
                au = f"{r['auroc']:.3f}" if "auroc" in r else "—"
                print(f"| {label} | {kind} | {split} | {r['auc']:.1f} | {r['sr75']:.1f} | {sep} | {au} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
