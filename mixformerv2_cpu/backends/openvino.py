"""OpenVINO backend: CPU plugin, LATENCY hint, explicit threads, f32 inference precision.

Reads OpenVINO IR (``.xml`` + ``.bin``, metadata in ``rt_info['mixformerv2']``) and ONNX directly
(metadata_props, which OpenVINO exposes under ``rt_info['framework']``), so an export needs only
one copy of its fp32 weights. f32 is set explicitly because on CPUs with AMX/AVX512-BF16 OpenVINO would otherwise run in
bf16 and the boxes would no longer match the reference. A static batch is compiled per batch
size on first use or by :meth:`OpenVinoGraph.prepare` (dynamic shapes are slower on the CPU plugin);
a batch smaller than a compiled one runs padded to the smallest such size instead of compiling its
own (a recompilation costs 0.2-0.7 s: a frozen video; the padding only a few more rows of work).

Inputs are bound to the request as tensors that share the caller's memory and stay bound while the
caller passes the same array again (the tracker's batch buffer and cached keys/values): a call is
then only the inference, without OpenVINO's per-call input dispatch (about 0.1 ms per call on a
2-core EPYC, 4 % of the default model's search step). OpenVINO's CPU threads sleep after a call,
so ``occasional`` needs nothing here.
"""
from __future__ import annotations

from pathlib import Path
from collections.abc import Mapping

import numpy as np
import openvino as ov

from ..errors import BackendError, ModelFileError
from ..formats import RT_SECTION, SUFFIXES
from ..metadata import ModelMetadata
from .base import check_feeds

ONNX_SECTION = "framework"  # where OpenVINO's ONNX reader puts metadata_props
_CORE: ov.Core | None = None


def _core() -> ov.Core:
    global _CORE
    if _CORE is None:
        _CORE = ov.Core()
    return _CORE


def read_rt_metadata(model: ov.Model, source: str) -> ModelMetadata:
    """Our metadata from an IR's ``rt_info['mixformerv2']`` or an ONNX file's metadata_props."""
    props = {}
    for section in (RT_SECTION, ONNX_SECTION):
        if model.has_rt_info([section]):
            for key in model.get_rt_info([section]).astype(dict):
                props[key] = model.get_rt_info([section, key]).astype(str)
            break
    return ModelMetadata.from_strings(props, source)


class OpenVinoGraph:
    def __init__(self, path: Path, threads: int | None = None, occasional: bool = False,
                 inference_precision: str = "f32") -> None:
        self.path = Path(path)
        if not self.path.is_file() or (self.path.suffix == SUFFIXES["openvino"]
                                       and not self.path.with_suffix(".bin").is_file()):
            raise ModelFileError(f"model file not found: {self.path}"
                                 + (" (and its .bin beside it)" if self.path.suffix == ".xml" else ""))
        model = self._read()
        self.metadata = read_rt_metadata(model, str(self.path))
        self.input_names = tuple(p.get_any_name() for p in model.inputs)
        self.output_names = tuple(p.get_any_name() for p in model.outputs)
        if inference_precision == "bf16" and "BF16" not in _core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
            raise BackendError("bf16 inference needs a CPU with AVX512-BF16 or AMX; this one has none (use fp32)")
        self.config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": inference_precision}
        if threads:
            self.config["INFERENCE_NUM_THREADS"] = int(threads)
        self._requests: dict[int, ov.InferRequest] = {}
        # (batch, input) -> (the caller's array kept bound there or None, the memory the request reads)
        self._bound: dict[tuple[int, str], tuple[np.ndarray | None, np.ndarray]] = {}
        self._padded: dict[tuple[int, str], np.ndarray] = {}  # (compiled batch, input) -> padding buffer

    def _read(self) -> ov.Model:
        try:
            return _core().read_model(str(self.path))
        except Exception as exc:  # noqa: BLE001 - OpenVINO raises RuntimeError subclasses
            raise ModelFileError(f"OpenVINO cannot read {self.path}: {str(exc).splitlines()[0]}") from exc

    def _request(self, batch: int) -> ov.InferRequest:
        """Compiled request for one static batch size. The IR is read again for each new size
        instead of keeping an ov.Model alive: the compiled model holds its own weights, and a
        second copy would cost the model's size in RSS."""
        req = self._requests.get(batch)
        if req is None:
            model = self._read()
            model.reshape({p.get_any_name(): [batch, *list(p.get_partial_shape())[1:]] for p in model.inputs})
            compiled = _core().compile_model(model, "CPU", self.config)
            req = self._requests[batch] = compiled.create_infer_request()
        return req

    def prepare(self, batch: int) -> None:
        """Compile the static shape of ``batch`` now (the tracker does it in ``init``)."""
        self._request(int(batch))

    @property
    def compiled_batches(self) -> set[int]:
        """The batch sizes compiled so far."""
        return set(self._requests)

    def _bind(self, req: ov.InferRequest, batch: int, name: str, array: np.ndarray) -> None:
        """Point input ``name`` at ``array`` (shared memory) unless it already is. Only a C-contiguous
        float32 array is kept bound (its later in-place changes are seen); anything else is bound
        as a converted copy for this call only."""
        bound = self._bound.get((batch, name))
        if bound is not None and bound[0] is array:
            return
        ready = isinstance(array, np.ndarray) and array.dtype == np.float32 and array.flags.c_contiguous
        data = array if ready else np.ascontiguousarray(array, dtype=np.float32)
        req.set_tensor(name, ov.Tensor(data, shared_memory=True))
        self._bound[(batch, name)] = (array if ready else None, data)  # data stays alive while bound

    def _run_batch(self, batch: int) -> int:
        """The compiled batch a call of ``batch`` runs on: its own, else the smallest compiled one above
        it (padded), else ``batch`` (compiled now)."""
        if batch in self._requests:
            return batch
        return min((b for b in self._requests if b > batch), default=batch)

    def _pad(self, run: int, name: str, array: np.ndarray) -> np.ndarray:
        """``array`` (batch, ...) copied into the first rows of the (run, ...) buffer of input ``name``
        (one per compiled size, so it stays bound; the rows after ``batch`` are never read back)."""
        buf = self._padded.get((run, name))
        if buf is None or buf.shape[1:] != array.shape[1:]:
            buf = self._padded[(run, name)] = np.zeros((run, *array.shape[1:]), np.float32)
        buf[: len(array)] = array
        return buf

    def __call__(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        check_feeds(self, feeds)
        batch = int(feeds[self.input_names[0]].shape[0])
        run = self._run_batch(batch)
        req = self._request(run)
        for n in self.input_names:
            self._bind(req, run, n, feeds[n] if run == batch else self._pad(run, n, feeds[n]))
        req.infer(share_outputs=True)
        if run == batch:
            return {n: req.get_tensor(n).data.copy() for n in self.output_names}
        return {n: req.get_tensor(n).data[:batch].copy() for n in self.output_names}
