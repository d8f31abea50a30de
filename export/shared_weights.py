"""One copy of the weights for all graphs of an export: ONNX external data shared between files.

The template encoder, the search step and the full graph hold mostly the same tensors. Every
initializer of at least ``MIN_BYTES`` is stored once (by content) in ``<name>.weights`` and each
graph refers to it by offset and length (ONNX external data, read by ONNX Runtime and OpenVINO
alike). Small tensors stay inside the graph files.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import onnx
from onnx import numpy_helper

from mixformerv2_cpu.formats import WEIGHTS_SUFFIX

MIN_BYTES = 1024
ALIGN = 64


def share_weights(onnx_paths: list[Path], name: str) -> Path:
    """Rewrite ``onnx_paths`` (self-contained files in one folder) to share ``<name>.weights``; returns its path."""
    folder = onnx_paths[0].parent
    weights = folder / f"{name}{WEIGHTS_SUFFIX}"
    offsets: dict[str, tuple[int, int]] = {}
    protos = [onnx.load(str(p)) for p in onnx_paths]
    with open(weights, "wb") as blob:
        for proto in protos:
            for tensor in proto.graph.initializer:
                data = numpy_helper.to_array(tensor).tobytes()
                if len(data) < MIN_BYTES:
                    continue
                key = hashlib.sha256(data).hexdigest() + str(tensor.data_type)
                if key not in offsets:
                    pad = -blob.tell() % ALIGN
                    blob.write(b"\0" * pad)
                    offsets[key] = (blob.tell(), len(data))
                    blob.write(data)
                offset, length = offsets[key]
                for field in ("raw_data", "float_data", "int32_data", "int64_data", "double_data"):
                    tensor.ClearField(field)
                del tensor.external_data[:]
                for k, v in (("location", weights.name), ("offset", str(offset)), ("length", str(length))):
                    entry = tensor.external_data.add()
                    entry.key, entry.value = k, v
                tensor.data_location = onnx.TensorProto.EXTERNAL
    for proto, path in zip(protos, onnx_paths):
        onnx.save(proto, str(path))
        onnx.checker.check_model(str(path))
    return weights
