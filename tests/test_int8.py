"""INT8 graphs: both flavours (ONNX Runtime dynamic, OpenVINO NNCF static) measured against fp32 on real
crops; only flavours that pass the gate are listed; on the trained default model int8 tracks like fp32."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from mixformerv2_cpu import ModelFileError, Tracker
from mixformerv2_cpu.manifest import read_manifest, write_manifest
from mixformerv2_cpu.registry import find_manifest, resolve_model
from mixformerv2_export import quantize
from mixformerv2_export.exporter import export_model
from mixformerv2_export.network import MixFormerV2, ModelConfig


def _tiny_model() -> MixFormerV2:
    torch.manual_seed(0)
    model = MixFormerV2(ModelConfig(embed_dim=64, depth=2, num_heads=2, mlp_ratio=1.0, template_size=48,
                                    search_size=96, bins=24)).eval()
    return model


def _tiny_export(out, sample_sequence):
    export_model(_tiny_model(), "custom", out, "tiny", int8_source=[sample_sequence], int8_samples=24)
    return read_manifest(find_manifest(out))


@pytest.mark.slow
def test_int8_report_lists_only_accepted_flavours(tmp_path, sample_sequence, monkeypatch):
    m = _tiny_export(tmp_path / "ok", sample_sequence)
    report = m.data["int8_report"]
    assert report["calibration_pairs"] == 24 and set(report["gate"]) == set(quantize.GATE)
    for fmt in ("onnx", "openvino"):
        r = report[fmt]
        assert r["heldout_pairs"] == 100 and set(r["per_threads"]) == {"1", "2"}  # kernels differ by threads
        assert r["accepted"] == all(v["iou_vs_fp32_mean"] >= quantize.GATE["iou_vs_fp32_mean_min"]
                                    and v["score_absdiff_mean"] <= quantize.GATE["score_absdiff_mean_max"]
                                    for v in r["per_threads"].values())
        assert (fmt in m.data["graphs"].get("int8", {})) == r["accepted"]
    # an impossible gate: nothing is listed, nothing is left on disk, auto keeps fp32
    monkeypatch.setitem(quantize.GATE, "iou_vs_fp32_mean_min", 1.01)
    strict = _tiny_export(tmp_path / "strict", sample_sequence)
    assert strict.precisions() == ["fp32"] and strict.data["int8_report"]["accepted"] is False
    assert not list((tmp_path / "strict").glob("*int8*"))
    with pytest.raises(ModelFileError, match="no 'int8' graphs"):
        Tracker(tmp_path / "strict", backend="openvino", precision="int8")
    assert Tracker(tmp_path / "strict").engine.precision == "fp32"


def _track(tracker, frames, box):
    tracker.init(frames[0], box)
    return np.array([tracker.update(f)[1] for f in frames[1:]])


def _iou(a, b):
    x1, y1 = np.maximum(a[:, 0], b[:, 0]), np.maximum(a[:, 1], b[:, 1])
    x2, y2 = np.minimum(a[:, 0] + a[:, 2], b[:, 0] + b[:, 2]), np.minimum(a[:, 1] + a[:, 3], b[:, 1] + b[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    return inter / (a[:, 2] * a[:, 3] + b[:, 2] * b[:, 3] - inter)


@pytest.mark.slow
def test_int8_of_the_trained_default_model_tracks_like_fp32(tmp_path, sample_sequence):
    """The shipped (trained) model quantised on the CC0 sample clip: every flavour that passes the gate on
    held-out crops (at 1 and 2 threads) tracks the clip on the fp32 boxes (mean IoU >= 0.85) at 1 thread.
    (OpenVINO's int8 kernels at 1 thread once drifted off after 2 frames while passing at 2 threads: the
    gate now measures both.)"""
    import cv2

    src = resolve_model(None)
    folder = tmp_path / "default"
    shutil.copytree(src.folder, folder)
    fp32 = {r: folder / src.data["graphs"]["fp32"]["onnx"][r] for r in ("template", "search")}
    int8, report = quantize.quantize_int8(folder, "default", fp32, [sample_sequence], samples=60, holdout=60)
    assert "onnx" in int8, json.dumps(report)  # ONNX Runtime's dynamic int8 passes on this trained model
    for fmt in int8:
        assert report[fmt]["iou_vs_fp32_mean"] >= 0.9 and report[fmt]["score_absdiff_mean"] <= 0.03, report[fmt]
    (folder / "default.manifest.json").unlink()
    write_manifest(folder, "default", src.variant, src.data["metadata"], {**src.data["graphs"], "int8": int8},
                   {"int8_report": report}, data_files=("default.weights",))
    frames = [cv2.imread(str(p)) for p in sorted((sample_sequence / "img").glob("*.jpg"))][:60]
    box = tuple(np.loadtxt(sample_sequence / "groundtruth.txt", delimiter=",")[0])
    ref = _track(Tracker(folder, backend="onnxruntime", precision="fp32", threads=1), frames, box)
    for fmt in int8:
        backend = quantize.READER[fmt]
        got = _track(Tracker(folder, backend=backend, precision="int8", threads=1), frames, box)
        assert _iou(ref, got).mean() >= 0.85, backend


def test_onnx_int8_weights_cannot_saturate_avx2_pair_sums(tmp_path):
    """ONNX Runtime's int8 MatMul weights use 7 bits (-64..64): AVX2's VPMADDUBSW adds two u8 x s8
    products into a saturating int16, and 2 x 255 x 64 = 32,640 stays under 32,767, so AVX2's kernels
    give VNNI's exact int32 sums and one accuracy measurement holds for both kinds of CPU."""
    import onnx
    from onnx import numpy_helper

    export_model(_tiny_model(), "custom", tmp_path, "tiny")
    fp32 = read_manifest(find_manifest(tmp_path)).data["graphs"]["fp32"]["onnx"]["search"]
    dst = quantize._dynamic_onnx(tmp_path / fp32, tmp_path / "tiny.int8.search.onnx")
    weights = [numpy_helper.to_array(t) for t in onnx.load(str(dst)).graph.initializer
               if t.data_type == onnx.TensorProto.INT8]
    assert len(weights) >= 2 * 4  # the MatMuls of two blocks at least
    lo, hi = min(int(w.min()) for w in weights), max(int(w.max()) for w in weights)
    assert -64 <= lo and hi <= 64 and max(-lo, hi) > 32  # 7 bits (symmetric: -64..64), all of them used
    assert 2 * 255 * max(-lo, hi) <= 32767
    assert quantize.valid_on("onnx", "vnni") == quantize.valid_on("onnx", "avx2") == ["vnni", "avx2"]
    assert quantize.valid_on("openvino", "vnni") == ["vnni"]  # NNCF's 8-bit weights: only where measured


