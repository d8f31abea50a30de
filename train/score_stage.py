"""Second training stage: the score head alone, on real video with look-alike negatives plus the
synthetic samples of the first stage (the way STARK-ST and MixFormer train their score heads).

    python train/score_stage.py --init runs/v2/last.pth.tar --out runs/v2_score --steps 1500 [--seed 0] [--resume]

Everything but the score head is frozen and runs in eval mode (the stem's batch-norm statistics stay as
they are), so boxes are exactly those of the first stage. Each batch is half real-video samples
(``real_video.py``: people in vtest.avi; the negatives are search crops centred on another person with
the target outside) and half synthetic ones (``sampling.render_sample``). The batch of step k comes from
``numpy.random.default_rng([seed, 2, k])``: a rerun with the same ``--init``, ``--steps`` and ``--seed``
gives the same head up to float noise. The checkpoint has the first stage's format (``mixformerv2-export``
reads it; ``step`` stays the first stage's, ``score_step`` counts this stage); ``run.json`` is the first stage's record with a ``score_stage`` section added.
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import multiprocessing as mp
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train import (CONFIG, _git_commit, _versions, get_while_producer_lives, put_while_parent_lives,  # noqa: E402
                   run_record, trained_search_factor)

from mixformerv2_export.network import MixFormerV2, ModelConfig  # noqa: E402

STREAM = 2  # the stage's data stream id (stage 1 uses [seed, step])
WARMUP_STEPS = 50


def _producer(queue: mp.Queue, cache: str, peers: str, seed: int, start: int, batch: int, real_share: float,
              real_negatives: float, t_size: int, s_size: int, search_factor: float) -> None:
    import sampling
    from assets import Assets
    from real_video import load_tracks
    from sampling import render_real_sample, render_sample, stack_samples

    torch.set_num_threads(1)
    sampling.SEARCH_FACTOR = search_factor  # the first stage's crop factor, for every sample
    assets, data = Assets.load(Path(cache)), load_tracks(Path(cache), Path(peers))
    step = start
    while True:
        rng = np.random.default_rng([seed, STREAM, step])
        real = rng.random(batch) < real_share
        items = [render_real_sample(data, rng, t_size, s_size, real_negatives) if r
                 else render_sample(assets, rng, t_size, s_size) for r in real]
        if not put_while_parent_lives(queue, (step, stack_samples(items) + [real])):
            return
        step += 1


def lr_at(step: int, total: int, base: float) -> float:
    if step < WARMUP_STEPS:
        return base * (step + 1) / WARMUP_STEPS
    return 0.5 * base * (1 + math.cos(math.pi * (step - WARMUP_STEPS) / max(1, total - WARMUP_STEPS)))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--init", type=Path, required=True, help="first-stage checkpoint or weights release")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--real-share", type=float, default=0.5, help="share of real-video samples per batch")
    p.add_argument("--real-negatives", type=float, default=0.5, help="share of real samples that are look-alike negatives")
    p.add_argument("--distill", type=float, default=0.0,
                   help="weight of keeping the first stage's score on the synthetic samples (BCE to its probability)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache", type=Path, default=Path("runs/cache"))
    p.add_argument("--peers", type=Path, default=Path("../shared/data/peers"),
                   help="peer trackers folder (FEAR-XS labels the real video once; cached afterwards)")
    p.add_argument("--resume", action="store_true")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    last, record_path = args.out / "last.pth.tar", args.out / "run.json"
    src = torch.load(args.init, map_location="cpu", weights_only=True)
    cfg = ModelConfig(**src["config"]) if "config" in src else CONFIG
    model = MixFormerV2(cfg)
    model.load_state_dict(src["net"])
    record = run_record(args.init, src) or {}
    factor = trained_search_factor(args.init)  # the head learns at the scale the network was trained at
    step = 0
    for q in model.parameters():
        q.requires_grad_(False)
    head = list(model.score_head.parameters())
    for q in head:
        q.requires_grad_(True)
    opt = torch.optim.AdamW(head, lr=args.lr, weight_decay=0.01)
    teacher = copy.deepcopy(model.score_head).eval()  # the first stage's head, for --distill
    if args.resume:
        ck = torch.load(last, map_location="cpu", weights_only=True)
        model.load_state_dict(ck["net"])
        opt.load_state_dict(ck["opt"])
        step = ck["score_step"]
        record = json.loads(record_path.read_text())
        args.steps, args.seed = ck["total_steps"], ck["seed"]
    stage = record.setdefault("score_stage", {
        "command": " ".join(["python", "train/score_stage.py", *(argv if argv is not None else sys.argv[1:])]),
        "init": str(args.init), "init_step": src.get("step"), "steps": args.steps, "seed": args.seed,
        "batch": args.batch, "lr": args.lr, "real_share": args.real_share, "real_negatives": args.real_negatives,
        "distill": args.distill, "search_factor": factor, "commit": _git_commit(),
        "versions": _versions(), "trained": "score head only; the rest frozen in eval mode"})
    from real_video import DATA_SOURCE
    if DATA_SOURCE not in record.setdefault("data_sources", []):
        record["data_sources"].append(DATA_SOURCE)
    model.eval()
    ctx = mp.get_context("spawn")
    queue: mp.Queue = ctx.Queue(maxsize=6)
    worker = ctx.Process(target=_producer, args=(queue, str(args.cache), str(args.peers), args.seed, step, args.batch,
                                                 args.real_share, args.real_negatives, cfg.template_size,
                                                 cfg.search_size, factor), daemon=True)
    worker.start()
    t0, hist = time.time(), []
    while step < args.steps:
        got, (t, o, s, _, _, label, real) = get_while_producer_lives(queue, worker)
        if got != step:
            raise RuntimeError(f"data stream out of order: batch of step {got} at step {step}")
        for g in opt.param_groups:
            g["lr"] = lr_at(step, args.steps, args.lr)
        with torch.no_grad():  # everything before the score head is frozen
            tokens = model.pred_tokens(torch.from_numpy(t), torch.from_numpy(o), torch.from_numpy(s))
        score = model.score_head(tokens)
        y = torch.from_numpy(label)
        if args.distill > 0 and (~real).any():  # the first stage's probability as the target on synthetic samples
            with torch.no_grad():
                y = torch.where(torch.from_numpy(real), y, torch.sigmoid(teacher(tokens)[:, 0]))
        loss = F.binary_cross_entropy_with_logits(score[:, 0], y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        hist.append((loss.item(), ((score[:, 0] > 0) == (y > 0.5)).float().mean().item()))
        step += 1
        if step % 50 == 0 or step == args.steps:
            m = np.mean(hist, axis=0)
            stage["final_losses"] = {"score": round(float(m[0]), 4), "score_acc": round(float(m[1]), 4)}
            print(f"score stage {step}/{args.steps} {(time.time() - t0) / 60:.1f}min lr {lr_at(step, args.steps, args.lr):.2e} "
                  f"score {m[0]:.3f} score_acc {m[1]:.3f}", flush=True)
            hist = []
            stage["step"] = step
            torch.save({"net": model.state_dict(), "config": src.get("config"), "step": src.get("step"),
                        "score_step": step, "total_steps": args.steps, "seed": args.seed, "opt": opt.state_dict()},
                       last)
            record_path.write_text(json.dumps(record, indent=1))
    worker.terminate()
    print(f"done: {step} score-stage steps -> {last}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
