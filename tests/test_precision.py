"""Precision options: bf16 on CPUs that have it (close to fp32), a clear error elsewhere."""
from __future__ import annotations

import numpy as np
import openvino as ov
import pytest

from mixformerv2_cpu import BackendError, Tracker


def _track(tracker, ref):
    frames = ref["synthetic__frames_bgr"]
    tracker.init(frames[0], ref["synthetic__init_xywh"])
    return np.array([tracker.update(f)[1] for f in frames[1:]]), tracker.score


@pytest.mark.slow
def test_bf16_follows_fp32_or_is_refused(export_small, tracker_ref):
    has_bf16 = "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    if not has_bf16:
        with pytest.raises(BackendError, match="needs a CPU with AVX512-BF16 or AMX"):
            Tracker(export_small, precision="bf16")
        return
    bf16_boxes, bf16_score = _track(Tracker(export_small, precision="bf16", preset="got10k"), tracker_ref)
    fp32_boxes, fp32_score = _track(Tracker(export_small, precision="fp32", preset="got10k"), tracker_ref)
    # bfloat16 keeps ~3 significant digits: the run stays within a few pixels of fp32 on this clip
    assert np.abs(bf16_boxes - fp32_boxes).max() < 5.0 and abs(bf16_score - fp32_score) < 0.02


def test_bf16_is_openvino_only_and_precision_names_are_checked(export_small):
    with pytest.raises(BackendError, match="bf16 inference needs the openvino backend"):
        Tracker(export_small, backend="onnxruntime", precision="bf16")
    with pytest.raises(BackendError, match="unknown precision 'fp16'; expected one of: auto, fp32, int8, bf16"):
        Tracker(export_small, precision="fp16")
