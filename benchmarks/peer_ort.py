"""ONNX Runtime helpers shared by the peers that run their own tracking loop (NanoTrack v3, FEAR-XS).

Why ONNX Runtime: these peer networks are tiny (a 255x255 backbone of about 1 ms, a 15x15 head, a
256x256 FEAR graph of a few ms), so the per-call overhead of the runtime matters as much as the kernels.
ONNX Runtime takes the ONNX files as they are (no compile step at load, loads in tens of ms), its
``run()`` overhead is small, and measured on this machine per call it is on par with OpenVINO
(NanoTrack v3 backbone 0.97 vs 0.97 ms, head 0.72 vs 0.63 ms, FEAR-XS track graph 5.0 vs 5.8 ms,
1 thread, median of 200 calls, busy machine): OpenVINO is not clearly faster, so nothing justifies its
compile time and larger memory for these peers. Torch is never imported.

``threads`` sets ONNX Runtime's intra-op thread count (inter-op 1, sequential execution) and, because
the crop / resize of the loops run in OpenCV, ``cv2.setNumThreads`` as the OpenCV peers do.

:func:`with_fixed_hw` rewrites the declared spatial size of one input (and outputs) of an ONNX file
without the ``onnx`` package: the NanoTrack v3 backbone is exported with a fixed 255x255 input, while
the reference tracker runs the same backbone on the 127x127 exemplar crop (template features 8x8). The
graph itself is fully convolutional (its Reshape nodes only flatten the 1x1 squeeze-excite vectors), so
only the declared shape blocks ONNX Runtime; OpenCV's TrackerNano runs the same file on both sizes.
"""
from __future__ import annotations

import os
from pathlib import Path
from collections.abc import Iterator, Sequence

# ----------------------------------------------------------------- minimal protobuf wire-format edit
# ONNX field numbers (onnx/onnx.proto3): ModelProto.graph = 7; GraphProto.input = 11, output = 12;
# ValueInfoProto.name = 1, type = 2; TypeProto.tensor_type = 1; TypeProto.Tensor.shape = 2;
# TensorShapeProto.dim = 1; Dimension.dim_value = 1.
_MODEL_GRAPH, _GRAPH_INPUT, _GRAPH_OUTPUT = 7, 11, 12
_VI_NAME, _VI_TYPE, _TYPE_TENSOR, _TENSOR_SHAPE, _SHAPE_DIM, _DIM_VALUE = 1, 2, 1, 2, 1, 1
_LEN = 2  # wire type of length-delimited fields


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    n = shift = 0
    while True:
        c = buf[i]
        i += 1
        n |= (c & 0x7F) << shift
        shift += 7
        if c < 0x80:
            return n, i


def _enc_varint(n: int) -> bytes:
    out = bytearray()
    while True:
        c, n = n & 0x7F, n >> 7
        out.append(c | 0x80 if n else c)
        if not n:
            return bytes(out)


def _fields(buf: bytes) -> Iterator[tuple[int, int, int, int, int]]:
    """(field number, wire type, start of the key, start of the value, end of the field)."""
    i = 0
    while i < len(buf):
        start = i
        key, i = _varint(buf, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            _, end = _varint(buf, i)
        elif wire == 1:
            end = i + 8
        elif wire == 5:
            end = i + 4
        elif wire == _LEN:
            size, i = _varint(buf, i)
            end = i + size
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield field, wire, start, i, end
        i = end


def _edit(buf: bytes, field: int, fn) -> bytes:
    """``buf`` with the payload of every length-delimited ``field`` replaced by ``fn(payload)``."""
    out = bytearray()
    for f, wire, start, value, end in _fields(buf):
        if f == field and wire == _LEN:
            new = fn(bytes(buf[value:end]))
            out += _enc_varint((field << 3) | _LEN) + _enc_varint(len(new)) + new
        else:
            out += buf[start:end]
    return bytes(out)


def _dim(value: int) -> bytes:
    body = _enc_varint(_DIM_VALUE << 3) + _enc_varint(value)
    return _enc_varint((_SHAPE_DIM << 3) | _LEN) + _enc_varint(len(body)) + body


def _set_hw(shape: bytes, h: int, w: int) -> bytes:
    dims = [shape[s:e] for f, _, s, _, e in _fields(shape) if f == _SHAPE_DIM]
    if len(dims) != 4:
        raise ValueError(f"expected a 4-D NCHW tensor, got {len(dims)} dims")
    return dims[0] + dims[1] + _dim(h) + _dim(w)


def _value_info_name(vi: bytes) -> str:
    for f, wire, _, value, end in _fields(vi):
        if f == _VI_NAME and wire == _LEN:
            return vi[value:end].decode()
    return ""


def with_fixed_hw(model: str | os.PathLike | bytes, sizes: dict[str, tuple[int, int]]) -> bytes:
    """The ONNX file with the declared H, W of the named graph inputs / outputs set to ``sizes[name]``.

    Only the declared shapes change (the weights and nodes are copied byte for byte). Raises ValueError
    when a name is not a 4-D input or output of the graph.
    """
    raw = model if isinstance(model, bytes) else Path(model).read_bytes()
    seen = set()

    def value_info(vi: bytes) -> bytes:
        name = _value_info_name(vi)
        if name not in sizes:
            return vi
        seen.add(name)
        h, w = sizes[name]
        return _edit(vi, _VI_TYPE, lambda t: _edit(t, _TYPE_TENSOR, lambda tt: _edit(
            tt, _TENSOR_SHAPE, lambda s: _set_hw(s, h, w))))

    out = _edit(raw, _MODEL_GRAPH, lambda g: _edit(_edit(g, _GRAPH_INPUT, value_info), _GRAPH_OUTPUT, value_info))
    missing = set(sizes) - seen
    if missing:
        raise ValueError(f"no graph input/output named {', '.join(sorted(missing))}")
    return out


# ------------------------------------------------------------------------------------------ sessions
def set_threads(threads: int | None) -> None:
    """OpenCV's thread count (crop / resize of the loops), as :func:`.peers.make_peer` does for cv2 peers."""
    if threads is not None:
        import cv2

        cv2.setNumThreads(int(threads))


def session(model: str | os.PathLike | bytes, threads: int | None = None):
    """An ONNX Runtime CPU session: ``threads`` intra-op threads (None: ORT default), inter-op 1,
    sequential execution, full graph optimisation."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    if threads is not None:
        so.intra_op_num_threads = max(1, int(threads))
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    src = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(src, sess_options=so, providers=["CPUExecutionProvider"])


def input_shapes(sess) -> dict[str, Sequence]:
    return {i.name: list(i.shape) for i in sess.get_inputs()}
