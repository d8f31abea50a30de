"""The PyTorch model reproduces the reference implementation's outputs (reference/model_*.npz)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import model_ref, softmax
from mixformerv2_export.checkpoint import load_model
from mixformerv2_export.network import CONFIGS, MixFormerV2, ModelConfig, decode_ltrb

TOL = 1e-4


@pytest.mark.parametrize("variant", ["small", "base"])
def test_reproduces_reference_outputs(variant, request):
    model, detected = load_model(request.getfixturevalue(f"ckpt_{variant}"))
    assert detected == variant
    ref = model_ref(variant)
    for i in range(3):
        t, o, s = (torch.from_numpy(ref[f"in{i}_{k}"]) for k in ("template", "online_template", "search"))
        with torch.no_grad():
            logits, score_logit = model(t, o, s)
            kv = model.encode_templates(t, o)
            logits_c, score_c = model.search_step(s, kv)
        want = ref[f"out{i}_logits_ltrb"]
        assert np.abs(softmax(logits[0].numpy()) - softmax(want)).max() < TOL
        assert np.abs(decode_ltrb(logits)[0].numpy() - ref[f"out{i}_pred_boxes_cxcywh"]).max() < TOL
        assert abs(score_logit.item() - ref[f"out{i}_score_logit"].item()) < TOL
        # the cached keys/values path equals the full forward
        assert torch.allclose(logits_c, logits, atol=TOL) and torch.allclose(score_c, score_logit, atol=TOL)


def test_cached_path_equals_full_forward_on_a_custom_config():
    torch.manual_seed(0)
    cfg = ModelConfig(embed_dim=128, depth=3, num_heads=4, mlp_ratio=2.0, template_size=64, search_size=128, bins=32)
    model = MixFormerV2(cfg).eval()
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.2)
    t, o, s = torch.randn(2, 3, 64, 64), torch.randn(2, 3, 64, 64), torch.randn(2, 3, 128, 128)
    with torch.no_grad():
        full = model(t, o, s)
        kv = model.encode_templates(t, o)
        cached = model.search_step(s, kv)
    assert kv.shape == (2, 3, 2, 4, 2 * 16, 32)
    assert torch.allclose(full[0], cached[0], atol=1e-5) and torch.allclose(full[1], cached[1], atol=1e-5)
    assert full[0].shape == (2, 4, 32) and full[1].shape == (2, 1)


def test_released_configs_match_reference_parameter_counts():
    counts = {name: sum(p.numel() for p in MixFormerV2(cfg).state_dict().values()) for name, cfg in CONFIGS.items()}
    assert counts == {"small": 16_228_897, "base": 58_855_201}


def test_model_holds_no_state_between_calls(ckpt_small):
    model, _ = load_model(ckpt_small)
    ref = model_ref("small")
    t, o, s = (torch.from_numpy(ref[f"in0_{k}"]) for k in ("template", "online_template", "search"))
    with torch.no_grad():
        first = model(t, o, s)[0]
        model(torch.from_numpy(ref["in1_template"]), o, s)
        again = model(t, o, s)[0]
    assert torch.equal(first, again)
    assert not list(model.buffers())
