"""Inference engine: the graphs of one model on one backend, behind three calls.

The tracker never talks to a backend directly. ``graphs="cached"`` (default) loads the
template encoder and the search step; ``graphs="full"`` loads the single full graph and
re-runs the templates every frame (the way public ports run MixFormerV2; kept as a baseline
and as a cross-check).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from .auto import AUTO, Choice, choose, time_interleaved
from .backends import Graph, check_backend, load_graph
from .errors import BackendError, ModelFileError, SettingError
from .formats import GRAPH_MODES, PRECISIONS, file_precision, readable_formats
from .manifest import Manifest
from .metadata import ModelMetadata
from .preprocess import input_shape
from .registry import resolve_model


def check_threads(threads: object) -> int | None:
    """None (the backend's default) or an int >= 1; anything else is a SettingError."""
    if threads is None:
        return None
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1:
        raise SettingError(f"threads must be an int >= 1 or None, got {threads!r}")
    return int(threads)


@dataclass
class TemplateState:
    """What the search step needs about the templates of a batch of targets.

    ``template``/``online``: the crops as network inputs ((B,3,T,T) or (B,T,T,3), the model's
    ``input_format``); ``kv``: cached keys/values
    (B, depth, 2, heads, 2*Nt, head_dim), None in full-graph mode.
    """

    template: np.ndarray
    online: np.ndarray
    kv: np.ndarray | None


def agreed_metadata(graphs: dict[str, Graph]) -> ModelMetadata:
    """The metadata every graph of one model shares (all keys but ``role``), or ModelFileError naming
    the first key on which two graph files disagree."""
    (first_role, first), *others = graphs.items()
    ours = first.metadata.to_strings()
    for role, graph in others:
        theirs = graph.metadata.to_strings()
        for key, value in ours.items():
            if key != "role" and theirs[key] != value:
                raise ModelFileError(f"the model's graphs disagree on metadata {key!r}: {first_role} graph "
                                     f"{value!r}, {role} graph {theirs[key]!r} (re-export the model)")
    return first.metadata


class Engine:
    """The graphs of one model on one backend and precision. ``backend``/``precision`` may be "auto"
    (the default of the trackers): the fastest verified combination here (see ``auto.py``)."""

    def __init__(self, model: str | os.PathLike | None = None, backend: str = AUTO, threads: int | None = None,
                 precision: str = AUTO, graphs: str = "cached") -> None:
        if not isinstance(graphs, str) or graphs not in GRAPH_MODES:
            raise SettingError(f"graphs must be one of {', '.join(GRAPH_MODES)}, got {graphs!r}")
        if not isinstance(precision, str) or precision not in (AUTO, *PRECISIONS):
            raise BackendError(f"unknown precision {precision!r}; expected one of: {AUTO}, {', '.join(PRECISIONS)}")
        if backend != AUTO:
            check_backend(backend)
        threads = check_threads(threads)
        self.manifest: Manifest = resolve_model(model)
        self.manifest.verify_all()
        self.threads_allowed, self.threads, self.mode = threads, threads, graphs
        self.choice: Choice | None = None
        self._tried: dict[tuple[str, str, int | None], dict[str, Graph]] = {}
        if AUTO in (backend, precision) or (threads is not None and threads > 1):
            self.choice = choose(self.manifest, backend, precision, threads, self._trial)
            backend, precision, self.threads = self.choice.backend, self.choice.precision, self.choice.threads
        self.backend, self.precision = backend, precision
        # the graphs a trial just loaded and timed are the ones to run (no second load and compilation)
        tried, self._tried = self._tried.pop((backend, precision, self.threads), None), {}
        self.graphs = tried or self._load(backend, precision, self.threads)
        self.meta: ModelMetadata = agreed_metadata(self.graphs)

    def _load(self, backend: str, precision: str, threads: int | None = None) -> dict[str, Graph]:
        graphs = {}
        for role in GRAPH_MODES[self.mode]:
            path = self.manifest.graph_path(file_precision(precision), readable_formats(backend, precision), role)
            graph = load_graph(backend, path, threads, bf16=precision == "bf16", occasional=role == "template")
            if graph.metadata.role != role:
                raise ModelFileError(f"{path}: metadata says role {graph.metadata.role!r}, expected {role!r}")
            graphs[role] = graph
        return graphs

    def _trial(self, options: list[tuple[str, str, int | None]]) -> dict[tuple[str, str, int | None], float]:
        """ms of this mode's per-frame graph call for each (backend, precision, threads) option, all
        loaded and timed interleaved on fixed inputs (for the automatic choice). The loaded graphs stay
        in ``_tried`` until the engine takes the chosen option's."""
        self._tried = {o: self._load(*o) for o in options}
        return time_interleaved({o: self._per_frame_call(g) for o, g in self._tried.items()})

    def _per_frame_call(self, graphs: dict[str, Graph]):
        """A no-argument call of this mode's per-frame graph on fixed inputs."""
        meta = next(iter(graphs.values())).metadata
        rng = np.random.default_rng(0)
        t = rng.standard_normal((1, *input_shape(meta.input_format, meta.template_size))).astype(np.float32)
        s = rng.standard_normal((1, *input_shape(meta.input_format, meta.search_size))).astype(np.float32)
        if self.mode == "full":
            return lambda: graphs["full"]({"template": t, "online_template": t, "search": s})
        kv = graphs["template"]({"template": t, "online_template": t})["template_kv"]
        return lambda: graphs["search"]({"search": s, "template_kv": kv})

    @property
    def description(self) -> str:
        """What runs, e.g. "openvino fp32, 2 threads, cached graphs (auto: ...)"."""
        if self.threads is None:
            threads = "the backend's default threads"
        else:
            threads = f"{self.threads} thread{'s' if self.threads > 1 else ''}"
            if self.threads_allowed and self.threads_allowed != self.threads:
                threads += f" ({self.threads_allowed} allowed)"
        text = f"{self.backend} {self.precision}, {threads}, {self.mode} graphs"
        return text + (f" ({self.choice.describe()})" if self.choice else "")

    @property
    def variant(self) -> str:
        return self.meta.variant

    def prepare(self, batches: "set[int]") -> None:
        """Make the per-frame graph (search, or full in full-graph mode) ready for these batch sizes,
        so that no tracked frame pays a one-time compilation (OpenVINO; nothing to do for ONNX Runtime)."""
        graph = self.graphs["full" if self.mode == "full" else "search"]
        for batch in sorted(batches):
            graph.prepare(batch)

    def encode_templates(self, template: np.ndarray, online: np.ndarray) -> TemplateState:
        """Encode templates (B, *input_shape) once; in full mode only keep the crops."""
        if self.mode == "full":
            return TemplateState(template, online, None)
        kv = self.graphs["template"]({"template": template, "online_template": online})["template_kv"]
        return TemplateState(template, online, kv)

    def search(self, search: np.ndarray, state: TemplateState) -> tuple[np.ndarray, np.ndarray]:
        """search (B, *input_shape) -> logits (B,4,bins) rows l,t,r,b, score (B,) probabilities."""
        if self.mode == "full":
            out = self.graphs["full"]({"template": state.template, "online_template": state.online, "search": search})
        else:
            out = self.graphs["search"]({"search": search, "template_kv": state.kv})
        return out["logits"], out["score"].reshape(-1)
