"""The JSON manifest beside an export: which graph files exist, their sha256, the metadata.

Layout::

    {"format": "mixformerv2-cpu", "format_version": 1, "name": ..., "variant": ...,
     "metadata": {...ModelMetadata strings of the full graph...},
     "graphs": {"fp32": {"onnx": {"full": "x.full.onnx", "template": ..., "search": ...}},
                "int8": {"openvino": {"template": "x.int8.template.xml", "search": ...}}},
     "files": {"x.full.onnx": {"sha256": ..., "bytes": ...}, "x.weights": {...}, ...},
     "verification": {...}, "int8_report": {...}}

A manifest is written last, only after every file passed verification: a folder without
one is not a complete export. Every file it lists (graphs, IR .bin, shared ONNX weights) is
checked against its size and sha256 when a model is loaded, once per process and file
(:meth:`Manifest.verify_all`), whichever backend reads which file.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ModelFileError
from .formats import side_files
from .metadata import FORMAT, FORMAT_VERSION

MANIFEST_SUFFIX = ".manifest.json"
_VERIFIED: dict[tuple[str, int, int], str] = {}  # (path, size, mtime_ns) -> sha256, per process


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

    def graph_path(self, precision: str, formats: tuple[str, ...], role: str) -> Path:
        """Path of one graph file in the first of ``formats`` the manifest has; errors list what it does have."""
        graphs = self.data["graphs"]
        if precision not in graphs:
            raise ModelFileError(f"{self.path}: no {precision!r} graphs; available precisions: {sorted(graphs)}")
        fmt = next((f for f in formats if f in graphs[precision]), None)
        if fmt is None:
            raise ModelFileError(f"{self.path}: no {' or '.join(formats)} files for {precision}; "
                                 f"available: {sorted(graphs[precision])}")
        files = graphs[precision][fmt]
        if role not in files:
            raise ModelFileError(f"{self.path}: no {role!r} graph in {precision}/{fmt}; available: {sorted(files)}")
        return self.folder / files[role]

    def verify_all(self) -> None:
        """Check every file the manifest lists against its size and sha256 (hashed once per process
        and file version); raises ModelFileError naming the first missing or damaged file."""
        for name, entry in self.data["files"].items():
            p = self.folder / name
            try:
                st = p.stat()
            except OSError:
                raise ModelFileError(f"model file missing: {p} (listed in {self.path.name})") from None
            if st.st_size != entry["bytes"]:
                raise ModelFileError(f"model file {p} has {st.st_size} bytes, {self.path.name} says {entry['bytes']}: "
                                     "truncated or modified; export it again")
            key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
            digest = _VERIFIED.get(key) or sha256_of(p)
            if digest != entry["sha256"]:
                raise ModelFileError(f"model file {p} does not match the sha256 in {self.path.name}: "
                                     "corrupt or modified; export it again")
            _VERIFIED[key] = digest

    def lists(self, path: Path) -> bool:
        """Whether ``path`` is one of this manifest's files."""
        return path.parent.resolve() == self.folder.resolve() and path.name in self.data["files"]


def read_manifest(path: str | Path) -> Manifest:
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ModelFileError(f"manifest not found: {path}") from exc
    except UnicodeDecodeError:
        raise ModelFileError(f"{path} is not a manifest (not a JSON text file); pass an export folder, its "
                             f"*{MANIFEST_SUFFIX} or a registered model name") from None
    except ValueError as exc:
        raise ModelFileError(f"{path} is not a manifest (invalid JSON: {exc}); pass an export folder, its "
                             f"*{MANIFEST_SUFFIX} or a registered model name") from None
    except OSError as exc:
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
                   graphs: dict[str, dict[str, dict[str, str]]], extra: dict[str, Any] | None = None,
                   data_files: tuple[str, ...] = ()) -> Path:
    """Hash every graph file, its side files (IR .bin) and ``data_files`` (shared ONNX weights) and
    write ``<name>.manifest.json`` last."""
    files = {}
    paths = [folder / rel for per_fmt in graphs.values() for roles in per_fmt.values() for rel in roles.values()]
    for p in paths + [q for p in paths for q in side_files(p)] + [folder / d for d in data_files]:
        files[p.name] = {"sha256": sha256_of(p), "bytes": p.stat().st_size}
    data = {"format": FORMAT, "format_version": FORMAT_VERSION, "name": name, "variant": variant,
            "metadata": metadata, "graphs": graphs, "files": files, **(extra or {})}
    out = folder / f"{name}{MANIFEST_SUFFIX}"
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    tmp.replace(out)
    return out
