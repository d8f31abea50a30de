"""Write a weights release of a training run: what is needed to continue it in another session.

    python train/release.py runs/v2/last.pth.tar train/checkpoints/default_v2.pt

Keeps the fp32 weights (network + the training-only auxiliary head), the step, the run's total
steps and seed, and the run record; drops the AdamW moments (about twice the weights' size):
``train.py --init RELEASE`` continues the same schedule and data stream at that step with fresh
moments and a short learning-rate re-warm. A snapshot (``step_<k>.pth.tar``) can be released too;
one written before session 9 holds the network only, and ``--finetune`` from it starts the
training-only auxiliary head afresh.
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
    total, seed = ck.get("total_steps", record["steps"]), ck.get("seed", record["seed"])
    release = {"net": ck["net"], "config": ck["config"], "step": ck["step"], "total_steps": total, "seed": seed,
               "run": json.dumps(record)}
    if "aux" in ck:  # snapshots written before session 9 kept the network only
        release["aux"] = ck["aux"]
    torch.save(release, dst)
    print(f"{dst}: step {ck['step']} of {total}{'' if 'aux' in ck else ' (network only)'}, "
          f"{dst.stat().st_size / 2**20:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
