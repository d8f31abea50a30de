"""GMACs of the three graphs of a model config (torch FlopCounterMode: matmuls + convs; MACs = FLOPs / 2).

    python train/macs.py            # the default model's config
    python train/macs.py small      # a released config
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))

from mixformerv2_export.network import CONFIGS, MixFormerV2  # noqa: E402


def gmacs(cfg) -> dict[str, float]:
    model = MixFormerV2(cfg).eval()
    t = torch.zeros(1, 3, cfg.template_size, cfg.template_size)
    s = torch.zeros(1, 3, cfg.search_size, cfg.search_size)
    out = {}
    with torch.no_grad():
        kv = model.encode_templates(t, t)
        for name, fn in (("full", lambda: model(t, t, s)), ("template", lambda: model.encode_templates(t, t)),
                         ("search_step", lambda: model.search_step(s, kv))):
            with FlopCounterMode(display=False) as fc:
                fn()
            out[name] = fc.get_total_flops() / 2e9
    out["params_M"] = sum(p.numel() for p in model.parameters()) / 1e6
    return out


if __name__ == "__main__":
    if len(sys.argv) > 1:
        cfg = CONFIGS[sys.argv[1]]
    else:
        from train import CONFIG as cfg  # noqa: N811
    print({k: round(v, 3) for k, v in gmacs(cfg).items()})
