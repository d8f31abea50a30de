"""Search-token pruning (``ModelConfig.keep_search_tokens``): hand-checked selection, cached path equal to
the full forward, per-row selection in a batch, configuration checks, export metadata and parity."""
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from mixformerv2_cpu.backends import load_graph
from mixformerv2_cpu.manifest import read_manifest
from mixformerv2_cpu.registry import find_manifest
from mixformerv2_export.checkpoint import variant_name
from mixformerv2_export.exporter import export_model
from mixformerv2_export.network import CONFIGS, MixFormerV2, ModelConfig
from mixformerv2_export.network.vit import keep_top_tokens, prediction_attention

# 8x8 search grid (64 tokens), 4x4 template grid; keep 40 search tokens after block 0
TINY = ModelConfig(embed_dim=64, depth=3, num_heads=2, mlp_ratio=2.0, template_size=64, search_size=128, bins=16,
                   keep_search_tokens=40, prune_after=0)


def _tiny_model(cfg: ModelConfig = TINY) -> MixFormerV2:
    torch.manual_seed(0)
    model = MixFormerV2(cfg).eval()
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.2)
    return model


def test_keep_top_tokens_keeps_the_most_important_in_order_and_the_rest_in_place():
    # tokens 0 (template) | 1..4 (search) | 5 (prediction); token i holds [i, -i]
    x = torch.tensor([[[float(i), -float(i)] for i in range(6)]])
    importance = torch.tensor([[0.1, 0.4, 0.2, 0.3]])  # of tokens 1, 2, 3, 4
    out = keep_top_tokens(x, importance, start=1, keep=2)
    assert out[0, :, 0].tolist() == [0.0, 2.0, 4.0, 5.0]  # template, token 2 (0.4), token 4 (0.3), prediction
    assert out[0, :, 1].tolist() == [-0.0, -2.0, -4.0, -5.0]


def test_keep_top_tokens_selects_per_batch_row():
    x = torch.arange(2 * 3 * 1, dtype=torch.float32).reshape(2, 3, 1)  # rows [0,1,2] and [3,4,5]
    importance = torch.tensor([[0.9, 0.05, 0.05], [0.1, 0.2, 0.7]])
    assert keep_top_tokens(x, importance, start=0, keep=1)[:, :, 0].tolist() == [[0.0], [5.0]]


def test_prediction_attention_is_the_mean_softmax_row_of_the_prediction_queries():
    rng = np.random.default_rng(1)
    q = rng.standard_normal((1, 2, 5, 3)).astype(np.float32)  # 2 heads, 5 queries (last 2: prediction)
    k = rng.standard_normal((1, 2, 7, 3)).astype(np.float32)
    scale = 0.5
    logits = np.einsum("bhqd,bhkd->bhqk", q[:, :, -2:] * scale, k)
    soft = np.exp(logits - logits.max(-1, keepdims=True))
    soft /= soft.sum(-1, keepdims=True)
    want = soft.mean(axis=(1, 2))
    got = prediction_attention(torch.from_numpy(q), torch.from_numpy(k), scale, 2).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got.sum(), 1.0, rtol=1e-5)


def test_pruned_cached_path_equals_full_forward_and_rows_are_independent():
    model = _tiny_model()
    t, o, s = torch.randn(3, 3, 64, 64), torch.randn(3, 3, 64, 64), torch.randn(3, 3, 128, 128)
    with torch.no_grad():
        full = model(t, o, s)
        kv = model.encode_templates(t, o)
        cached = model.search_step(s, kv)
        alone = model.search_step(s[1:2], kv[1:2])
        unpruned = MixFormerV2(TINY.unpruned).eval()
        unpruned.load_state_dict(model.state_dict())
        reference = unpruned.search_step(s, kv)
    assert torch.allclose(full[0], cached[0], atol=1e-5) and torch.allclose(full[1], cached[1], atol=1e-5)
    assert torch.allclose(alone[0], cached[0][1:2], atol=1e-5)  # each row picks its own tokens
    assert (reference[0] - cached[0]).abs().max() > 1e-3  # the pruning took effect


