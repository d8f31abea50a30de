"""Deterministic random weights in the official MixFormerV2 checkpoint layout, from a seed.

The tests' own generator, so that the suite runs in a clone without ``../shared``. It draws the
same numbers in the same order as ``../shared/reference/make_ckpt.py`` (numpy's default_rng), so
for the same seed it writes the very checkpoint the shared reference outputs were computed for;
``tests/test_checkpoint.py::test_own_generator_matches_the_shared_one`` checks that when
``../shared`` is present.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

# variant -> depth, MLP hidden width, template grid, search grid (reference facts §1)
VARIANTS = {"small": (4, 768, 7, 14), "base": (8, 3072, 8, 18)}
SCORE_OFFSET = {"small": 2.3, "base": 0.0}  # centres the score logits near 0
DIM, BINS = 768, 96


def key_shapes(variant: str) -> dict[str, tuple[int, ...]]:
    """Key -> shape of the official checkpoint's ``net`` state dict, in file order."""
    depth, hidden, tg, sg = VARIANTS[variant]
    s: dict[str, tuple[int, ...]] = {
        "backbone.pos_embed_s": (1, sg * sg, DIM), "backbone.pos_embed_t": (1, tg * tg, DIM),
        "backbone.reg_tokens": (1, 4, DIM), "backbone.pos_embed_reg": (1, 4, DIM),
        "backbone.patch_embed.proj.weight": (DIM, 3, 16, 16), "backbone.patch_embed.proj.bias": (DIM,),
    }
    for i in range(depth):
        p = f"backbone.blocks.{i}."
        s.update({p + "norm1.weight": (DIM,), p + "norm1.bias": (DIM,),
                  p + "attn.qkv.weight": (3 * DIM, DIM), p + "attn.qkv.bias": (3 * DIM,),
                  p + "attn.proj.weight": (DIM, DIM), p + "attn.proj.bias": (DIM,),
                  p + "norm2.weight": (DIM,), p + "norm2.bias": (DIM,),
                  p + "mlp.fc1.weight": (hidden, DIM), p + "mlp.fc1.bias": (hidden,),
                  p + "mlp.fc2.weight": (DIM, hidden), p + "mlp.fc2.bias": (DIM,)})
    s.update({"box_head.layers.0.0.weight": (DIM, DIM), "box_head.layers.0.0.bias": (DIM,),
              "box_head.layers.0.1.weight": (DIM,), "box_head.layers.0.1.bias": (DIM,),
              "box_head.layers.1.0.weight": (BINS, DIM), "box_head.layers.1.0.bias": (BINS,),
              "box_head.layers.1.1.weight": (BINS,), "box_head.layers.1.1.bias": (BINS,),
              "score_head.layers.0.0.weight": (DIM, DIM), "score_head.layers.0.0.bias": (DIM,),
              "score_head.layers.1.weight": (1, DIM), "score_head.layers.1.bias": (1,)})
    return s


def random_state_dict(variant: str, seed: int) -> dict[str, np.ndarray]:
    """Norm gains ~1 (box-head gain x6: sharp bins), biases 0.02 sigma, embeddings 0.5 sigma, weights
    0.02 sigma; the score head's last layer x10 with an offset so scores straddle the 0.5 gate."""
    rng = np.random.default_rng(seed)
    out = {}
    for key, shape in key_shapes(variant).items():
        is_norm = ".norm" in key or "layers.0.1." in key or "layers.1.1." in key
        if is_norm and key.endswith("weight"):
            v = 1.0 + 0.1 * rng.standard_normal(shape)
            if key.startswith("box_head.layers.1.1"):
                v = v * 6.0
        elif key.endswith("bias"):
            v = 0.02 * rng.standard_normal(shape)
        elif "pos_embed" in key or "reg_tokens" in key:
            v = 0.5 * rng.standard_normal(shape)
        else:
            v = 0.02 * rng.standard_normal(shape)
        if key == "score_head.layers.1.weight":
            v = v * 10.0
        if key == "score_head.layers.1.bias":
            v = v + SCORE_OFFSET[variant]
        out[key] = np.ascontiguousarray(v, dtype=np.float32)
    return out


def write_checkpoint(variant: str, out: Path, seed: int) -> Path:
    """``{'net': state_dict}`` as the released ``mixformerv2_*.pth.tar`` files hold it."""
    import torch

    torch.save({"net": {k: torch.from_numpy(v) for k, v in random_state_dict(variant, seed).items()}}, out)
    return out
