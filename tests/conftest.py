"""Shared fixtures: the SEED-3 reference checkpoints and their exports, built once per session."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
REFERENCE = SHARED / "reference"
SEQUENCES = SHARED / "data" / "sequences"
SEED = 3


def _make_ckpt(variant: str, out: Path) -> Path:
    subprocess.run([sys.executable, str(REFERENCE / "make_ckpt.py"), variant, str(out), str(SEED)],
                   check=True, capture_output=True)
    return out


@pytest.fixture(scope="session")
def ckpt_small(tmp_path_factory) -> Path:
    return _make_ckpt("small", tmp_path_factory.mktemp("ckpt") / "mixformerv2_small.pth.tar")


@pytest.fixture(scope="session")
def ckpt_base(tmp_path_factory) -> Path:
    return _make_ckpt("base", tmp_path_factory.mktemp("ckpt") / "mixformerv2_base.pth.tar")


@pytest.fixture(scope="session")
def export_small(ckpt_small, tmp_path_factory) -> Path:
    """Folder of the project's export of the SEED-3 small checkpoint (via the CLI)."""
    from mixformerv2_export.cli import main

    out = tmp_path_factory.mktemp("export_small")
    assert main(["--checkpoint", str(ckpt_small), "--variant", "small", "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="session")
def export_base(ckpt_base, tmp_path_factory) -> Path:
    from mixformerv2_export.cli import main

    out = tmp_path_factory.mktemp("export_base")
    assert main(["--checkpoint", str(ckpt_base), "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="session")
def tracker_ref() -> dict:
    return dict(np.load(REFERENCE / "tracker_small.npz"))


def model_ref(variant: str) -> dict:
    return dict(np.load(REFERENCE / f"model_{variant}.npz"))


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)
