"""Checkpoint -> verified export folder (ONNX graphs sharing one weights file, manifest last)."""
from __future__ import annotations

import copy
import dataclasses
import logging
import os
import shutil
import tempfile
from pathlib import Path

from mixformerv2_cpu.formats import ROLES
from mixformerv2_cpu.manifest import MANIFEST_SUFFIX, write_manifest
from mixformerv2_cpu.metadata import box_scale_problem

from .checkpoint import load_model
from .graphs import graph_metadata
from .network import MixFormerV2
from .shared_weights import share_weights
from .to_onnx import export_onnx
from .verify import max_abs_diffs

log = logging.getLogger(__name__)


class ExportError(RuntimeError):
    """The export could not be completed; nothing complete-looking was left behind."""


def _prepare_out(out: Path) -> Path:
    try:
        out.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=".partial-", dir=out))
    except OSError as exc:
        raise ExportError(f"output folder {out} is not writable: {exc.strerror or exc}") from exc


def export_model(model: MixFormerV2, variant: str, out: str | os.PathLike, name: str, tolerance: float = 1e-4,
                 int8_source: list[Path] | None = None, int8_samples: int = 300,
                 extra: dict | None = None, box_scale: float = 1.0) -> Path:
    """Export every graph of ``model`` to ONNX under ``out`` (one shared ``<name>.weights`` file, read
    by both backends), check each file on ONNX Runtime and OpenVINO, and write the manifest. A model
    with a convolutional stem is exported taking raw BGR crops (``input_format`` "bgr_nhwc_raw" in the
    metadata; ``model`` itself is not changed).
    ``box_scale`` (metadata, see ModelMetadata): the reported-box size calibration of a trained model;
    1.0 keeps the reference boxes.

    Work happens in a hidden ``.partial-*`` folder; files move into ``out`` only after every
    check passed, and the manifest is written last. Returns the manifest path.
    """
    problem = box_scale_problem(box_scale)
    if problem:
        raise ExportError(problem)
    model = copy.deepcopy(model).eval()
    model.take_raw_input()  # a convolutional stem's graphs take raw BGR (B,H,W,3) crops (stem.py)
    out = Path(out)
    tmp = _prepare_out(out)
    try:
        graphs: dict[str, dict[str, dict[str, str]]] = {"fp32": {"onnx": {}}}
        paths = []
        for role in ROLES:
            meta = graph_metadata(model, variant, role, box_scale=box_scale)
            paths.append(export_onnx(model, role, tmp / f"{name}.{role}.onnx", meta))
            graphs["fp32"]["onnx"][role] = paths[-1].name
        weights = share_weights(paths, name)
        verification: dict[str, dict[str, float]] = {}
        for role, path in zip(ROLES, paths):
            for backend in ("onnxruntime", "openvino"):
                verification[f"{path.name} ({backend})"] = max_abs_diffs(model, role, path, backend)
        worst = max((d, f, o) for f, per in verification.items() for o, d in per.items())
        for fname, per in verification.items():
            log.info("parity %-40s %s", fname, "  ".join(f"{k}={v:.2e}" for k, v in per.items()))
        if worst[0] > tolerance:
            raise ExportError(f"parity check failed: {worst[1]} output {worst[2]!r} differs from PyTorch by "
                              f"{worst[0]:.3g} > {tolerance:g}; no manifest written")
        extra = {"verification": {"tolerance": tolerance, "max_abs_diff": verification}, **(extra or {})}
        if int8_source:
            from .quantize import quantize_int8

            fp32_files = {role: tmp / graphs["fp32"]["onnx"][role] for role in ("template", "search")}
            int8, extra["int8_report"] = quantize_int8(tmp, name, fp32_files, int8_source, int8_samples)
            if int8:
                graphs["int8"] = int8
        stale = out / f"{name}{MANIFEST_SUFFIX}"
        stale.unlink(missing_ok=True)  # an older export of this name stops looking complete first
        for f in tmp.iterdir():
            f.replace(out / f.name)
        manifest = write_manifest(out, name, variant, graph_metadata(model, variant, "full", box_scale=box_scale),
                                  graphs, extra,
                                  data_files=(weights.name,))
        return manifest
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def export_checkpoint(checkpoint: str | os.PathLike, out: str | os.PathLike, variant: str | None = None,
                      name: str | None = None, allow_unsafe_pickle: bool = False,
                      keep_search_tokens: int | None = None, prune_after: int = 0, **kwargs) -> Path:
    """Load an official-layout checkpoint and export it (see :func:`export_model`). ``keep_search_tokens``
    (with ``prune_after``) sets the exported graphs' search-token pruning (``ModelConfig``; 0 turns off
    what the checkpoint's own configuration asks for; None keeps that)."""
    model, detected = load_model(checkpoint, variant, allow_unsafe_pickle)
    if keep_search_tokens is not None:
        try:
            model.cfg = dataclasses.replace(model.cfg, keep_search_tokens=keep_search_tokens, prune_after=prune_after)
        except ValueError as exc:
            raise ExportError(f"token pruning: {exc}") from exc
    return export_model(model, detected, out, name or f"mixformerv2_{detected}", **kwargs)
