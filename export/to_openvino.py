"""Saving OpenVINO IR (the int8 graphs) with the metadata in rt_info['mixformerv2']."""
from __future__ import annotations

from pathlib import Path

import openvino as ov
from mixformerv2_cpu.formats import RT_SECTION


def set_metadata(model: "ov.Model", metadata: dict[str, str]) -> None:
    for k, v in metadata.items():
        model.set_rt_info(v, [RT_SECTION, k])


def save_ir(model: "ov.Model", xml_path: Path, metadata: dict[str, str]) -> Path:
    """Save an OpenVINO model with its metadata; weights stay fp32 (no fp16 compression)."""
    set_metadata(model, metadata)
    ov.save_model(model, str(xml_path), compress_to_fp16=False)
    return xml_path
