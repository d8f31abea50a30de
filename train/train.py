"""Train the project's default model on CPU (MixFormerV2 family, MobileNetV3 stem), with resume.

    python train/train.py --out runs/default --steps 30000 [--seed 0] [--resume]

Step-based schedule: warm-up then a cosine over ``--steps``; ``--minutes`` instead picks the step
count from the measured speed of the first steps (and records it). The batch of step k is rendered
from ``numpy.random.default_rng([seed, k])``, so a rerun with the same ``--steps`` and ``--seed``
sees the same data and gives the same model up to float noise, and ``--resume`` continues the same
data stream. A checkpoint is written every few minutes (``last.pth.tar``: net, optimizer, step,
total steps, config) and ``run.json`` records the command, versions, data sources and losses.
``--init WEIGHTS`` starts from the fp32 weights of an earlier run (e.g. the weights shipped in a
release, when the optimizer state is gone) and continues its data stream at ``--start-step``.
Batches are rendered by a separate process (train/sampling.py). ``last.pth.tar`` is loadable by
``mixformerv2-export`` / ``mixformerv2_export.checkpoint.load_model``.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import multiprocessing as mp
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from assets import DATA_SOURCES, Assets  # noqa: E402
from sampling import GRAY_RATE, LEGACY_SEARCH_FACTOR, SEARCH_FACTOR, render_batch  # noqa: E402
from real_video import LABELS  # noqa: E402

from mixformerv2_export.network import MixFormerV2, ModelConfig, decode_ltrb  # noqa: E402
from mixformerv2_export.checkpoint import load_nanotrack_features  # noqa: E402

CONFIG = ModelConfig(embed_dim=192, depth=4, num_heads=3, mlp_ratio=2.0, template_size=96, search_size=192,
                     bins=48, stem="mnv3s96")
WARMUP_STEPS = 300
STEM_TRAINABLE_FROM = 7  # stem blocks features.7.. are fine-tuned (at STEM_LR_SCALE x lr), earlier ones frozen
STEM_LR_SCALE = 0.1
TRAINING_PACKAGES = ("torch", "numpy", "opencv-python", "scikit-image", "scikit-learn", "onnx", "onnxsim", "openvino",
                     "onnxruntime")


def batch_rng(seed: int, step: int) -> np.random.Generator:
    """The generator of the batch used at ``step`` (0-based): the data stream depends on (seed, step) only."""
    return np.random.default_rng([seed, step])


def put_while_parent_lives(queue: mp.Queue, item, poll: float = 5.0) -> bool:
    """Put ``item`` on the data queue, waiting while it is full; False (the producer should stop) once
    the training process that reads it is gone, so a killed run leaves no producer behind."""
    import queue as queue_module

    parent = mp.parent_process()
    while True:
        try:
            queue.put(item, timeout=poll)
            return True
        except queue_module.Full:
            if parent is not None and not parent.is_alive():
                if hasattr(queue, "cancel_join_thread"):  # exit without flushing batches nobody will read
                    queue.cancel_join_thread()
                return False


def get_while_producer_lives(queue: mp.Queue, worker, poll: float = 5.0):
    """The next item of the data queue, waiting while it is empty; RuntimeError once the producer
    process ``worker`` has exited with nothing queued (a producer that fails, e.g. on a missing asset
    cache, prints its own traceback), so the trainer stops instead of waiting for ever."""
    import queue as queue_module

    while True:
        try:
            return queue.get(timeout=poll)
        except queue_module.Empty:
            if not worker.is_alive():
                raise RuntimeError(f"the training-data producer exited (exit code {worker.exitcode}) and sends "
                                   "no more batches; its error is printed above") from None


def _producer(queue: mp.Queue, cache: str, seed: int, start: int, batch: int, t_size: int, s_size: int,
              real_share: float = 0.0, real_negatives: float = 0.5, peers: str = "",
              gray_rate: float | None = None, real_labels: str = "detections", score_teacher: str = "none",
              search_factor: float = SEARCH_FACTOR, tiny_rate: float = 0.0) -> None:
    torch.set_num_threads(1)
    import cv2

    import sampling

    cv2.setNumThreads(1)
    if gray_rate is not None:
        sampling.GRAY_RATE = gray_rate
    sampling.SEARCH_FACTOR = search_factor
    sampling.TINY_RATE = tiny_rate
    assets = Assets.load(Path(cache))
    if real_share > 0:
        from real_video import load_tracks
        from sampling import render_real_sample, render_sample, stack_samples

        data = load_tracks(Path(cache), Path(peers), labels=real_labels)
        teacher = None
        if score_teacher != "none":
            from mixformerv2_benchmarks.peers import make_peer
            teacher = make_peer(score_teacher, threads=1, peers_dir=Path(peers))
    step = start
    while True:
        rng = batch_rng(seed, step)
        if real_share > 0:  # the batch's first draw picks which items are real video
            real = rng.random(batch) < real_share
            items = [render_real_sample(data, rng, t_size, s_size, real_negatives, teacher) if r
                     else render_sample(assets, rng, t_size, s_size) for r in real]
            item = (step, stack_samples(items) + [real.astype(np.float32)])
        else:
            item = (step, render_batch(assets, rng, batch, t_size, s_size))
        if not put_while_parent_lives(queue, item):
            return
        step += 1


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


def resize_search_pos_embed(state: dict, cfg: ModelConfig) -> dict:
    """A state dict whose search position embedding (1, g*g, D) is resized (bicubic, as ViTs are
    fine-tuned at a new resolution) to ``cfg``'s search grid; unchanged when it already fits."""
    key = "backbone.pos_embed_s"
    pos = state[key]
    grid = cfg.search_size // cfg.patch_size
    old = int(round(pos.shape[1] ** 0.5))
    if old == grid:
        return state
    img = pos.reshape(1, old, old, -1).permute(0, 3, 1, 2)
    img = F.interpolate(img, size=(grid, grid), mode="bicubic", align_corners=False)
    return {**state, key: img.permute(0, 2, 3, 1).reshape(1, grid * grid, -1)}


