"""Parity check of exported files against the PyTorch model on fixed inputs."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from mixformerv2_cpu.backends import load_graph

from .graphs import example_inputs, run_torch
from .network import MixFormerV2

def max_abs_diffs(model: MixFormerV2, role: str, path: Path, backend: str,
                  batches: tuple[int, ...] = (1, 2)) -> dict[str, float]:
    """Max |exported - torch| per output of graph ``role`` in ``path`` run by ``backend``, over fixed
    inputs of each batch size."""
    graph = load_graph(backend, path)
    diffs: dict[str, float] = {}
    for batch in batches:
        feeds = example_inputs(model, role, batch=batch, seed=batch)
        ref = run_torch(model, role, feeds)
        got = graph({k: v.numpy() for k, v in feeds.items()})
        for name, want in ref.items():
            d = float(np.abs(got[name].reshape(want.shape) - want.numpy()).max())
            diffs[name] = max(diffs.get(name, 0.0), d)
    return diffs
