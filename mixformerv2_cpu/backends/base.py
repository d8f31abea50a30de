"""The one interface every backend implements: load a graph file, run feeds -> outputs."""
from __future__ import annotations

from pathlib import Path
from typing import Protocol
from collections.abc import Mapping

import numpy as np

from ..metadata import ModelMetadata


class Graph(Protocol):
    """A loaded graph. ``__call__`` maps input names to arrays and returns output arrays by name."""

    path: Path
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    metadata: ModelMetadata

    def __call__(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    def prepare(self, batch: int) -> None:
        """Do now the one-time work of the first call with ``batch`` inputs (OpenVINO compiles a
        static shape per batch size: 0.2-0.7 s), so that call costs only its inference."""


def check_feeds(graph: Graph, feeds: Mapping[str, np.ndarray]) -> None:
    missing = set(graph.input_names) - set(feeds)
    if missing:
        raise KeyError(f"{graph.path.name}: missing inputs {sorted(missing)}; the graph takes {graph.input_names}")
