"""How close a speed row is to this machine's limit: multiply-accumulates of a graph, and the GFLOP/s
of a plain fp32 GEMM on the same threads (both with OpenVINO, a runtime dependency: no onnx/torch)."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

GEMM_SIZE = 1024  # square fp32 GEMM: 2 * 1024^3 = 2.1 GFLOP per call


def graph_macs(path: Path, batch: int = 1) -> int:
    """Multiply-accumulates of one call of the graph in ``path`` (ONNX or IR) at ``batch``: MatMul,
    Convolution and GroupConvolution nodes (everything else is a rounding error in these models)."""
    import openvino as ov

    model = ov.Core().read_model(str(path))
    model.reshape({p.get_any_name(): [batch, *list(p.get_partial_shape())[1:]] for p in model.inputs})
    macs = 0
    for op in model.get_ordered_ops():
        kind = op.get_type_name()
        if kind == "MatMul":
            a = list(op.get_input_shape(0))
            k = a[-2] if op.get_attributes().get("transpose_a") else a[-1]
            macs += int(np.prod(list(op.get_output_shape(0)))) * int(k)
        elif kind in ("Convolution", "GroupConvolution"):
            w = list(op.get_input_shape(1))  # (out, in, kh, kw) or grouped (groups, out/g, in/g, kh, kw)
            per_output = int(np.prod(w[2:] if kind == "GroupConvolution" else w[1:]))
            macs += int(np.prod(list(op.get_output_shape(0)))) * per_output
    return macs


def gemm_gflops(threads: int, size: int = GEMM_SIZE, calls: int = 20) -> float:
    """GFLOP/s of a (size x size) @ (size x size) fp32 MatMul on OpenVINO with ``threads`` threads
    (median of ``calls`` after warm-up): the ceiling a network's matmuls can approach here."""
    import openvino as ov
    import openvino.opset13 as ops

    rng = np.random.default_rng(0)
    x = ops.parameter([size, size], ov.Type.f32, name="x")
    w = ops.constant(rng.standard_normal((size, size)).astype(np.float32))
    model = ov.Model([ops.matmul(x, w, False, False)], [x], "gemm")
    compiled = ov.Core().compile_model(model, "CPU", {"INFERENCE_NUM_THREADS": int(threads),
                                                      "INFERENCE_PRECISION_HINT": "f32",
                                                      "PERFORMANCE_HINT": "LATENCY"})
    req = compiled.create_infer_request()
    feed = rng.standard_normal((size, size)).astype(np.float32)
    for _ in range(3):
        req.infer([feed])
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        req.infer([feed])
        times.append(time.perf_counter() - t0)
    return 2.0 * size ** 3 / float(np.median(times)) / 1e9