def test_prediction_token_heads_stay_fp32(tmp_path):
    """MatMuls over fewer than 16 rows per sample (the heads on the four prediction tokens and the score
    token) are found by running the fp32 graph once and left out of the int8 graph."""
    import onnx

    from mixformerv2_cpu.backends import load_graph

    export_model(_tiny_model(), "custom", tmp_path, "tiny")
    files = read_manifest(find_manifest(tmp_path)).data["graphs"]["fp32"]["onnx"]
    rng = np.random.default_rng(0)
    t = rng.standard_normal((1, 3, 48, 48)).astype(np.float32)
    kv = load_graph("onnxruntime", tmp_path / files["template"])({"template": t, "online_template": t})["template_kv"]
    feeds = {"search": rng.standard_normal((1, 3, 96, 96)).astype(np.float32), "template_kv": kv}
    small = quantize.small_matmuls(tmp_path / files["search"], feeds)
    graph = onnx.load(str(tmp_path / files["search"])).graph
    weights = {w.name for w in graph.initializer}
    linear = [n.name for n in graph.node if n.op_type in ("MatMul", "Gemm") and n.input[1] in weights]
    heads = [n for n in linear if n in small]
    assert 4 <= len(heads) < len(linear)  # the heads (box and score), not the blocks
    ops = lambda path: [n.op_type for n in onnx.load(str(path)).graph.node]  # noqa: E731
    every = ops(quantize._dynamic_onnx(tmp_path / files["search"], tmp_path / "all.onnx"))
    kept = ops(quantize._dynamic_onnx(tmp_path / files["search"], tmp_path / "kept.onnx", small))
    assert every.count("MatMulInteger") - kept.count("MatMulInteger") == len(heads)
