"""INT8 OpenVINO graphs by NNCF post-training quantisation, calibrated on real crops.

The template encoder and the search step are quantised separately (the search step is
calibrated with the fp32 template keys/values of the same pairs). The accuracy cost is measured
on held-out pairs: IoU between the fp32 and int8 boxes and the score difference.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import openvino as ov

from mixformerv2_cpu.backends import load_graph
from mixformerv2_cpu.decode import decode_boxes

from .calibration import sample_pairs
from .graphs import graph_metadata
from .model import MixFormerV2
from .to_openvino import save_ir

log = logging.getLogger(__name__)


def box_iou_cxcywh(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of (N,4) cx,cy,w,h boxes. A negative w/h (right edge left of the left edge, which the
    head allows) is read as the region between the two edges, i.e. its absolute value."""
    def corners(x):
        w, h = np.abs(x[:, 2]), np.abs(x[:, 3])
        return x[:, 0] - w / 2, x[:, 1] - h / 2, x[:, 0] + w / 2, x[:, 1] + h / 2, w * h

    ax1, ay1, ax2, ay2, aa = corners(a)
    bx1, by1, bx2, by2, ba = corners(b)
    iw = np.clip(np.minimum(ax2, bx2) - np.maximum(ax1, bx1), 0, None)
    ih = np.clip(np.minimum(ay2, by2) - np.maximum(ay1, by1), 0, None)
    inter = iw * ih
    union = aa + ba - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def _run_pairs(template_file: Path, search_file: Path, pairs) -> tuple[np.ndarray, np.ndarray]:
    tmpl, search = load_graph("openvino", template_file), load_graph("openvino", search_file)
    boxes, scores = [], []
    for p in pairs:
        kv = tmpl({"template": p.template, "online_template": p.online_template})["template_kv"]
        out = search({"search": p.search, "template_kv": kv})
        boxes.append(decode_boxes(out["logits"])[0][0])
        scores.append(float(out["score"].reshape(-1)[0]))
    return np.array(boxes), np.array(scores)


def quantize_int8(model: MixFormerV2, variant: str, folder: Path, name: str, template_file: Path, search_file: Path,
                  sources: list[Path], samples: int = 300, holdout: int = 100) -> tuple[dict, dict]:
    """Quantise the fp32 graph files (ONNX or IR) into ``<name>.int8.{template,search}.xml`` in ``folder``;
    return (graphs entry, report)."""
    import nncf

    cfg = model.cfg
    tmpl_meta = load_graph("openvino", template_file).metadata
    pairs = sample_pairs(sources, samples + holdout, cfg.template_size, cfg.search_size, tmpl_meta.mean,
                         tmpl_meta.std, seed=0)
    calib, held = pairs[:samples], pairs[samples:]
    tmpl_fp32 = load_graph("openvino", template_file)
    core = ov.Core()
    t_items = [{"template": p.template, "online_template": p.online_template} for p in calib]
    s_items = [{"search": p.search, "template_kv": tmpl_fp32(t)["template_kv"]} for p, t in zip(calib, t_items)]
    out = {}
    for role, src, items in (("template", template_file, t_items), ("search", search_file, s_items)):
        q = nncf.quantize(core.read_model(str(src)), nncf.Dataset(items), subset_size=len(items),
                          model_type=nncf.ModelType.TRANSFORMER)
        path = folder / f"{name}.int8.{role}.xml"
        save_ir(q, path, graph_metadata(model, variant, role, precision="int8"))
        out[role] = path.name
    fp_boxes, fp_scores = _run_pairs(template_file, search_file, held)
    q_boxes, q_scores = _run_pairs(folder / out["template"], folder / out["search"], held)
    iou = box_iou_cxcywh(fp_boxes, q_boxes)
    dscore = np.abs(fp_scores - q_scores)
    dbox_px = np.abs(fp_boxes - q_boxes).max(axis=1) * cfg.search_size
    summary = {"heldout_pairs": len(held), "calibration_pairs": len(calib),
               "iou_vs_fp32_mean": round(float(iou.mean()), 4), "iou_vs_fp32_p5": round(float(np.percentile(iou, 5)), 4),
               "box_maxdiff_px_mean": round(float(dbox_px.mean()), 3),
               "score_absdiff_mean": round(float(dscore.mean()), 5), "score_absdiff_max": round(float(dscore.max()), 5)}
    log.info("int8 accuracy cost on %d held-out crops: %s", len(held), summary)
    return {"openvino": out}, {"summary": summary, "sources": [str(s) for s in sources]}