def keep_blocks(state: dict, keep: list[int]) -> dict:
    """A state dict with only the transformer blocks ``keep`` (their old indices, in order), renumbered
    0..len(keep)-1: depth pruning for a shallower student fine-tuned from a deeper model (MixFormerV2's
    own route from a deep teacher to its small trackers); everything else unchanged."""
    prefix = "backbone.blocks."
    depth = 1 + max(int(k[len(prefix):].split(".")[0]) for k in state if k.startswith(prefix))
    if sorted(set(keep)) != list(keep) or not keep or keep[0] < 0 or keep[-1] >= depth:
        raise ValueError(f"--keep-blocks: expected increasing block indices in 0..{depth - 1}, got {keep}")
    out = {}
    for k, v in state.items():
        if k.startswith(prefix):
            i, rest = k[len(prefix):].split(".", 1)
            if int(i) not in keep:
                continue
            k = f"{prefix}{keep.index(int(i))}.{rest}"
        out[k] = v
    return out


def run_config(saved: dict | None, search_size: int, keep: list[int] | None = None, mlp_hidden: int | None = None,
               continued: bool = False, keep_search_tokens: int | None = None, prune_after: int = 0) -> ModelConfig:
    """The model configuration of a run from the ``config`` its starting weights carry (None: a new model
    or an old file without one, :data:`CONFIG`): a continued run (``--init``) keeps it as it is; a new
    run or fine-tune gets this run's search size and, when asked, the pruned depth / MLP width and the
    search-token pruning (``keep_search_tokens``; None keeps the starting weights' own)."""
    base = ModelConfig(**saved) if saved else CONFIG
    if continued and saved:
        return base
    tokens = {} if keep_search_tokens is None else {"keep_search_tokens": keep_search_tokens, "prune_after": prune_after}
    return dataclasses.replace(base, search_size=search_size, depth=len(keep) if keep else base.depth,
                               mlp_ratio=mlp_hidden / base.embed_dim if mlp_hidden else base.mlp_ratio, **tokens)