def test_pruning_is_dropping_the_least_attended_tokens_after_the_block():
    """Keeping 63 of 64 search tokens = the unpruned blocks run with, after block 0, the one search token
    the prediction tokens attended to least in block 0 removed by hand."""
    cfg = dataclasses.replace(TINY, depth=2, keep_search_tokens=63, prune_after=0)
    model = _tiny_model(cfg)
    unpruned = MixFormerV2(cfg.unpruned).eval()
    unpruned.load_state_dict(model.state_dict())
    t, s = torch.randn(1, 3, 64, 64), torch.randn(1, 3, 128, 128)
    n_pred = cfg.num_pred_tokens
    with torch.no_grad():
        kv = model.encode_templates(t, t)
        got = model.search_step(s, kv)
        x = unpruned.backbone.search_tokens(s)
        blocks = unpruned.backbone.blocks
        h, importance = blocks[0].forward_search(x, kv[:, 0, 0], kv[:, 0, 1], n_pred)
        dropped = int(importance[0, :-n_pred].argmin())
        h = torch.cat([h[:, :dropped], h[:, dropped + 1:]], dim=1)
        want = unpruned._heads(blocks[1].forward_last(h, kv[:, 1, 0], kv[:, 1, 1], n_pred))
        everything = unpruned.search_step(s, kv)
    assert torch.allclose(got[0], want[0], atol=1e-5) and torch.allclose(got[1], want[1], atol=1e-5)
    assert not torch.allclose(got[0], everything[0], atol=1e-5)


@pytest.mark.parametrize("changes, message", [
    ({"keep_search_tokens": 64}, "keep_search_tokens must be in 1..63"),
    ({"keep_search_tokens": -1}, "keep_search_tokens must be in 1..63"),
    ({"prune_after": 2}, "prune_after must be a block before the last, 0..1"),
    ({"keep_search_tokens": 0, "prune_after": 1}, "prune_after 1 given without keep_search_tokens"),
])
def test_config_rejects_bad_pruning(changes, message):
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(TINY, **changes)


def test_pruning_keeps_the_released_variant_name():
    pruned_s = dataclasses.replace(CONFIGS["small"], keep_search_tokens=100, prune_after=1)
    assert variant_name(pruned_s) == "small"
    assert variant_name(TINY) == "custom"


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_pruned_export_carries_its_setting_and_matches_torch(tmp_path_factory, backend):
    model = _tiny_model()
    out = tmp_path_factory.getbasetemp() / "pruned_export"
    if not out.exists():
        export_model(model, "custom", out, "pruned")
    manifest = read_manifest(find_manifest(out))
    assert manifest.data["metadata"]["keep_search_tokens"] == "40" and manifest.data["metadata"]["prune_after"] == "0"
    rng = np.random.default_rng(2)
    t = rng.standard_normal((2, 3, 64, 64)).astype(np.float32)
    s = rng.standard_normal((2, 3, 128, 128)).astype(np.float32)
    tmpl = load_graph(backend, manifest.graph_path("fp32", ("onnx",), "template"))
    search = load_graph(backend, manifest.graph_path("fp32", ("onnx",), "search"))
    assert tmpl.metadata.keep_search_tokens == 40 and search.metadata.prune_after == 0
    kv = tmpl({"template": t, "online_template": t})["template_kv"]
    got = search({"search": s, "template_kv": kv})
    with torch.no_grad():
        logits, _ = model.search_step(torch.from_numpy(s), torch.from_numpy(kv))
    np.testing.assert_allclose(got["logits"], logits.numpy(), atol=1e-4)


def test_training_taps_the_whole_grid_before_pruning():
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))
    import train  # noqa: E402  (train/train.py)

    model = _tiny_model()
    tapped = train.tap_search_tokens(model)
    t, s = torch.randn(2, 3, 64, 64), torch.randn(2, 3, 128, 128)
    with torch.no_grad():
        model(t, t, s)
        x = torch.cat([model.backbone.template_tokens(t, t), model.backbone.search_tokens(s)], dim=1)
        block0 = model.backbone.blocks[0].forward(x, 2 * TINY.template_tokens)  # .forward: no hook
    assert tapped["search"].shape == (2, TINY.search_tokens, TINY.embed_dim)
    assert torch.allclose(tapped["search"], block0[:, 2 * TINY.template_tokens:-TINY.num_pred_tokens], atol=1e-6)
    cfg = train.run_config(dataclasses.asdict(TINY.unpruned), 128, keep_search_tokens=40, prune_after=1)
    assert (cfg.keep_search_tokens, cfg.prune_after) == (40, 1)
    assert train.run_config(dataclasses.asdict(TINY), 128) == TINY  # the starting weights' own setting
