"""Write a weights release of a training run: what is needed to continue it in another session.

    python train/release.py runs/v2/last.pth.tar train/checkpoints/default_v2.pt

Keeps the fp32 weights (network + the training-only auxiliary head), the step, the run's total
steps and seed, and the run record; drops the AdamW moments (about twice the weights' size):
``train.py --init RELEASE`` continues the same schedule and data stream at that step with fresh
moments and a short learning-rate re-warm.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import torch


def main(argv: list[str]) -> int:
    src, dst = Path(argv[0]), Path(argv[1])
    ck = torch.load(src, map_location="cpu", weights_only=True)
    record = json.loads((src.parent / "run.json").read_text())
    dst.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"net": ck["net"], "aux": ck["aux"], "config": ck["config"], "step": ck["step"],
                "total_steps": ck["total_steps"], "seed": ck["seed"], "run": json.dumps(record)}, dst)
    print(f"{dst}: step {ck['step']} of {ck['total_steps']}, {dst.stat().st_size / 2**20:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
