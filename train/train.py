"""Train the project's default model on CPU (MixFormerV2 family, MobileNetV3 stem), with resume.

    python train/train.py --out runs/default --minutes 45 [--resume]

Time-based schedule: the learning rate follows a cosine over the ``--minutes`` budget, so a
run fits one working session on a 2-core CPU; a checkpoint is written every few minutes and
``--resume`` continues from it (elapsed time included). Batches are rendered by a separate
process (train/data.py). Output: ``<out>/last.pth.tar`` = ``{'net', 'config', 'step', 'elapsed', ...}``,
loadable by ``mixformerv2-export`` / ``mixformerv2_export.checkpoint.load_model``.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import multiprocessing as mp
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from data import Assets, render_batch  # noqa: E402

from mixformerv2_export.model import MixFormerV2, ModelConfig, decode_ltrb  # noqa: E402
from mixformerv2_export.model.stem import load_nanotrack_features  # noqa: E402

CONFIG = ModelConfig(embed_dim=192, depth=4, num_heads=3, mlp_ratio=2.0, template_size=96, search_size=192,
                     bins=48, stem="mnv3s")


def _producer(queue: mp.Queue, cache: str, seed: int, batch: int, t_size: int, s_size: int) -> None:
    torch.set_num_threads(1)
    import cv2

    cv2.setNumThreads(1)
    assets = Assets.load(Path(cache))
    rng = np.random.default_rng(seed)
    while True:
        queue.put(render_batch(assets, rng, batch, t_size, s_size))


def sincos_2d(grid: int, dim: int) -> torch.Tensor:
    """(1, grid*grid, dim) 2-D sine-cosine position embedding (as MixFormer initialises its own)."""
    y, x = torch.meshgrid(torch.arange(grid, dtype=torch.float32), torch.arange(grid, dtype=torch.float32),
                          indexing="ij")
    omega = 1.0 / 10000 ** (torch.arange(dim // 4, dtype=torch.float32) / (dim // 4))
    out = [torch.sin(x.flatten()[:, None] * omega), torch.cos(x.flatten()[:, None] * omega),
           torch.sin(y.flatten()[:, None] * omega), torch.cos(y.flatten()[:, None] * omega)]
    return torch.cat(out, 1)[None]


def init_weights(model: MixFormerV2) -> None:
    """ViT-style initialisation: truncated-normal linears, sin-cos position embeddings (trainable),
    distinct prediction tokens."""
    for m in model.modules():
        if isinstance(m, torch.nn.Linear):
            torch.nn.init.trunc_normal_(m.weight, std=0.02)
            torch.nn.init.zeros_(m.bias)
    cfg, bb = model.cfg, model.backbone
    with torch.no_grad():
        bb.pos_embed_t.copy_(sincos_2d(cfg.template_size // cfg.patch_size, cfg.embed_dim))
        bb.pos_embed_s.copy_(sincos_2d(cfg.search_size // cfg.patch_size, cfg.embed_dim))
        torch.nn.init.trunc_normal_(bb.reg_tokens, std=0.02)
        torch.nn.init.trunc_normal_(bb.pos_embed_reg, std=0.02)
        # the box head ends in LayerNorm(bins): its gain sets how sharp the edge distributions can be;
        # AdamW moves it ~lr per step, so start it sharp instead of waiting thousands of steps
        model.box_head.layers[1][1].weight.fill_(5.0)


def giou_loss(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """pred/gt (N,4) x1,y1,x2,y2 -> 1 - GIoU per box."""
    px1, py1 = torch.minimum(pred[:, 0], pred[:, 2]), torch.minimum(pred[:, 1], pred[:, 3])
    px2, py2 = torch.maximum(pred[:, 0], pred[:, 2]), torch.maximum(pred[:, 1], pred[:, 3])
    area_p = (px2 - px1) * (py2 - py1)
    area_g = (gt[:, 2] - gt[:, 0]) * (gt[:, 3] - gt[:, 1])
    iw = (torch.minimum(px2, gt[:, 2]) - torch.maximum(px1, gt[:, 0])).clamp(min=0)
    ih = (torch.minimum(py2, gt[:, 3]) - torch.maximum(py1, gt[:, 1])).clamp(min=0)
    inter = iw * ih
    union = area_p + area_g - inter + 1e-7
    cw = torch.maximum(px2, gt[:, 2]) - torch.minimum(px1, gt[:, 0])
    ch = torch.maximum(py2, gt[:, 3]) - torch.minimum(py1, gt[:, 1])
    hull = cw * ch + 1e-7
    return 1 - (inter / union - (hull - union) / hull)


def dfl_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Distribution focal loss: logits (N,4,bins), target (N,4) in 0..1 -> (N,) mean over edges."""
    bins = logits.shape[-1]
    y = (target * bins).clamp(0, bins - 1 - 1e-4)
    left = y.floor().long()
    wl, wr = (left + 1 - y), (y - left)
    logp = F.log_softmax(logits, -1)
    lp = logp.gather(-1, left[..., None])[..., 0]
    rp = logp.gather(-1, (left + 1)[..., None])[..., 0]
    return -(wl * lp + wr * rp).mean(-1)


