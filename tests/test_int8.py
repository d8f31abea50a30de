"""INT8 export: NNCF-quantised OpenVINO graphs calibrated on real crops, with the accuracy report."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from mixformerv2_cpu import ModelFileError, Tracker
from mixformerv2_cpu.manifest import read_manifest
from mixformerv2_cpu.models import find_manifest
from mixformerv2_export.exporter import export_model
from mixformerv2_export.model import MixFormerV2, ModelConfig


@pytest.fixture(scope="module")
def tiny_int8(tmp_path_factory, sample_sequence):
    torch.manual_seed(0)
    model = MixFormerV2(ModelConfig(embed_dim=64, depth=2, num_heads=2, mlp_ratio=1.0, template_size=48,
                                    search_size=96, bins=24)).eval()
    out = tmp_path_factory.mktemp("tiny_int8")
    export_model(model, "custom", out, "tiny", int8_source=[sample_sequence], int8_samples=24)
    return out


@pytest.mark.slow
def test_int8_graphs_and_report(tiny_int8):
    m = read_manifest(find_manifest(tiny_int8))
    assert m.precisions() == ["fp32", "int8"]
    assert sorted(m.data["graphs"]["int8"]["openvino"]) == ["search", "template"]
    summary = m.data["int8_report"]["summary"]
    assert summary["calibration_pairs"] == 24 and summary["heldout_pairs"] == 100
    assert 0.0 <= summary["iou_vs_fp32_mean"] <= 1.0 and summary["score_absdiff_max"] >= 0
    frame = np.zeros((120, 160, 3), np.uint8)
    frame[40:80, 60:100] = (30, 200, 90)
    t = Tracker(tiny_int8, backend="openvino", precision="int8")
    assert t.engine.meta.precision == "int8"
    t.init(frame, (60, 40, 40, 40))
    ok, box = t.update(frame)
    assert 0 <= t.score <= 1 and np.isfinite(box).all()


@pytest.mark.slow
def test_int8_is_openvino_only(tiny_int8):
    with pytest.raises(ModelFileError, match="no onnx files for int8; available: \\['openvino'\\]"):
        Tracker(tiny_int8, backend="onnxruntime", precision="int8")
