"""Backend call semantics that the tracker relies on, on the shipped default model's search step."""
from __future__ import annotations

import numpy as np
import pytest

from mixformerv2_cpu.backends import load_graph
from mixformerv2_cpu.preprocess import input_shape
from mixformerv2_cpu.registry import resolve_model

BACKENDS = ["onnxruntime", "openvino"]


def _search_inputs(backend):
    manifest = resolve_model(None)
    tmpl = load_graph(backend, manifest.graph_path("fp32", ("onnx",), "template"), threads=1, occasional=True)
    search = load_graph(backend, manifest.graph_path("fp32", ("onnx",), "search"), threads=1)
    m = search.metadata
    rng = np.random.default_rng(0)
    t = rng.standard_normal((1, *input_shape(m.input_format, m.template_size))).astype(np.float32)
    kv = tmpl({"template": t, "online_template": t})["template_kv"]
    x = rng.standard_normal((2, 1, *input_shape(m.input_format, m.search_size))).astype(np.float32)
    return search, kv, x


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_same_array_changed_in_place_gives_the_new_result(backend):
    """OpenVINO keeps an input bound to the caller's array between calls: writing new pixels into
    that array (as the tracker does with its batch buffer) must change the result like a new array."""
    search, kv, x = _search_inputs(backend)
    want = [search({"search": x[i].copy(), "template_kv": kv.copy()})["logits"] for i in range(2)]
    assert np.abs(want[0] - want[1]).max() > 1e-3  # the two inputs really differ
    buf = x[0].copy()
    first = search({"search": buf, "template_kv": kv})["logits"]
    buf[...] = x[1]
    second = search({"search": buf, "template_kv": kv})["logits"]
    np.testing.assert_allclose(first, want[0], atol=1e-5)
    np.testing.assert_allclose(second, want[1], atol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_float64_and_strided_inputs_are_converted(backend):
    search, kv, x = _search_inputs(backend)
    want = search({"search": x[0].copy(), "template_kv": kv})["logits"]
    if backend == "onnxruntime":  # ORT takes exactly the graph's dtype; only OpenVINO converts
        got = search({"search": np.asfortranarray(x[0]), "template_kv": kv})["logits"]
    else:
        got = search({"search": x[0].astype(np.float64), "template_kv": kv})["logits"]
        np.testing.assert_allclose(got, want, atol=1e-5)
        got = search({"search": x[0][..., ::-1][..., ::-1], "template_kv": kv[:, ::1]})["logits"]
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_the_template_encoder_does_not_spin_beside_the_search_step():
    """ONNX Runtime: the occasional template graph's pool must not busy-wait after a call (its spinning
    workers took a core from the search step's pool: update() p90 6.4 ms for a 2.2 ms median)."""
    from mixformerv2_cpu.engine import Engine

    engine = Engine(None, backend="onnxruntime", precision="fp32", threads=2)
    key = "session.intra_op.allow_spinning"
    assert engine.graphs["template"].options.get_session_config_entry(key) == "0"
    with pytest.raises(RuntimeError, match=key):  # the per-frame graph keeps ONNX Runtime's default
        engine.graphs["search"].options.get_session_config_entry(key)


def test_openvino_runs_a_smaller_batch_padded_on_a_compiled_one():
    """A batch size that was not compiled but is smaller than one that was runs on that one, padded,
    with the results of its own size; compiling it would freeze the video for 0.2-0.7 s."""
    search, kv, x = _search_inputs("openvino")
    batch = np.concatenate([x[0], x[1], x[0]])
    kvs = np.concatenate([kv] * 3)
    search.prepare(5)
    got = search({"search": batch, "template_kv": kvs})
    assert search.compiled_batches == {5}
    assert got["logits"].shape[0] == 3 and got["score"].shape[0] == 3
    again = search({"search": batch[:2], "template_kv": kvs[:2]})  # another size, the same buffer size
    assert search.compiled_batches == {5}
    own, _, _ = _search_inputs("openvino")  # a graph that compiles batch 3 itself
    want = own({"search": batch, "template_kv": kvs})
    assert own.compiled_batches == {3}
    for name in ("logits", "score"):
        np.testing.assert_allclose(got[name], want[name], atol=1e-4)
        np.testing.assert_allclose(again[name], want[name][:2], atol=1e-4)
    search.prepare(2)  # once compiled, a size runs on its own request
    np.testing.assert_allclose(search({"search": batch[:2], "template_kv": kvs[:2]})["logits"], want["logits"][:2], atol=1e-4)
    assert search.compiled_batches == {2, 5}
    own({"search": np.concatenate([batch] * 2), "template_kv": np.concatenate([kvs] * 2)})  # larger: compiled
    assert own.compiled_batches == {3, 6}