class AuxHead(torch.nn.Module):
    """Training-only dense head: a "target centre here" logit per search token, read from the input of
    the last block (the keys/values the prediction tokens attend to). It gives every token a direct
    template-matching signal, so the correlation is learnt far sooner than through the 4 prediction
    tokens alone (as OSTrack/STARK-style dense heads do). Never exported."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = torch.nn.LayerNorm(dim)
        self.fc = torch.nn.Linear(dim, 1)
        torch.nn.init.constant_(self.fc.bias, -2.19)  # prior p = 0.1, as CenterNet starts its heatmaps

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.fc(self.norm(tokens))[..., 0]


def tap_search_tokens(model: MixFormerV2) -> dict[str, torch.Tensor]:
    """Hook the last block so that each ``model(...)`` call leaves the search tokens entering it,
    (B, Ns, D), under ``"search"`` in the returned dict (the tokens follow the 2 x Nt template tokens)."""
    start, count = 2 * model.cfg.template_tokens, model.cfg.search_tokens
    tapped: dict[str, torch.Tensor] = {}

    def hook(_block, args):
        tapped["search"] = args[0][:, start:start + count]

    model.backbone.blocks[-1].register_forward_pre_hook(hook)
    return tapped


def centre_heatmap(ltrb: torch.Tensor, valid: torch.Tensor, grid: int) -> torch.Tensor:
    """(N,4) normalised l,t,r,b + (N,) valid -> (N, grid*grid) Gaussian centre heatmap (CenterNet style),
    peak cell set to exactly 1; all zeros where the target is not in the crop."""
    cx = (ltrb[:, 0] + ltrb[:, 2]) / 2 * grid - 0.5
    cy = (ltrb[:, 1] + ltrb[:, 3]) / 2 * grid - 0.5
    w = (ltrb[:, 2] - ltrb[:, 0]) * grid
    h = (ltrb[:, 3] - ltrb[:, 1]) * grid
    sigma = (torch.sqrt(w * h) / 6).clamp(min=0.5)
    ax = torch.arange(grid, dtype=torch.float32)
    gx = torch.exp(-(ax[None] - cx[:, None]) ** 2 / (2 * sigma[:, None] ** 2))
    gy = torch.exp(-(ax[None] - cy[:, None]) ** 2 / (2 * sigma[:, None] ** 2))
    heat = (gy[:, :, None] * gx[:, None, :]).reshape(len(ltrb), -1)
    peak = (cy.round().clamp(0, grid - 1) * grid + cx.round().clamp(0, grid - 1)).long()
    heat = heat.scatter(1, peak[:, None], 1.0)
    return heat * (valid[:, None] > 0)


def focal_heatmap_loss(logit: torch.Tensor, heat: torch.Tensor) -> torch.Tensor:
    """CenterNet's penalty-reduced focal loss, normalised by the number of peaks (at least 1)."""
    p = torch.sigmoid(logit).clamp(1e-4, 1 - 1e-4)
    pos = heat >= 1
    pos_loss = -((1 - p) ** 2 * torch.log(p))[pos].sum()
    neg_loss = -(((1 - heat) ** 4) * p ** 2 * torch.log(1 - p))[~pos].sum()
    return (pos_loss + neg_loss) / pos.sum().clamp(min=1)


