"""Transformer blocks with MixFormerV2's asymmetric mixed attention (reference facts §2).

All modules are stateless: nothing computed in a forward pass is kept in the module.
Token layout inside the backbone: ``[templates (Nt2) | search (Ns) | prediction tokens (P)]``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class PatchEmbed(nn.Module):
    """(B,3,H,W) image -> (B, H/p * W/p, D) tokens, row-major."""

    def __init__(self, patch_size: int, in_chans: int, embed_dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


def _attend(q: Tensor, k: Tensor, v: Tensor, scale: float) -> Tensor:
    """Softmax attention. q (B,H,Nq,hd), k/v (B,H,Nk,hd) -> (B,Nq,H*hd)."""
    attn = torch.softmax((q * scale) @ k.transpose(-2, -1), dim=-1)
    out = attn @ v
    return out.transpose(1, 2).flatten(2)


def prediction_attention(q: Tensor, k: Tensor, scale: float, n_pred: int) -> Tensor:
    """How much the prediction tokens attend to each key: q (B,H,Nq,hd) whose last ``n_pred`` queries are
    the prediction tokens, k (B,H,Nk,hd) -> (B,Nk), their softmax attention averaged over heads and
    prediction tokens (each row sums to 1)."""
    attn = torch.softmax((q[:, :, -n_pred:] * scale) @ k.transpose(-2, -1), dim=-1)
    return attn.mean(dim=(1, 2))


def keep_top_tokens(x: Tensor, importance: Tensor, start: int, keep: int) -> Tensor:
    """Search-token pruning (OSTrack's candidate elimination): x (B,N,D), importance (B,M) of the M tokens
    x[:, start:start+M] -> (B, N-M+keep, D): of those M only the ``keep`` most important, highest first,
    the tokens before and after them unchanged. Exact for attention (order-free, positions are
    already in the tokens) apart from what the dropped tokens contributed."""
    m = importance.shape[1]
    idx = torch.topk(importance, keep, dim=1).indices.unsqueeze(-1).expand(-1, -1, x.shape[-1])
    kept = torch.gather(x[:, start:start + m], 1, idx)
    return torch.cat([x[:, :start], kept, x[:, start + m:]], dim=1)


class Attention(nn.Module):
    """Fused-qkv multi-head attention with the template/search asymmetry."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim ** -0.5
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def split_qkv(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(B,N,D) -> q, k, v each (B,H,N,hd)."""
        b, n, _ = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        return qkv[0], qkv[1], qkv[2]

    def kv(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Keys and values only, (B,H,N,hd) each (the query third of qkv is never computed)."""
        b, n, d = x.shape
        w_kv = self.qkv.weight[d:]
        b_kv = self.qkv.bias[d:]
        kv = F.linear(x, w_kv, b_kv).reshape(b, n, 2, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        return kv[0], kv[1]

    def q(self, x: Tensor) -> Tensor:
        """Queries only, (B,H,N,hd)."""
        b, n, d = x.shape
        q = F.linear(x, self.qkv.weight[:d], self.qkv.bias[:d])
        return q.reshape(b, n, self.num_heads, self.head_dim).transpose(1, 2)

    def forward(self, x: Tensor, n_template: int, n_pred: int = 0) -> Tensor | tuple[Tensor, Tensor]:
        """Full mixed attention over x (B,N,D): the first n_template queries see templates only. With
        ``n_pred`` > 0 also returns :func:`prediction_attention` of the last n_pred tokens (B,N)."""
        q, k, v = self.split_qkv(x)
        t = n_template
        out_t = _attend(q[:, :, :t], k[:, :, :t], v[:, :, :t], self.scale)
        out_s = _attend(q[:, :, t:], k, v, self.scale)
        out = self.proj(torch.cat([out_t, out_s], dim=1))
        return (out, prediction_attention(q, k, self.scale, n_pred)) if n_pred else out


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(norm1(x)), then x + mlp(norm2(x))."""

    def __init__(self, dim: int, num_heads: int, mlp_hidden: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, mlp_hidden)

    def _finish(self, x: Tensor, attn_out: Tensor) -> Tensor:
        x = x + self.attn.proj(attn_out)
        return x + self.mlp(self.norm2(x))

    def forward(self, x: Tensor, n_template: int, n_pred: int = 0) -> Tensor | tuple[Tensor, Tensor]:
        """x (B,N,D) -> (B,N,D); with ``n_pred`` > 0 also the last n_pred tokens' attention to each token, (B,N)."""
        if not n_pred:
            x = x + self.attn(self.norm1(x), n_template)
            return x + self.mlp(self.norm2(x))
        out, importance = self.attn(self.norm1(x), n_template, n_pred)
        x = x + out
        return x + self.mlp(self.norm2(x)), importance

    def forward_templates(self, t: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Template tokens (B,Nt2,D) -> (new tokens, k, v); k/v (B,H,Nt2,hd) of this layer."""
        q, k, v = self.attn.split_qkv(self.norm1(t))
        return self._finish(t, _attend(q, k, v, self.attn.scale)), k, v

    def forward_search(self, x: Tensor, k_t: Tensor, v_t: Tensor, n_pred: int = 0) -> Tensor | tuple[Tensor, Tensor]:
        """Search + prediction tokens (B,N,D) against cached template k_t/v_t (B,H,Nt2,hd). With ``n_pred``
        > 0 also returns the last n_pred tokens' attention to each of x's tokens, (B,N) (its template
        part is left out: the same values as :meth:`forward` gives for x's tokens)."""
        q, k, v = self.attn.split_qkv(self.norm1(x))
        k = torch.cat([k_t, k], dim=2)
        v = torch.cat([v_t, v], dim=2)
        out = self._finish(x, _attend(q, k, v, self.attn.scale))
        if not n_pred:
            return out
        return out, prediction_attention(q, k, self.attn.scale, n_pred)[:, k_t.shape[2]:]

    def forward_last(self, x: Tensor, k_t: Tensor, v_t: Tensor, n_out: int) -> Tensor:
        """Like forward_search, but only the last n_out tokens get queries, projection and MLP.

        Exact when only those tokens' outputs are used: every token still contributes
        keys and values. Returns (B, n_out, D).
        """
        h = self.norm1(x)
        k, v = self.attn.kv(h)
        k = torch.cat([k_t, k], dim=2)
        v = torch.cat([v_t, v], dim=2)
        q = self.attn.q(h[:, -n_out:])
        return self._finish(x[:, -n_out:], _attend(q, k, v, self.attn.scale))
