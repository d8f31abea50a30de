"""The exported graphs: thin wrappers that fix each graph's inputs, outputs and names."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from mixformerv2_cpu.metadata import REFERENCE_INPUT, ModelMetadata

from .network import INPUT_MEAN, INPUT_STD, MixFormerV2, decode_ltrb

# role -> (input names, output names); the runtime relies on these names
SIGNATURES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "full": (("template", "online_template", "search"), ("boxes", "score", "logits")),
    "template": (("template", "online_template"), ("template_kv",)),
    "search": (("search", "template_kv"), ("logits", "score")),
}


class FullGraph(nn.Module):
    """template, online_template (B,3,T,T), search (B,3,S,S) (or (B,T,T,3) ... with raw input) -> boxes (B,4) normalised cx,cy,w,h,
    score (B,) sigmoid probability, logits (B,4,bins) rows l,t,r,b."""

    def __init__(self, model: MixFormerV2) -> None:
        super().__init__()
        self.model = model

    def forward(self, template: Tensor, online_template: Tensor, search: Tensor):
        logits, score_logit = self.model(template, online_template, search)
        return decode_ltrb(logits), torch.sigmoid(score_logit[:, 0]), logits


class TemplateGraph(nn.Module):
    """template, online_template (B,3,T,T) -> template_kv (B, depth, 2, heads, 2*Nt, head_dim)."""

    def __init__(self, model: MixFormerV2) -> None:
        super().__init__()
        self.model = model

    def forward(self, template: Tensor, online_template: Tensor) -> Tensor:
        return self.model.encode_templates(template, online_template)


class SearchGraph(nn.Module):
    """search (B,3,S,S), template_kv -> logits (B,4,bins) rows l,t,r,b, score (B,) probability."""

    def __init__(self, model: MixFormerV2) -> None:
        super().__init__()
        self.model = model

    def forward(self, search: Tensor, template_kv: Tensor):
        logits, score_logit = self.model.search_step(search, template_kv)
        return logits, torch.sigmoid(score_logit[:, 0])


WRAPPERS = {"full": FullGraph, "template": TemplateGraph, "search": SearchGraph}


def example_inputs(model: MixFormerV2, role: str, batch: int = 1, seed: int = 0) -> dict[str, Tensor]:
    """Fixed pseudo-random inputs for a graph in the model's input format (used for tracing and
    verification): normalised values (standard normal) for "rgb_nchw", pixel values 0..255 for raw input."""
    cfg = model.cfg
    g = torch.Generator().manual_seed(seed)
    raw = model.input_format != REFERENCE_INPUT

    def image(size: int) -> Tensor:
        if raw:
            return torch.rand(batch, size, size, 3, generator=g) * 255
        return torch.randn(batch, 3, size, size, generator=g)

    t, o, s = image(cfg.template_size), image(cfg.template_size), image(cfg.search_size)
    if role == "full":
        return {"template": t, "online_template": o, "search": s}
    if role == "template":
        return {"template": t, "online_template": o}
    with torch.no_grad():
        kv = model.encode_templates(t, o)
    return {"search": s, "template_kv": kv}


def run_torch(model: MixFormerV2, role: str, feeds: dict[str, Tensor]) -> dict[str, "torch.Tensor"]:
    """Outputs of the PyTorch graph for ``role`` as a name -> tensor dict."""
    inputs, outputs = SIGNATURES[role]
    with torch.no_grad():
        out = WRAPPERS[role](model)(*(feeds[n] for n in inputs))
    out = out if isinstance(out, tuple) else (out,)
    return dict(zip(outputs, out))


def graph_metadata(model: MixFormerV2, variant: str, role: str, precision: str = "fp32",
                   box_scale: float = 1.0) -> dict[str, str]:
    """The metadata strings written into graph file ``role`` of ``model`` (``box_scale``: see ModelMetadata)."""
    cfg = model.cfg
    return ModelMetadata(role=role, variant=variant, template_size=cfg.template_size, search_size=cfg.search_size,
                         bins=cfg.bins, embed_dim=cfg.embed_dim, depth=cfg.depth, num_heads=cfg.num_heads,
                         template_tokens=cfg.template_tokens, mean=INPUT_MEAN, std=INPUT_STD,
                         precision=precision, box_scale=float(box_scale), input_format=model.input_format,
                         keep_search_tokens=cfg.keep_search_tokens, prune_after=cfg.prune_after).to_strings()
