"""MixFormerV2 network (reference facts §2), stateless, with three entry points.

- ``forward(template, online_template, search)``: the reference computation in one pass.
- ``encode_templates(template, online_template)``: per-layer template keys/values,
  (B, depth, 2, heads, 2*Nt, head_dim) — they never depend on the search region.
- ``search_step(search, template_kv)``: search + prediction tokens against those
  keys/values; the last block runs queries/projection/MLP for the prediction tokens only.

With ``cfg.keep_search_tokens`` (not in the reference) every entry point drops, after block
``cfg.prune_after``, all but that many search tokens: those the prediction tokens attended to most
in that block (``vit.keep_top_tokens``); the later blocks run on fewer tokens.

All three return ``(logits, score_logit)``: logits (B,4,bins) rows l,t,r,b before
softmax, score_logit (B,1).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from mixformerv2_cpu.metadata import RAW_INPUT, REFERENCE_INPUT

from .config import ModelConfig
from .heads import BoxHead, ScoreHead
from .stem import MobileNetStem
from .vit import Block, PatchEmbed, keep_top_tokens


class Backbone(nn.Module):
    """Parameter container with the reference's key names (``backbone.*``)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        d = cfg.embed_dim
        if cfg.stem != "patch":
            self.patch_embed = MobileNetStem(d, cfg.stem)
        else:
            self.patch_embed = PatchEmbed(cfg.patch_size, cfg.in_chans, d)
        self.pos_embed_t = nn.Parameter(torch.zeros(1, cfg.template_tokens, d))
        self.pos_embed_s = nn.Parameter(torch.zeros(1, cfg.search_tokens, d))
        self.reg_tokens = nn.Parameter(torch.zeros(1, cfg.num_pred_tokens, d))
        self.pos_embed_reg = nn.Parameter(torch.zeros(1, cfg.num_pred_tokens, d))
        self.blocks = nn.ModuleList(Block(d, cfg.num_heads, cfg.mlp_hidden) for _ in range(cfg.depth))

    def template_tokens(self, template: Tensor, online_template: Tensor) -> Tensor:
        """Two (B,3,T,T) crops -> (B, 2*Nt, D) tokens with position embedding."""
        t = self.patch_embed(template) + self.pos_embed_t
        o = self.patch_embed(online_template) + self.pos_embed_t
        return torch.cat([t, o], dim=1)

    def search_tokens(self, search: Tensor) -> Tensor:
        """(B,3,S,S) crop -> (B, Ns + P, D): search tokens then prediction tokens."""
        s = self.patch_embed(search) + self.pos_embed_s
        reg = (self.reg_tokens + self.pos_embed_reg).expand(s.shape[0], -1, -1)
        return torch.cat([s, reg], dim=1)


class MixFormerV2(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.backbone = Backbone(cfg)
        self.box_head = BoxHead(cfg.embed_dim, cfg.bins)
        self.score_head = ScoreHead(cfg.embed_dim)

    @property
    def input_format(self) -> str:
        """What the image inputs hold (``metadata.INPUT_FORMATS``): "rgb_nchw" (normalised RGB, the
        reference and training layout) unless :meth:`take_raw_input` switched a convolutional stem."""
        return getattr(self.backbone.patch_embed, "input_format", REFERENCE_INPUT)

    def take_raw_input(self) -> bool:
        """Switch a convolutional stem to raw BGR (B,H,W,3) inputs (what the exporter writes for the
        project's own models); True if switched, False for the reference patch embedding."""
        stem = self.backbone.patch_embed
        if isinstance(stem, MobileNetStem):
            stem.input_format = RAW_INPUT
            return True
        return False

    def _heads(self, pred_tokens: Tensor) -> tuple[Tensor, Tensor]:
        return self.box_head(pred_tokens), self.score_head(pred_tokens)

    def forward(self, template: Tensor, online_template: Tensor, search: Tensor) -> tuple[Tensor, Tensor]:
        return self._heads(self.pred_tokens(template, online_template, search))

    def pred_tokens(self, template: Tensor, online_template: Tensor, search: Tensor) -> Tensor:
        """The prediction tokens (B, num_pred_tokens, D) that both heads read."""
        bb = self.backbone
        cfg = self.cfg
        t = bb.template_tokens(template, online_template)
        nt, n_pred = t.shape[1], cfg.num_pred_tokens
        x = torch.cat([t, bb.search_tokens(search)], dim=1)
        for i, blk in enumerate(bb.blocks):
            if cfg.keep_search_tokens and i == cfg.prune_after:
                x, importance = blk(x, nt, n_pred)
                x = keep_top_tokens(x, importance[:, nt:-n_pred], nt, cfg.keep_search_tokens)
            else:
                x = blk(x, nt)
        return x[:, -n_pred:]

    def encode_templates(self, template: Tensor, online_template: Tensor) -> Tensor:
        t = self.backbone.template_tokens(template, online_template)
        *blocks, last = self.backbone.blocks
        kvs = []
        for blk in blocks:
            t, k, v = blk.forward_templates(t)
            kvs.append(torch.stack([k, v], dim=1))
        # the last block's template outputs are never used: its keys/values are all we need
        kvs.append(torch.stack(last.attn.kv(last.norm1(t)), dim=1))
        return torch.stack(kvs, dim=1)

    def search_step(self, search: Tensor, template_kv: Tensor) -> tuple[Tensor, Tensor]:
        cfg = self.cfg
        n_pred = cfg.num_pred_tokens
        x = self.backbone.search_tokens(search)
        blocks = self.backbone.blocks
        for i, blk in enumerate(blocks[:-1]):
            if cfg.keep_search_tokens and i == cfg.prune_after:
                x, importance = blk.forward_search(x, template_kv[:, i, 0], template_kv[:, i, 1], n_pred)
                x = keep_top_tokens(x, importance[:, :-n_pred], 0, cfg.keep_search_tokens)
            else:
                x = blk.forward_search(x, template_kv[:, i, 0], template_kv[:, i, 1])
        last = len(blocks) - 1
        x = blocks[last].forward_last(x, template_kv[:, last, 0], template_kv[:, last, 1], n_pred)
        return self._heads(x)
