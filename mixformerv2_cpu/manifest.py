"""The JSON manifest beside an export: which graph files exist, their sha256, the metadata.

Layout::

    {"format": "mixformerv2-cpu", "format_version": 1, "name": ..., "variant": ...,
     "metadata": {...ModelMetadata strings of the full graph...},
     "graphs": {"fp32": {"onnx": {"full": "x.full.onnx", "template": ..., "search": ...},
                         "openvino": {"full": "x.full.xml", ...}},
                "int8": {"openvino": {"template": ..., "search": ...}}},
     "files": {"x.full.onnx": {"sha256": ..., "bytes": ...}, ...},
     "verification": {...}, "int8_report": {...}}

A manifest is written last, only after every file passed verification: a folder without
one is not a complete export.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ModelFileError
from .metadata import FORMAT, FORMAT_VERSION

MANIFEST_SUFFIX = ".manifest.json"


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class Manifest:
    path: Path
    data: dict[str, Any]

    @property
    def folder(self) -> Path:
        return self.path.parent

    @property
    def name(self) -> str:
        return self.data["name"]

    @property
    def variant(self) -> str:
        return self.data["variant"]

    def precisions(self) -> list[str]:
        return sorted(self.data["graphs"])

    def graph_path(self, precision: str, fmt: str, role: str) -> Path:
        """Path of one graph file; errors list what the manifest does have."""
        graphs = self.data["graphs"]
        if precision not in graphs:
            raise ModelFileError(f"{self.path}: no {precision!r} graphs; available precisions: {sorted(graphs)}")
        if fmt not in graphs[precision]:
            raise ModelFileError(f"{self.path}: no {fmt} files for {precision}; available: {sorted(graphs[precision])}")
        files = graphs[precision][fmt]
        if role not in files:
            raise ModelFileError(f"{self.path}: no {role!r} graph in {precision}/{fmt}; available: {sorted(files)}")
        return self.folder / files[role]

    def verify_file(self, path: Path) -> None:
        """Check a file named by the manifest (and an IR's .bin) against its sha256."""
        for p in ([path, path.with_suffix(".bin")] if path.suffix == ".xml" else [path]):
            entry = self.data["files"].get(p.name)
            if entry is None:
                raise ModelFileError(f"{self.path}: {p.name} is not listed in the manifest")
            if not p.is_file():
                raise ModelFileError(f"model file missing: {p} (listed in {self.path.name})")
            if p.stat().st_size != entry["bytes"] or sha256_of(p) != entry["sha256"]:
                raise ModelFileError(f"model file {p} does not match the sha256 in {self.path.name}: "
                                     "corrupt or modified; export it again")


def read_manifest(path: str | Path) -> Manifest:
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ModelFileError(f"manifest not found: {path}") from exc
    except (OSError, ValueError) as exc:
        raise ModelFileError(f"cannot read manifest {path}: {exc}") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ModelFileError(f"{path} is not a {FORMAT} manifest")
    if int(data.get("format_version", 0)) > FORMAT_VERSION:
        raise ModelFileError(f"{path}: format_version {data.get('format_version')} is newer than this runtime "
                             f"supports ({FORMAT_VERSION})")
    for key in ("name", "variant", "graphs", "files"):
        if key not in data:
            raise ModelFileError(f"{path}: manifest key {key!r} is missing")
    return Manifest(path, data)


def write_manifest(folder: Path, name: str, variant: str, metadata: dict[str, str],
                   graphs: dict[str, dict[str, dict[str, str]]], extra: dict[str, Any] | None = None) -> Path:
    """Hash every graph file (and IR .bin) and write ``<name>.manifest.json`` last."""
    files = {}
    for per_fmt in graphs.values():
        for roles in per_fmt.values():
            for rel in roles.values():
                p = folder / rel
                for q in ([p, p.with_suffix(".bin")] if p.suffix == ".xml" else [p]):
                    files[q.name] = {"sha256": sha256_of(q), "bytes": q.stat().st_size}
    data = {"format": FORMAT, "format_version": FORMAT_VERSION, "name": name, "variant": variant,
            "metadata": metadata, "graphs": graphs, "files": files, **(extra or {})}
    out = folder / f"{name}{MANIFEST_SUFFIX}"
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    tmp.replace(out)
    return out
