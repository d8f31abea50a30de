"""The shipped default model: registered with its sha256, each file <= 20 MB, the default of
Tracker(), and it follows a real target (AUC floor = value measured at shipping minus a margin;
the shared sequences are evaluation data the model never trained on)."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import SEQUENCES, shared
from mixformerv2_benchmarks.metrics import evaluate_sequence
from mixformerv2_cpu import Tracker
from mixformerv2_cpu.registry import list_models, resolve_model

ROOT = Path(__file__).resolve().parents[1]
# AUC measured at shipping (v5, models/MODEL_CARD.md: `train/evaluate.py`, ONNX Runtime fp32, the default preset;
# this test's code path, the automatic choice at 2 threads, may pick OpenVINO: float noise, inside the margin):
# building4 is one of the five held-out sequences (never used for a choice), truck4_2 a tuning one.
# A box left at the init position scores 0.024 on building4 and 0.016 on truck4_2 (a ~10x6 px truck
# seen from a drone), so the floors need real tracking.
MEASURED = {"building4": 0.723, "truck4_2": 0.721}
MARGIN = 0.10


def test_default_model_is_registered_small_and_intact():
    registry = json.loads((ROOT / "models" / "registry.json").read_text())
    assert list(registry["models"]) == ["default"] and "default" in list_models()
    manifest = resolve_model(None)  # also checks the manifest's sha256 against the registry
    assert manifest.name == "default" and manifest.variant == "custom"
    for name, entry in manifest.data["files"].items():
        assert (manifest.folder / name).stat().st_size == entry["bytes"] <= 20 * 1024 * 1024, name
    card = (ROOT / "models" / "MODEL_CARD.md").read_text()
    for needed in ("train/train.py", "GMACs", "CSRT", "MIL", "NanoTrack", "VitTrack", "Apache-2.0", "CC0"):
        assert needed in card, needed
    scale = manifest.data["metadata"].get("box_scale", "1.0")  # the card names the calibration the files carry
    assert f"`box_scale` {scale}" in card.split("\n## ")[0], scale


@pytest.mark.slow
@pytest.mark.parametrize("seq", sorted(MEASURED))
def test_default_model_follows_a_real_target(seq):
    folder = shared(SEQUENCES / seq)
    gt = np.loadtxt(folder / "groundtruth.txt", delimiter=",", ndmin=2)
    frames = sorted((folder / "img").glob("*.jpg"))
    tracker = Tracker(threads=2)  # no model named: the shipped default
    tracker.init(cv2.imread(str(frames[0])), gt[0])
    boxes = [gt[0]] + [tracker.update(cv2.imread(str(f)))[1] for f in frames[1:]]
    auc = evaluate_sequence(np.array(boxes), gt).metrics()["auc"]
    assert auc >= MEASURED[seq] - MARGIN, f"{seq}: AUC {auc:.3f} under the floor {MEASURED[seq] - MARGIN:.3f}"
