"""Exported files reproduce the reference outputs; the export CLI fails cleanly on bad input."""
from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from conftest import model_ref, softmax
from mixformerv2_cpu.backends import load_graph
from mixformerv2_cpu.manifest import read_manifest, sha256_of
from mixformerv2_cpu.registry import find_manifest
from mixformerv2_export.cli import main

TOL = 1e-4
BACKENDS = ["onnxruntime", "openvino"]


def _check_outputs(ref, i, logits, boxes, score):
    assert np.abs(softmax(logits.reshape(4, -1)) - softmax(ref[f"out{i}_logits_ltrb"])).max() < TOL
    if boxes is not None:
        assert np.abs(boxes.reshape(4) - ref[f"out{i}_pred_boxes_cxcywh"]).max() < TOL
    logit = float(np.log(score) - np.log1p(-score))
    assert abs(logit - ref[f"out{i}_score_logit"].item()) < TOL


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["small", "base"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_exported_graphs_reproduce_reference(variant, backend, request):
    ref = model_ref(variant)
    manifest = read_manifest(find_manifest(request.getfixturevalue(f"export_{variant}")))
    assert manifest.variant == variant
    full = load_graph(backend, manifest.graph_path("fp32", ("onnx",), "full"))
    tmpl = load_graph(backend, manifest.graph_path("fp32", ("onnx",), "template"))
    search = load_graph(backend, manifest.graph_path("fp32", ("onnx",), "search"))
    assert (full.metadata.variant, full.metadata.role, search.metadata.role) == (variant, "full", "search")
    for i in range(3):
        feeds = {k: ref[f"in{i}_{k}"] for k in ("template", "online_template", "search")}
        out = full(feeds)
        _check_outputs(ref, i, out["logits"], out["boxes"], out["score"].item())
        kv = tmpl({"template": feeds["template"], "online_template": feeds["online_template"]})["template_kv"]
        out_c = search({"search": feeds["search"], "template_kv": kv})
        _check_outputs(ref, i, out_c["logits"], None, out_c["score"].item())
        assert np.abs(out_c["logits"] - out["logits"]).max() < TOL  # cached path == full graph


@pytest.mark.slow
def test_export_folder_contents(export_small):
    manifest = read_manifest(find_manifest(export_small))
    names = {p.name for p in export_small.iterdir()}
    # one copy of the weights: three small ONNX graphs sharing mixformerv2_small.weights
    graphs = {f"mixformerv2_small.{r}.onnx" for r in ("full", "template", "search")}
    assert names == graphs | {"mixformerv2_small.weights", "mixformerv2_small.manifest.json"}
    assert set(manifest.data["files"]) == names - {"mixformerv2_small.manifest.json"}
    for fname, entry in manifest.data["files"].items():
        assert sha256_of(export_small / fname) == entry["sha256"]
    weights = (export_small / "mixformerv2_small.weights").stat().st_size
    params = 16_226_000  # MixFormerV2-S parameters (reference facts); stored once, not once per graph
    assert 4 * params * 0.95 < weights < 4 * params * 1.25
    assert all((export_small / g).stat().st_size < 2_000_000 for g in graphs)
    diffs = manifest.data["verification"]["max_abs_diff"]  # every graph on both backends
    assert len(diffs) == 6 and max(v for per in diffs.values() for v in per.values()) <= TOL
    proto = onnx.load(str(export_small / "mixformerv2_small.search.onnx"), load_external_data=False)
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["template_size"] == "112" and meta["search_size"] == "224" and meta["bins"] == "96"
    assert json.loads(meta["mean"]) == [0.485, 0.456, 0.406] and meta["format_version"] == "1"
    assert meta["box_scale"] == "1.0" and manifest.data["metadata"]["box_scale"] == "1.0"  # reference decoding
    assert proto.opset_import[0].version >= 17
    assert [i.name for i in proto.graph.input] == ["search", "template_kv"]
    full = onnx.load(str(export_small / "mixformerv2_small.full.onnx"), load_external_data=False)
    assert [i.name for i in full.graph.input] == ["template", "online_template", "search"]
    assert [o.name for o in full.graph.output] == ["boxes", "score", "logits"]


def _run_cli(args, capsys):
    code = main(args)
    err = capsys.readouterr().err.strip().splitlines()
    return code, err


def test_cli_missing_checkpoint(tmp_path, capsys):
    code, err = _run_cli(["--checkpoint", str(tmp_path / "none.pth.tar"), "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and len(err) == 1 and err[0].startswith("error: checkpoint not found")


def test_cli_variant_contradiction_leaves_nothing(ckpt_small, tmp_path, capsys):
    out = tmp_path / "o"
    code, err = _run_cli(["--checkpoint", str(ckpt_small), "--variant", "base", "--out", str(out)], capsys)
    assert code == 2 and len(err) == 1 and "holds a small model" in err[0]
    assert not out.exists() or not list(out.iterdir())


def test_cli_box_scale_out_of_range_writes_nothing(ckpt_small, tmp_path, capsys):
    out = tmp_path / "o"
    code, err = _run_cli(["--checkpoint", str(ckpt_small), "--out", str(out), "--box-scale", "0.2"], capsys)
    assert code == 2 and err == ["error: box_scale must be in [0.5, 2.0], got 0.2"]
    assert not out.exists()


def test_cli_unwritable_output(ckpt_small, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, err = _run_cli(["--checkpoint", str(ckpt_small), "--out", str(blocker / "sub")], capsys)
    assert code == 2 and len(err) == 1 and "not writable" in err[0]


@pytest.mark.slow
def test_failed_parity_leaves_no_complete_export(ckpt_small, tmp_path, capsys):
    out = tmp_path / "o"
    code, err = _run_cli(["--checkpoint", str(ckpt_small), "--out", str(out), "--tolerance", "0"], capsys)
    assert code == 2 and len(err) == 1 and "parity check failed" in err[0]
    assert list(out.iterdir()) == []  # no manifest, no graph files, no partial folder
