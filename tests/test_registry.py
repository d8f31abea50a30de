"""Model resolution: registry names (with sha256), $MIXFORMERV2_MODELS folders, export folders, manifests."""
from __future__ import annotations

import json
import shutil

import pytest

from mixformerv2_cpu import ModelFileError, registry
from mixformerv2_cpu.manifest import sha256_of


def _manifest(folder):
    return next(folder.glob("*.manifest.json"))


def test_folder_and_manifest_resolve_to_the_same_model(export_small):
    assert registry.resolve_model(export_small).path == registry.resolve_model(_manifest(export_small)).path


def test_env_folder_registers_by_manifest_name(export_small, tmp_path, monkeypatch):
    shutil.copytree(export_small, tmp_path / "anything")
    monkeypatch.setenv(registry.ENV_MODELS, str(tmp_path))
    assert "mixformerv2_small" in registry.list_models()
    assert registry.resolve_model("mixformerv2_small").variant == "small"


def test_registry_sha256_is_checked(export_small, tmp_path, monkeypatch):
    zoo = tmp_path / "zoo"
    shutil.copytree(export_small, zoo / "s")
    rel = f"s/{_manifest(export_small).name}"
    good = {"models": {"default": {"manifest": rel, "sha256": sha256_of(zoo / rel)}}}
    (zoo / "registry.json").write_text(json.dumps(good))
    monkeypatch.setattr(registry, "_zoo", lambda: zoo)
    assert registry.resolve_model(None).variant == "small" and registry.list_models() == ["default"]
    good["models"]["default"]["sha256"] = "0" * 64
    (zoo / "registry.json").write_text(json.dumps(good))
    with pytest.raises(ModelFileError, match="does not match the registry's sha256"):
        registry.resolve_model("default")


def test_incomplete_export_is_not_a_model(tmp_path):
    (tmp_path / "x.search.onnx").write_bytes(b"")
    with pytest.raises(ModelFileError, match="not a complete mixformerv2-export folder"):
        registry.resolve_model(tmp_path)
