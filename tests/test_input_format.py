"""Image input formats (metadata ``input_format``): the reference layout (normalised RGB, NCHW) and the raw
BGR NHWC crops a convolutional-stem model is exported with; both give the network the same pixels."""
from __future__ import annotations

import json

import numpy as np
import pytest

from mixformerv2_cpu.errors import ModelFileError
from mixformerv2_cpu.metadata import ModelMetadata
from mixformerv2_cpu.preprocess import input_shape, network_input, normalize_patch, raw_patch

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _meta(**kw) -> ModelMetadata:
    base = dict(role="search", variant="custom", template_size=64, search_size=128, bins=32, embed_dim=64, depth=2,
                num_heads=2, template_tokens=16, mean=MEAN, std=STD)
    return ModelMetadata(**{**base, **kw})


def test_metadata_says_the_input_format_and_version():
    ref = _meta().to_strings()
    assert "input_format" not in ref and ref["format_version"] == "1"  # readable by runtimes older than the key
    assert ModelMetadata.from_strings(ref, "ref").input_format == "rgb_nchw"
    raw = _meta(input_format="bgr_nhwc_raw").to_strings()
    assert raw["input_format"] == "bgr_nhwc_raw" and raw["format_version"] == "2"
    assert ModelMetadata.from_strings(raw, "raw").input_format == "bgr_nhwc_raw"
    with pytest.raises(ModelFileError, match=r"bad.onnx: metadata input_format 'bgr_nchw' is not one of"):
        ModelMetadata.from_strings({**raw, "input_format": "bgr_nchw"}, "bad.onnx")
    with pytest.raises(ModelFileError, match="format_version 3 is newer than this runtime supports"):
        ModelMetadata.from_strings({**raw, "format_version": "3"}, "new.onnx")


def test_raw_patch_keeps_the_pixels_and_their_order():
    patch = np.zeros((4, 5, 3), np.uint8)
    patch[1, 2] = (10, 20, 255)  # B, G, R
    x = raw_patch(patch)
    assert x.shape == (1, 4, 5, 3) and x.dtype == np.float32
    assert x[0, 1, 2].tolist() == [10.0, 20.0, 255.0] and x.sum() == 285.0
    out = np.full((4, 5, 3), -1, np.float32)
    assert raw_patch(patch, out=out).base is out and out[1, 2, 2] == 255.0
    with pytest.raises(ValueError, match=r"out must be a C-contiguous float32 array of shape \(4, 5, 3\), got float32 \(3, 4, 5\)"):
        raw_patch(patch, out=np.empty((3, 4, 5), np.float32))


def test_network_input_follows_the_metadata():
    patch = np.random.default_rng(0).integers(0, 256, (6, 6, 3), dtype=np.uint8)
    assert input_shape("rgb_nchw", 6) == (3, 6, 6) and input_shape("bgr_nhwc_raw", 6) == (6, 6, 3)
    with pytest.raises(ValueError, match="unknown input format 'nchw'"):
        input_shape("nchw", 6)
    np.testing.assert_array_equal(network_input(patch, _meta()), normalize_patch(patch, MEAN, STD))
    np.testing.assert_array_equal(network_input(patch, _meta(input_format="bgr_nhwc_raw")), raw_patch(patch))
    # the two formats hold the same pixels: undo the normalisation and the layout by hand (R at channel 0)
    norm = network_input(patch, _meta())[0]
    back = (norm * np.array(STD)[:, None, None] + np.array(MEAN)[:, None, None]) * 255
    np.testing.assert_allclose(back[::-1].transpose(1, 2, 0), raw_patch(patch)[0], atol=1e-3)


@pytest.fixture(scope="module")
def stem_export(tmp_path_factory):
    """A small random model with the project's convolutional stem, exported (and the model kept)."""
    torch = pytest.importorskip("torch")
    from mixformerv2_export.exporter import export_model
    from mixformerv2_export.network import MixFormerV2, ModelConfig

    torch.manual_seed(0)
    cfg = ModelConfig(embed_dim=64, depth=2, num_heads=2, mlp_ratio=1.0, template_size=64, search_size=128, bins=32,
                      stem="mnv3s")
    model = MixFormerV2(cfg).eval()
    out = tmp_path_factory.mktemp("stem_export")
    manifest = export_model(model, "custom", out, "tiny")
    return model, manifest


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_stem_model_is_exported_for_raw_crops_and_computes_the_training_function(stem_export, backend):
    """The exported raw-input graphs, fed the crops as they come, give what the training model (normalised
    RGB input, the stem's own flip and affine map) gives on the same crops."""
    import torch

    from mixformerv2_cpu.engine import Engine

    model, manifest = stem_export
    assert model.input_format == "rgb_nchw"  # the exporter switched its own copy only
    meta = json.loads(manifest.read_text())["metadata"]
    assert meta["input_format"] == "bgr_nhwc_raw" and meta["format_version"] == "2"
    engine = Engine(manifest, backend=backend, precision="fp32", threads=1)
    assert engine.meta.input_format == "bgr_nhwc_raw"
    rng = np.random.default_rng(1)
    crops = {n: rng.integers(0, 256, (n, n, 3), dtype=np.uint8) for n in (64, 128)}
    tmpl, search = crops[64], crops[128]
    state = engine.encode_templates(network_input(tmpl, engine.meta), network_input(tmpl, engine.meta))
    logits, score = engine.search(network_input(search, engine.meta), state)
    assert logits.shape == (1, 4, 32)
    t = torch.from_numpy(normalize_patch(tmpl, MEAN, STD))
    with torch.no_grad():
        want_logits, want_score = model(t, t, torch.from_numpy(normalize_patch(search, MEAN, STD)))
    np.testing.assert_allclose(logits, want_logits.numpy(), atol=2e-3 * float(np.abs(want_logits.numpy()).max()))
    np.testing.assert_allclose(score, torch.sigmoid(want_score[:, 0]).numpy(), atol=1e-4)


def test_tracker_runs_a_raw_input_model(stem_export):
    from mixformerv2_cpu import MultiTracker, Tracker

    _, manifest = stem_export
    frame = np.random.default_rng(2).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    trk = Tracker(manifest, backend="onnxruntime", precision="fp32", threads=1)
    trk.init(frame, (60, 40, 30, 24))
    ok, box = trk.update(frame)
    assert len(box) == 4 and np.isfinite(box).all() and 0 <= trk.score <= 1
    multi = MultiTracker(manifest, backend="onnxruntime", precision="fp32", threads=1)
    multi.init(frame, [(60, 40, 30, 24), (10, 10, 20, 20)])
    (_, box_a), _ = multi.update(frame)
    np.testing.assert_allclose(box_a, box, atol=1e-4)  # the batched (2,S,S,3) input gives the single result
