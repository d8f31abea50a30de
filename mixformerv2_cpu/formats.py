"""The format table: graph roles x file formats x backends x precisions, in one place.

Export, verification, the manifest, the registry and the backends all read this module.

| file format | suffix | side files | metadata lives in | read by backends |
|---|---|---|---|---|
| ``onnx`` | ``.onnx`` | external weights (``<name>.weights``, shared by the graphs of one export) | ``metadata_props`` | onnxruntime, openvino |
| ``openvino`` | ``.xml`` | ``.bin`` | ``rt_info['mixformerv2']`` | openvino |

Precisions: ``fp32`` (ONNX files, every backend), ``int8`` (the export's int8 graphs that passed its
accuracy gate: dynamic int8 ONNX with 7-bit weights, run by ONNX Runtime, and NNCF OpenVINO IR, run by OpenVINO),
``bf16`` (the fp32 files computed in bfloat16 by OpenVINO on CPUs with AVX512-BF16/AMX).
"""
from __future__ import annotations

from pathlib import Path

ROLES = ("full", "template", "search")  # graph kinds: the reference pass, the template encoder, the search step
RUNTIME_ROLES = ("template", "search")  # what graphs="cached" (the default) loads
GRAPH_MODES = {"cached": RUNTIME_ROLES, "full": ("full",)}
SUFFIXES = {"onnx": ".onnx", "openvino": ".xml"}
RT_SECTION = "mixformerv2"  # rt_info section of our metadata in OpenVINO IR
WEIGHTS_SUFFIX = ".weights"  # ONNX external data shared by the graphs of one export
# backend -> (module under mixformerv2_cpu.backends, class, file formats it reads in order of preference)
BACKENDS = {
    "openvino": ("openvino", "OpenVinoGraph", ("openvino", "onnx")),
    "onnxruntime": ("onnxruntime", "OrtGraph", ("onnx",)),
}
PRECISIONS = ("fp32", "int8", "bf16")
# an int8 file is only run by the backend its accuracy was measured on (export/quantize.py)
INT8_READER = {"onnx": "onnxruntime", "openvino": "openvino"}


def file_precision(precision: str) -> str:
    """The precision of the files a precision runs: bf16 computes the fp32 files in bfloat16."""
    return "fp32" if precision == "bf16" else precision


def readable_formats(backend: str, precision: str) -> tuple[str, ...]:
    """File formats ``backend`` may run at ``precision``, in order of preference: every format it reads,
    except that int8 files run only on the backend that measured them (ONNX Runtime's dynamic int8 ONNX
    is not run by OpenVINO, whose own int8 is IR)."""
    formats = BACKENDS[backend][2]
    if file_precision(precision) == "int8":
        return tuple(f for f in formats if INT8_READER.get(f) == backend)
    return formats


def format_of(path: Path) -> str:
    """'onnx' or 'openvino' from a graph file's suffix; ValueError for anything else."""
    for fmt, suffix in SUFFIXES.items():
        if path.suffix == suffix:
            return fmt
    raise ValueError(f"{path}: not a graph file (expected one of {', '.join(SUFFIXES.values())})")


def side_files(path: Path) -> list[Path]:
    """Files a graph file needs beside it that are not named by the manifest's graph table (IR .bin)."""
    return [path.with_suffix(".bin")] if path.suffix == SUFFIXES["openvino"] else []