def prune_mlp(state: dict, hidden: int) -> dict:
    """A state dict whose transformer MLPs keep only their ``hidden`` most important hidden units:
    width pruning for a faster student (MixFormerV2-S runs MLPs of the embedding width). A unit's
    importance is the norm of its fc1 row times the norm of its fc2 column (what it can carry from the
    input to the output); the kept units stay in their order, with their biases; everything else is
    unchanged. ValueError if ``hidden`` is not between 1 and the current width."""
    prefix = "backbone.blocks."
    out = dict(state)
    for key in [k for k in state if k.startswith(prefix) and k.endswith(".mlp.fc1.weight")]:
        block = key[: -len("fc1.weight")]
        w1, b1, w2 = state[key], state[block + "fc1.bias"], state[block + "fc2.weight"]
        if not 1 <= hidden <= w1.shape[0]:
            raise ValueError(f"--mlp-hidden: expected 1..{w1.shape[0]} (the starting model's MLP width), got {hidden}")
        importance = w1.norm(dim=1) * w2.norm(dim=0)
        keep = torch.sort(torch.topk(importance, hidden).indices).values
        out[key], out[block + "fc1.bias"], out[block + "fc2.weight"] = w1[keep], b1[keep], w2[:, keep]
    return out


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
    (B, Ns, D), under ``"search"`` in the returned dict (the tokens follow the 2 x Nt template tokens).
    With search-token pruning the later blocks no longer see the whole grid: then the tokens leaving
    block ``cfg.prune_after`` (before pruning) are taken."""
    cfg = model.cfg
    start, count = 2 * cfg.template_tokens, cfg.search_tokens
    tapped: dict[str, torch.Tensor] = {}

    def before(_block, args):
        tapped["search"] = args[0][:, start:start + count]

    def after(_block, _args, out):  # the block returns (tokens, attention) where it prunes
        tapped["search"] = (out[0] if isinstance(out, tuple) else out)[:, start:start + count]

    if cfg.keep_search_tokens:
        model.backbone.blocks[cfg.prune_after].register_forward_hook(after)
    else:
        model.backbone.blocks[-1].register_forward_pre_hook(before)
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


def box_distill_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """KL(teacher || student) of the four edge distributions: logits (N,4,bins) each -> scalar, mean over
    samples, summed over edges."""
    return F.kl_div(F.log_softmax(student, -1), F.log_softmax(teacher, -1), log_target=True,
                    reduction="none").sum(-1).sum(-1).mean()


def teacher_view(search: torch.Tensor, size: int) -> torch.Tensor:
    """The student's search crops (N,3,S,S) as the teacher sees them: resized (bilinear) to the teacher's
    own search size (N,3,size,size) when it differs. The crop covers the same region at both sizes and
    the edge distributions are in crop-relative bins, so the teacher's logits apply to the student as
    they are; unchanged (same tensor) when the sizes agree."""
    if search.shape[-1] == size:
        return search
    return F.interpolate(search, size=(size, size), mode="bilinear", align_corners=False, antialias=False)


def losses(model, aux, tapped, batch, teacher=None, distill_weight=0.0, distill_score=False):
    """Total loss and its parts. ``batch``: the 6 arrays of ``stack_samples`` and, with real video in
    the mix, a 7th: (N,) 1.0 where the sample is real video. With ``distill_score`` (needs the teacher)
    the score of synthetic samples is trained towards the teacher's probability instead of the label,
    so only the real samples move the score away from the starting model's calibration."""
    t, o, s, ltrb, valid, label = (torch.from_numpy(x) for x in batch[:6])
    real = torch.from_numpy(batch[6]) if len(batch) > 6 else torch.zeros_like(label)
    logits, score = model(t, o, s)
    box = decode_ltrb(logits)  # cx,cy,w,h
    pred = torch.stack([box[:, 0] - box[:, 2] / 2, box[:, 1] - box[:, 3] / 2,
                        box[:, 0] + box[:, 2] / 2, box[:, 1] + box[:, 3] / 2], -1)
    v = valid > 0
    n = v.sum().clamp(min=1)
    l_dfl = (dfl_loss(logits, ltrb) * valid).sum() / n
    l_giou = (giou_loss(pred, ltrb) * valid).sum() / n
    l_l1 = ((pred - ltrb).abs().mean(-1) * valid).sum() / n
    grid = model.cfg.search_size // model.cfg.patch_size
    l_aux = focal_heatmap_loss(aux(tapped["search"]), centre_heatmap(ltrb, valid, grid))
    parts, target = {}, label
    if teacher is not None:  # keep the boxes of the weights we started from, on every sample
        with torch.no_grad():
            t_logits, t_score = teacher(t, o, teacher_view(s, teacher.cfg.search_size))
        l_distill = box_distill_loss(logits, t_logits)
        parts["distill"] = l_distill.item()
        if distill_score:
            target = torch.where(real > 0, label, torch.sigmoid(t_score[:, 0]))
    l_score = F.binary_cross_entropy_with_logits(score[:, 0], target)
    total = l_dfl + 2 * l_giou + 5 * l_l1 + l_score + l_aux
    if teacher is not None:
        total = total + distill_weight * l_distill
    with torch.no_grad():
        acc = ((score[:, 0] > 0) == (label > 0.5)).float().mean()
    return total, {"dfl": l_dfl.item(), "giou": l_giou.item(), "l1": l_l1.item(), "score": l_score.item(),
                   "aux": l_aux.item(), "score_acc": acc.item(), "giou_metric": 1 - l_giou.item(), **parts}


