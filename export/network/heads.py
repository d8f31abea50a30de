"""Distribution box head and score head (reference facts §2.5-2.6)."""
from __future__ import annotations

import torch
from torch import Tensor, nn

# token i of the box head predicts the left, right, top, bottom edge; the public `logits` output is
# reordered to l, t, r, b
LTRB_FROM_TOKENS = (0, 2, 1, 3)


class BoxHead(nn.Module):
    """Shared per-token MLP: Linear -> LayerNorm -> ReLU -> Linear(bins) -> LayerNorm."""

    def __init__(self, dim: int, bins: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList([
            nn.Sequential(nn.Linear(dim, dim), nn.LayerNorm(dim), nn.ReLU()),
            nn.Sequential(nn.Linear(dim, bins), nn.LayerNorm(bins)),
        ])

    def forward(self, tokens: Tensor) -> Tensor:
        """tokens (B,4,D) in token order l, r, t, b -> logits (B,4,bins) in order l, t, r, b."""
        x = tokens
        for layer in self.layers:
            x = layer(x)
        return x[:, list(LTRB_FROM_TOKENS)]


class ScoreHead(nn.Module):
    """Per-token Linear -> ReLU -> Linear(1), then the mean over tokens: one logit."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.Sequential(nn.Linear(dim, dim), nn.ReLU()), nn.Linear(dim, 1))

    def forward(self, tokens: Tensor) -> Tensor:
        """tokens (B,4,D) -> score logit (B,1)."""
        return self.layers(tokens).mean(dim=1)


def decode_ltrb(logits: Tensor) -> Tensor:
    """Edge logits (B,4,bins), rows l,t,r,b -> normalised (cx,cy,w,h) (B,4).

    Expectation over bin positions k/bins (k = 0..bins-1), i.e. k*stride / search_size.
    """
    bins = logits.shape[-1]
    pos = torch.arange(bins, dtype=logits.dtype, device=logits.device) / bins
    l, t, r, b = (torch.softmax(logits, dim=-1) * pos).sum(-1).unbind(-1)
    return torch.stack([(l + r) / 2, (t + b) / 2, r - l, b - t], dim=-1)
