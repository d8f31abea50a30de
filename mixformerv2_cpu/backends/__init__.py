"""Backends: thin classes that load one graph file and run it (see ``base.Graph``)."""
from __future__ import annotations

import importlib
from pathlib import Path

from ..errors import BackendError
from .base import Graph

# backend name -> (module, class, file format key in the manifest)
BACKENDS = {
    "openvino": ("openvino", "OpenVinoGraph", "openvino"),
    "onnxruntime": ("onnxruntime", "OrtGraph", "onnx"),
}


def backend_format(name: str) -> str:
    """The model-file format a backend reads ('openvino' IR or 'onnx')."""
    _check(name)
    return BACKENDS[name][2]


def _check(name: str) -> None:
    if name not in BACKENDS:
        raise BackendError(f"unknown backend {name!r}; valid: {', '.join(BACKENDS)}")


def load_graph(backend: str, path: str | Path, threads: int | None = None, bf16: bool = False) -> Graph:
    """Load one graph file with the named backend. ``bf16``: compute in bfloat16 (OpenVINO on CPUs
    with AVX512-BF16/AMX only; an error elsewhere)."""
    _check(backend)
    module, cls, _ = BACKENDS[backend]
    if bf16 and backend != "openvino":
        raise BackendError(f"bf16 inference needs the openvino backend, got {backend!r}")
    try:
        mod = importlib.import_module(f"{__name__}.{module}")
    except ImportError as exc:
        raise BackendError(f"backend {backend!r} is not available: {exc}") from exc
    if bf16:
        return getattr(mod, cls)(Path(path), threads, inference_precision="bf16")
    return getattr(mod, cls)(Path(path), threads)


def available_backends() -> dict[str, str | None]:
    """Backend name -> None if importable, else the reason it is not."""
    out: dict[str, str | None] = {}
    for name, (module, _, _) in BACKENDS.items():
        try:
            importlib.import_module(f"{__name__}.{module}")
            out[name] = None
        except ImportError as exc:
            out[name] = str(exc)
    return out


__all__ = ["BACKENDS", "Graph", "available_backends", "backend_format", "load_graph"]