REWARM_STEPS = 100  # after continuing from a weights release (fresh AdamW moments): ramp the lr up again


def lr_at(step: int, total: int, base: float, restart: int | None = None) -> float:
    """Linear warm-up over WARMUP_STEPS, then a cosine from ``base`` to 0 at ``total``; when continuing
    from weights without optimizer state at step ``restart``, a linear re-warm over REWARM_STEPS."""
    warm = min(1.0, (step + 1) / WARMUP_STEPS)
    if restart is not None:
        warm = min(warm, (step - restart + 1) / REWARM_STEPS)
    return base * warm * 0.5 * (1 + math.cos(math.pi * min(1.0, step / max(1, total))))


def param_groups(model: MixFormerV2, aux: AuxHead, lr: float) -> list[dict]:
    """Frozen stem blocks < STEM_TRAINABLE_FROM; later stem blocks at STEM_LR_SCALE x lr; the rest at lr."""
    stem = model.backbone.patch_embed.features
    tuned = []
    for i, block in enumerate(stem):
        for prm in block.parameters():
            prm.requires_grad = i >= STEM_TRAINABLE_FROM
            if prm.requires_grad:
                tuned.append(prm)
    ids = {id(q) for q in stem.parameters()}
    rest = [q for q in model.parameters() if id(q) not in ids] + list(aux.parameters())
    return [{"params": rest, "scale": 1.0}, {"params": tuned, "scale": STEM_LR_SCALE}]


def _git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                             cwd=Path(__file__).resolve().parent).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, cwd=Path(__file__).resolve().parent).stdout.strip()
        return out + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _versions() -> dict[str, str]:
    out = {"python": sys.version.split()[0]}
    for name in TRAINING_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def run_record(weights: Path, src: dict | None = None) -> dict | None:
    """The run record of a checkpoint or weights release: inside it (a release) or ``run.json``
    beside it (a run's checkpoint or snapshot); None when neither exists. ``src``: the already
    loaded checkpoint, if any."""
    src = torch.load(weights, map_location="cpu", weights_only=True) if src is None else src
    if "run" in src:
        return json.loads(src["run"]) if src["run"] else None
    beside = Path(weights).parent / "run.json"
    return json.loads(beside.read_text()) if beside.is_file() else None