def losses(model, aux, tapped, batch):
    t, o, s, ltrb, valid, label = (torch.from_numpy(x) for x in batch)
    logits, score = model(t, o, s)
    box = decode_ltrb(logits)  # cx,cy,w,h
    pred = torch.stack([box[:, 0] - box[:, 2] / 2, box[:, 1] - box[:, 3] / 2,
                        box[:, 0] + box[:, 2] / 2, box[:, 1] + box[:, 3] / 2], -1)
    v = valid > 0
    n = v.sum().clamp(min=1)
    l_dfl = (dfl_loss(logits, ltrb) * valid).sum() / n
    l_giou = (giou_loss(pred, ltrb) * valid).sum() / n
    l_l1 = ((pred - ltrb).abs().mean(-1) * valid).sum() / n
    l_score = F.binary_cross_entropy_with_logits(score[:, 0], label)
    grid = model.cfg.search_size // model.cfg.patch_size
    l_aux = focal_heatmap_loss(aux(tapped["search"]), centre_heatmap(ltrb, valid, grid))
    total = l_dfl + 2 * l_giou + 5 * l_l1 + l_score + l_aux
    with torch.no_grad():
        acc = ((score[:, 0] > 0) == (label > 0.5)).float().mean()
    return total, {"dfl": l_dfl.item(), "giou": l_giou.item(), "l1": l_l1.item(), "score": l_score.item(),
                   "aux": l_aux.item(), "score_acc": acc.item(), "giou_metric": 1 - l_giou.item()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--minutes", type=float, default=45.0, help="training time budget (cosine schedule over it)")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--cache", type=Path, default=Path("runs/cache"),
                   help="folder holding the arcade wheel (pip download arcade==3.3.3 --no-deps -d FOLDER)")
    p.add_argument("--stem-init", type=Path, default=Path("../shared/data/peers/nanotrack_v2/nanotrackv2.pth"),
                   help="NanoTrack v2 training checkpoint (Apache-2.0) for the MobileNetV3 stem")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    model = MixFormerV2(CONFIG)
    aux = AuxHead(CONFIG.embed_dim)
    tapped = tap_search_tokens(model)
    step, elapsed = 0, 0.0
    last = args.out / "last.pth.tar"
    if args.resume and last.is_file():
        ck = torch.load(last, map_location="cpu", weights_only=True)
        model.load_state_dict(ck["net"])
        if "aux" in ck:
            aux.load_state_dict(ck["aux"])
        step, elapsed = ck["step"], ck["elapsed"]
        print(f"resumed at step {step}, {elapsed / 60:.1f} min", flush=True)
    else:
        init_weights(model)
        print("stem weights loaded:", load_nanotrack_features(model.backbone.patch_embed, str(args.stem_init)))
    for prm in model.backbone.patch_embed.features.parameters():
        prm.requires_grad = False
    params = [q for q in model.parameters() if q.requires_grad] + list(aux.parameters())
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.05)
    if args.resume and last.is_file() and "opt" in ck:
        opt.load_state_dict(ck["opt"])
    queue: mp.Queue = mp.get_context("spawn").Queue(maxsize=6)
    worker = mp.get_context("spawn").Process(
        target=_producer, args=(queue, str(args.cache), args.seed * 1000 + step, args.batch,
                                CONFIG.template_size, CONFIG.search_size), daemon=True)
    worker.start()
    budget = args.minutes * 60
    model.train()
    t0, last_save, hist = time.time() - elapsed, time.time(), []
    while True:
        elapsed = time.time() - t0
        if elapsed >= budget:
            break
        frac = elapsed / budget
        lr = args.lr * min(1.0, (step + 1) / 200) * 0.5 * (1 + math.cos(math.pi * frac))
        for g in opt.param_groups:
            g["lr"] = lr
        total, parts = losses(model, aux, tapped, queue.get())
        opt.zero_grad()
        total.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        hist.append(parts)
        if step % 50 == 0:
            mean = {k: np.mean([h[k] for h in hist]) for k in hist[0]}
            hist = []
            print(f"step {step} {elapsed / 60:.1f}min lr {lr:.2e} " + " ".join(f"{k} {v:.3f}" for k, v in mean.items()),
                  flush=True)
        if time.time() - last_save > 180:
            _save(model, aux, opt, step, time.time() - t0, last)
            last_save = time.time()
    _save(model, aux, opt, step, time.time() - t0, last)
    worker.terminate()
    print(f"done: {step} steps in {(time.time() - t0) / 60:.1f} min -> {last}")
    return 0


def _save(model, aux, opt, step, elapsed, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save({"net": model.state_dict(), "config": dataclasses.asdict(CONFIG), "step": step, "elapsed": elapsed,
                "opt": opt.state_dict(), "aux": aux.state_dict()}, tmp)
    tmp.replace(path)


if __name__ == "__main__":
    sys.exit(main())
