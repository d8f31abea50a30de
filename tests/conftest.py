"""Shared fixtures: the SEED-3 reference checkpoints and their exports, built once per session.

The checkpoints come from the tests' own generator (``reference_ckpt.py``), so the suite runs in a
clone without ``../shared``. What cannot ship in the repository (the reference outputs, the
research-use sequences, peer models) is taken from ``../shared`` beside the checkout; tests that
need it skip when it is absent, naming the missing path (:func:`shared`).
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pytest

from reference_ckpt import write_checkpoint

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
REFERENCE = SHARED / "reference"
SEQUENCES = SHARED / "data" / "sequences"
PEERS = SHARED / "data" / "peers"
SEED = 3
# the automatic backend choice caches its timed trials per machine and model: keep the tests' own
os.environ.setdefault("MIXFORMERV2_CACHE_DIR", tempfile.mkdtemp(prefix="mixformerv2-test-cache-"))
SAMPLES = Path(__file__).resolve().parents[1] / "samples"


def shared(path: Path) -> Path:
    """``path`` (under ../shared) if it exists, else skip the calling test naming what is missing."""
    if not path.exists():
        pytest.skip(f"needs {path} (../shared beside the checkout: reference outputs, sequences, peers)")
    return path


def _make_ckpt(variant: str, out: Path) -> Path:
    return write_checkpoint(variant, out, SEED)


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
    return dict(np.load(shared(REFERENCE / "tracker_small.npz")))


def model_ref(variant: str) -> dict:
    return dict(np.load(shared(REFERENCE / f"model_{variant}.npz")))


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


@pytest.fixture(scope="session")
def sample_sequence(tmp_path_factory) -> Path:
    """The bundled CC0 sample clip as a sequence folder (img/00001.jpg..., groundtruth.txt x,y,w,h)."""
    from mixformerv2_export.calibration import video_to_sequence

    root = tmp_path_factory.mktemp("sample_seq") / "sample_clip"
    return video_to_sequence(SAMPLES / "sample_clip.mp4", SAMPLES / "sample_clip_gt.txt", root)