def trained_search_factor(weights: Path) -> float:
    """The search crop factor a checkpoint or weights release was trained with (its run record,
    :func:`run_record`); runs recorded before the option existed were all trained at
    LEGACY_SEARCH_FACTOR."""
    record = run_record(weights)
    if record is None:
        raise SystemExit(f"{weights}: no run record (neither inside it nor run.json beside it): "
                         "its search crop factor is unknown")
    return float(record.get("search_factor", LEGACY_SEARCH_FACTOR))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--steps", type=int, help="total optimiser steps (cosine schedule over them)")
    p.add_argument("--minutes", type=float, help="instead of --steps: pick the step count that fits this budget")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--cache", type=Path, default=Path("runs/cache"),
                   help="folder holding the arcade wheel (pip download arcade==3.3.3 --no-deps -d FOLDER)")
    p.add_argument("--stem-init", type=Path, default=Path("../shared/data/peers/nanotrack_v3/nanotrackv3.pth"),
                   help="NanoTrack v3 training checkpoint (Apache-2.0) for the MobileNetV3 stem")
    p.add_argument("--init", type=Path, help="continue from a weights release (train/release.py: fp32 weights, "
                   "step, steps, seed, run record; the AdamW moments are not in it and start again from zero)")
    p.add_argument("--resume", action="store_true", help="continue <out>/last.pth.tar (same steps, seed, stream)")
    p.add_argument("--finetune", type=Path, help="start a new run (its own --steps, --lr, --seed, schedule) from the "
                   "weights of a finished one (last.pth.tar or a weights release); the stem is not re-initialised")
    p.add_argument("--real-share", type=float, default=0.0,
                   help="share of each batch drawn from real video (train/real_video.py: people in vtest.avi, "
                        "positives with boxes and look-alike negatives)")
    p.add_argument("--real-negatives", type=float, default=0.5, help="share of the real samples that are negatives")
    p.add_argument("--real-labels", choices=LABELS, default="detections",
                   help="boxes of the real-video targets: the detector's (MOG2) or the mean of the detector's and "
                        "the FEAR-XS teacher's (real_video.load_tracks)")
    p.add_argument("--score-teacher", choices=("none", "fear_xs"), default="none",
                   help="score label of the real-video samples: 1 / 0 (none) or the confidence of a peer tracker "
                        "(FEAR-XS, MIT) for the same template and search centre (sampling.render_real_sample)")
    p.add_argument("--tiny-rate", type=float, default=0.0,
                   help="share of synthetic samples with a 4-12 px target and a look-alike beside it (default 0)")
    p.add_argument("--gray-rate", type=float, help=f"share of grayscale samples (default {GRAY_RATE})")
    p.add_argument("--search-size", type=int, default=CONFIG.search_size,
                   help="search crop side in px (multiple of 16); with --finetune from another size the search "
                        "position embedding is resized (bicubic) to the new token grid")
    p.add_argument("--keep-blocks", type=lambda v: [int(x) for x in v.split(",")], metavar="I,J,...",
                   help="with --finetune: keep only these transformer blocks of the starting model (its block "
                        "indices), renumbered: a shallower, faster student (with --distill-boxes the unpruned "
                        "starting model is the teacher)")
    p.add_argument("--mlp-hidden", type=int, metavar="H",
                   help="with --finetune: keep only the H most important hidden units of every MLP of the starting "
                        f"model (width pruning: {CONFIG.mlp_hidden} in the default model; H / {CONFIG.embed_dim} must be "
                        "exact as a ratio, e.g. 192 or 288); with --distill-boxes the unpruned model is the teacher")
    p.add_argument("--keep-search-tokens", type=int, metavar="K",
                   help="search-token pruning: after block --prune-after only the K search tokens the prediction "
                        "tokens attend to most go on (0: off; default: the starting weights' own setting); with "
                        "--distill-boxes the starting model, as it was, is the teacher")
    p.add_argument("--prune-after", type=int, default=0, metavar="I", help="with --keep-search-tokens: the block (default 0)")
    p.add_argument("--search-factor", type=float, default=SEARCH_FACTOR,
                   help="search crop side over sqrt(w*h) of the previous box (default %(default)s, v4's; v5, the "
                        "shipped model, is trained at 3.0 with --search-size 160, the default preset's value for "
                        "the project's own models); a model trained with another factor needs a preset with the "
                        "same search_factor")
    p.add_argument("--peers", type=Path, default=Path("../shared/data/peers"),
                   help="peer trackers folder (FEAR-XS labels the real video once; cached under --cache)")
    p.add_argument("--distill-boxes", type=float, default=0.0, metavar="WEIGHT",
                   help="with --finetune: add WEIGHT x KL(start || student) of the edge distributions on every "
                        "sample (a frozen copy of the starting weights is the teacher), so the score can learn "
                        "from real negatives while the boxes stay those of the starting model")
    p.add_argument("--distill-score", action="store_true",
                   help="with --distill-boxes: the score of synthetic samples learns the teacher's probability, "
                        "the real-video samples their labels (only real video moves the calibration)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--save-every", type=float, default=5.0, help="minutes between checkpoints")
    p.add_argument("--snapshot-every", type=int, default=0, help="also keep step_<k>.pth.tar (weights) every k steps")
    args = p.parse_args(argv)
    if not 0.0 <= args.tiny_rate <= 1.0:
        p.error(f"--tiny-rate must be a share in [0, 1], got {args.tiny_rate}")
    if (args.steps is None) == (args.minutes is None) and not (args.resume or args.init):
        p.error("give exactly one of --steps and --minutes")
    if args.keep_blocks and not args.finetune:
        p.error("--keep-blocks needs --finetune (the blocks are picked from its weights)")
    if args.mlp_hidden is not None and not args.finetune:
        p.error("--mlp-hidden needs --finetune (the units are picked from its weights)")
    if args.mlp_hidden is not None and int(CONFIG.embed_dim * (args.mlp_hidden / CONFIG.embed_dim)) != args.mlp_hidden:
        p.error(f"--mlp-hidden {args.mlp_hidden}: not representable as a width ratio of {CONFIG.embed_dim}")
    if args.prune_after and args.keep_search_tokens is None:
        p.error("--prune-after needs --keep-search-tokens")
    if args.keep_search_tokens is not None and (args.resume or args.init):
        p.error("--keep-search-tokens: a continued run keeps its own configuration")
    if args.distill_boxes and not args.finetune and not args.resume:
        p.error("--distill-boxes needs --finetune (the starting weights are the teacher)")
    if args.distill_score and not args.distill_boxes:
        p.error("--distill-score needs --distill-boxes (the teacher)")
    if args.finetune and not args.finetune.is_file():
        p.error(f"--finetune: no file {args.finetune}")
    if args.distill_boxes and args.finetune:
        teacher_factor = trained_search_factor(args.finetune)
        if teacher_factor != args.search_factor:
            p.error(f"--distill-boxes: the teacher ({args.finetune}) was trained on crops of factor {teacher_factor}; "
                    f"it cannot label crops of --search-factor {args.search_factor}")
    if not 1.0 < args.search_factor <= 8.0:
        p.error(f"--search-factor must be in (1, 8], got {args.search_factor}")
    if args.score_teacher != "none" and args.real_share <= 0:
        p.error("--score-teacher labels real-video samples: it needs --real-share > 0")
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    last = args.out / "last.pth.tar"
    if args.resume and last.is_file():  # a resumed run keeps its own configuration
        cfg = ModelConfig(**torch.load(last, map_location="cpu", weights_only=True)["config"])
    else:  # a fine-tune or a continued run starts from the configuration of its weights
        starts = {f: torch.load(f, map_location="cpu", weights_only=True) for f in (args.init, args.finetune) if f}
        saved = starts[args.init or args.finetune].get("config") if starts else None
        try:
            cfg = run_config(saved, args.search_size, args.keep_blocks, args.mlp_hidden, continued=bool(args.init),
                             keep_search_tokens=args.keep_search_tokens, prune_after=args.prune_after)
        except ValueError as exc:
            p.error(str(exc))
    model = MixFormerV2(cfg)
    aux = AuxHead(cfg.embed_dim)
    tapped = tap_search_tokens(model)
    record_path = args.out / "run.json"
    ck, restart = None, None
    if args.resume:
        if not last.is_file():
            p.error(f"--resume: no checkpoint at {last}")
        ck = torch.load(last, map_location="cpu", weights_only=True)
        model.load_state_dict(ck["net"])
        aux.load_state_dict(ck["aux"])
        step, total, args.seed = ck["step"], ck["total_steps"], ck["seed"]
        if args.steps is not None and args.steps != total:
            p.error(f"--resume: the run has --steps {total}, not {args.steps}")
        record = json.loads(record_path.read_text())
        print(f"resumed at step {step} of {total}", flush=True)
    else:
        if args.finetune:
            src = starts[args.finetune]
            state = keep_blocks(src["net"], args.keep_blocks) if args.keep_blocks else src["net"]
            if args.mlp_hidden is not None:
                state = prune_mlp(state, args.mlp_hidden)
            model.load_state_dict(resize_search_pos_embed(state, cfg))
            if "aux" in src:
                aux.load_state_dict(src["aux"])
            else:  # a release of a snapshot: the training-only heatmap head was not kept
                print("the auxiliary heatmap head starts from its initialisation (not in the source)", flush=True)
            print(f"fine-tuning the weights of {args.finetune} (step {src['step']})", flush=True)
        else:
            init_weights(model)
            print("stem weights loaded:", load_nanotrack_features(model.backbone.patch_embed, str(args.stem_init)))
        step, total = 0, args.steps or 0
        record = {"command": " ".join(["python", "train/train.py", *(argv if argv is not None else sys.argv[1:])]),
                  "seed": args.seed, "batch": args.batch, "lr": args.lr, "config": dataclasses.asdict(cfg),
                  "stem_init": str(args.stem_init), "commit": _git_commit(), "versions": _versions(),
                  "data_sources": DATA_SOURCES, "real_share": args.real_share,
                  "real_negatives": args.real_negatives, "real_labels": args.real_labels,
                  "score_teacher": args.score_teacher, "search_factor": args.search_factor,
                  "distill_boxes": args.distill_boxes, "keep_blocks": args.keep_blocks,
                  "mlp_hidden": args.mlp_hidden,
                  "distill_score": args.distill_score,
                  "gray_rate": GRAY_RATE if args.gray_rate is None else args.gray_rate,
                  "tiny_rate": args.tiny_rate, "sessions": []}
        if args.real_share > 0:
            from real_video import DATA_SOURCE
            record["data_sources"] = [*DATA_SOURCES, DATA_SOURCE]
        if args.finetune:
            record["finetuned_from"] = {"weights": str(args.finetune), "step": src["step"],
                                        "run": run_record(args.finetune, src)}
        if args.init:  # a weights release: same run, same data stream, fresh optimizer moments
            src = starts[args.init]
            if "aux" not in src:
                p.error(f"--init: {args.init} holds the network only (a released snapshot); start a new run "
                        "from it with --finetune")
            model.load_state_dict(src["net"])
            aux.load_state_dict(src["aux"])
            step, total, args.seed = src["step"], src["total_steps"], src["seed"]
            if args.steps is not None and args.steps != total:
                p.error(f"--init: the release belongs to a run with --steps {total}, not {args.steps}")
            record = json.loads(src["run"])
            record["sessions"].append({"continued_from": str(args.init), "at_step": step,
                                       "optimizer_state": "AdamW moments reset (not in the release); "
                                                          f"lr re-warmed over {REWARM_STEPS} steps"})
            restart = step
    teacher, distill = None, record.get("distill_boxes", 0.0)  # a resumed run keeps its own settings
    distill_score = record.get("distill_score", False)
    if distill:
        # the teacher keeps its own search size (it sees the student's crops resized to it, teacher_view)
        src = torch.load(record["finetuned_from"]["weights"], map_location="cpu", weights_only=True)
        teacher = MixFormerV2(ModelConfig(**src["config"]) if "config" in src else CONFIG)
        teacher.load_state_dict(src["net"])
        teacher.eval().requires_grad_(False)
    groups = param_groups(model, aux, args.lr)
    params = [q for g in groups for q in g["params"]]
    opt = torch.optim.AdamW(groups, lr=args.lr, weight_decay=0.05)
    if ck is not None:
        opt.load_state_dict(ck["opt"])
    ctx = mp.get_context("spawn")
    queue: mp.Queue = ctx.Queue(maxsize=6)
    real_share = record.get("real_share", 0.0)  # a resumed run keeps its own mix
    worker = ctx.Process(target=_producer, args=(queue, str(args.cache), args.seed, step, args.batch,
                                                 cfg.template_size, cfg.search_size, real_share,
                                                 record.get("real_negatives", 0.5), str(args.peers),
                                                 record.get("gray_rate"), record.get("real_labels", "detections"),
                                                 record.get("score_teacher", "none"),
                                                 record.get("search_factor", LEGACY_SEARCH_FACTOR),
                                                 record.get("tiny_rate", 0.0)),
                         daemon=True)
    worker.start()
    model.train()
    session = {"commit": _git_commit(), "from_step": step, "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    record["sessions"].append(session)
    t0, last_save, hist, tail = time.time(), time.time(), [], []
    if not total:  # --minutes: time 30 steps at the warm-up rate, then fix the step count
        probe = time.time()
        for _ in range(30):
            step = _train_step(model, aux, tapped, opt, params, queue, worker, step, 10 ** 9, args.lr, hist,
                               restart, teacher, distill, distill_score)
        total = int(args.minutes * 60 / ((time.time() - probe) / 30))
        print(f"--minutes {args.minutes}: {total} steps", flush=True)
    record["steps"] = total
    while step < total:
        step = _train_step(model, aux, tapped, opt, params, queue, worker, step, total, args.lr, hist, restart,
                           teacher, distill, distill_score)
        if step % 50 == 0:
            mean = {k: float(np.mean([h[k] for h in hist])) for k in hist[0]}
            tail = (tail + [mean])[-4:]
            hist = []
            print(f"step {step}/{total} {(time.time() - t0) / 60:.1f}min lr {lr_at(step, total, args.lr):.2e} "
                  + " ".join(f"{k} {v:.3f}" for k, v in mean.items()), flush=True)
        if args.snapshot_every and step % args.snapshot_every == 0:
            torch.save({"net": model.state_dict(), "aux": aux.state_dict(), "config": dataclasses.asdict(cfg),
                        "step": step, "total_steps": total, "seed": args.seed}, args.out / f"step_{step}.pth.tar")
        if time.time() - last_save > 60 * args.save_every:
            _save(model, aux, opt, step, total, args.seed, last)
            _write_record(record, session, step, tail, t0, record_path)
            last_save = time.time()
    _save(model, aux, opt, step, total, args.seed, last)
    _write_record(record, session, step, tail, t0, record_path)
    worker.terminate()
    print(f"done: step {step} of {total} in {(time.time() - t0) / 60:.1f} min -> {last}")
    return 0


def _train_step(model, aux, tapped, opt, params, queue, worker, step, total, base_lr, hist, restart=None,
                teacher=None, distill=0.0, distill_score=False) -> int:
    got, batch = get_while_producer_lives(queue, worker)
    if got != step:
        raise RuntimeError(f"data stream out of order: batch of step {got} at step {step}")
    lr = lr_at(step, total, base_lr, restart)
    for g in opt.param_groups:
        g["lr"] = lr * g["scale"]
    total_loss, parts = losses(model, aux, tapped, batch, teacher, distill, distill_score)
    opt.zero_grad()
    total_loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()
    hist.append(parts)
    return step + 1


def _write_record(record: dict, session: dict, step: int, tail: list, t0: float, path: Path) -> None:
    session.update(to_step=step, minutes=round((time.time() - t0) / 60, 1))  # the record's last session
    if tail:
        record["final_losses"] = {k: round(float(np.mean([t[k] for t in tail])), 4) for k in tail[0]}
        record["final_losses_steps"] = f"mean of the last {50 * len(tail)} steps before step {step}"
    record["step"] = step
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=1))
    tmp.replace(path)


def _save(model, aux, opt, step, total, seed, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save({"net": model.state_dict(), "config": dataclasses.asdict(model.cfg), "step": step, "total_steps": total,
                "seed": seed, "opt": opt.state_dict(), "aux": aux.state_dict()}, tmp)
    tmp.replace(path)


if __name__ == "__main__":
    sys.exit(main())
