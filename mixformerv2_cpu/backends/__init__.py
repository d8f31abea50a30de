"""Backends: thin classes that load one graph file and run it (see ``base.Graph``).

Which backend reads which file formats is in the format table (``mixformerv2_cpu.formats``).
"""
from __future__ import annotations

import importlib
from pathlib import Path

from ..errors import BackendError
from ..formats import BACKENDS
from .base import Graph


def backend_formats(name: str) -> tuple[str, ...]:
    """The model-file formats a backend reads, in order of preference."""
    check_backend(name)
    return BACKENDS[name][2]


def check_backend(name: object) -> str:
    if not isinstance(name, str) or name not in BACKENDS:
        raise BackendError(f"unknown backend {name!r}; expected one of: {', '.join(BACKENDS)}")
    return name


def load_graph(backend: str, path: str | Path, threads: int | None = None, bf16: bool = False,
               occasional: bool = False) -> Graph:
    """Load one graph file with the named backend. ``bf16``: compute in bfloat16 (OpenVINO on CPUs
    with AVX512-BF16/AMX only; an error elsewhere). ``occasional``: the graph runs now and then
    beside a per-frame graph (the template encoder): its worker threads must not busy-wait for more
    work after a call, or they take a core from the per-frame graph."""
    check_backend(backend)
    module, cls, _ = BACKENDS[backend]
    if bf16 and backend != "openvino":
        raise BackendError(f"bf16 inference needs the openvino backend, got {backend!r}")
    try:
        mod = importlib.import_module(f"{__name__}.{module}")
    except ImportError as exc:
        raise BackendError(f"backend {backend!r} is not available: {exc}") from exc
    if bf16:
        return getattr(mod, cls)(Path(path), threads, occasional=occasional, inference_precision="bf16")
    return getattr(mod, cls)(Path(path), threads, occasional=occasional)


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


__all__ = ["Graph", "available_backends", "backend_formats", "check_backend", "load_graph"]
