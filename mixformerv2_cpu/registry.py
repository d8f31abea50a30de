"""Model registry: names -> manifests. A model is a registered name, an export folder, or a manifest.

Registered models are the ones shipped in the package (``mixformerv2_cpu.zoo``,
``registry.json``) plus export folders under ``$MIXFORMERV2_MODELS`` (each sub-folder with one
manifest registers under the manifest's name).
"""
from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path

from .errors import ModelFileError
from .formats import SUFFIXES, WEIGHTS_SUFFIX
from .manifest import MANIFEST_SUFFIX, Manifest, read_manifest, sha256_of

MODEL_FILE_SUFFIXES = (*SUFFIXES.values(), ".bin", WEIGHTS_SUFFIX)

DEFAULT_MODEL = "default"
ENV_MODELS = "MIXFORMERV2_MODELS"


def _zoo() -> Path:
    return Path(str(resources.files("mixformerv2_cpu.zoo")))


def _registry() -> dict[str, tuple[Path, str | None]]:
    """name -> (manifest path, its sha256 from registry.json or None for $MIXFORMERV2_MODELS folders)."""
    reg: dict[str, tuple[Path, str | None]] = {}
    reg_file = _zoo() / "registry.json"
    if reg_file.is_file():
        for name, entry in json.loads(reg_file.read_text()).get("models", {}).items():
            reg[name] = (_zoo() / entry["manifest"], entry.get("sha256"))
    extra = os.environ.get(ENV_MODELS)
    if extra and Path(extra).is_dir():
        for sub in sorted(Path(extra).iterdir()):
            found = sorted(sub.glob(f"*{MANIFEST_SUFFIX}")) if sub.is_dir() else []
            if len(found) == 1:
                reg.setdefault(read_manifest(found[0]).name, (found[0], None))
    return reg


def list_models() -> list[str]:
    """Registered model names."""
    return sorted(_registry())


def find_manifest(folder: Path) -> Path:
    found = sorted(folder.glob(f"*{MANIFEST_SUFFIX}"))
    if not found:
        raise ModelFileError(f"{folder} holds no *{MANIFEST_SUFFIX}: not a complete mixformerv2-export folder "
                             "(an interrupted or failed export leaves none)")
    if len(found) > 1:
        raise ModelFileError(f"{folder} holds several manifests ({', '.join(p.name for p in found)}); "
                             "pass one of them as the model")
    return found[0]


def _manifest_listing(path: Path) -> Manifest:
    """The manifest beside a graph/weights file that lists it (a model given by one of its files)."""
    for candidate in sorted(path.parent.glob(f"*{MANIFEST_SUFFIX}")):
        manifest = read_manifest(candidate)
        if manifest.lists(path):
            return manifest
    raise ModelFileError(f"{path} is a model file, but no *{MANIFEST_SUFFIX} beside it lists it; pass the export "
                         "folder or its manifest (written by mixformerv2-export)")


def resolve_model(model: str | os.PathLike | None) -> Manifest:
    """A registered name, an export folder, a manifest file or one of the export's files (e.g.
    ``x.search.onnx``) -> its Manifest. None = the default model."""
    name = DEFAULT_MODEL if model is None else model
    reg = _registry()
    if isinstance(name, str) and name in reg:
        path, digest = reg[name]
        if digest is not None and (not path.is_file() or sha256_of(path) != digest):
            raise ModelFileError(f"registered model {name!r}: {path} is missing or does not match the registry's "
                                 "sha256; reinstall the package")
        return read_manifest(path)
    path = Path(name)
    if path.is_dir():
        return read_manifest(find_manifest(path))
    if path.is_file() and not path.name.endswith(MANIFEST_SUFFIX) and path.suffix in MODEL_FILE_SUFFIXES:
        return _manifest_listing(path)
    if path.is_file():
        return read_manifest(path)
    if model is None:
        raise ModelFileError("no default model is installed in this package; pass model=<export folder or manifest> "
                             "(see README: mixformerv2-export)")
    raise ModelFileError(f"model {str(name)!r} is neither a registered name ({', '.join(sorted(reg)) or 'none'}) "
                         "nor an existing export folder or manifest")
