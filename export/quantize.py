"""INT8 graphs from the fp32 graph files, with their accuracy measured on real crops.

Two flavours, because which one pays off depends on the CPU:

- ``onnx``: ONNX Runtime dynamic quantisation of the MatMul/Gemm weights (int8 weights, activations
  quantised per call; LayerNorm, softmax and the convolutional stem stay fp32). On AVX2-only CPUs
  ONNX Runtime runs these as u8 x s8 dot products (VPMADDUBSW), the integer path AVX2 is fast at.
  The weights use 7 bits (``reduce_range``: -64..64), so VPMADDUBSW's saturating int16 sum of two
  u8 x s8 products (at most 2 x 255 x 64 = 32,640 < 32,767) never saturates: AVX2's kernels then give
  the same int32 sums as VNNI's, and one measurement holds for both (``valid_on``). MatMuls over
  fewer than 16 rows (the prediction-token heads) stay fp32 (:func:`small_matmuls`).
- ``openvino``: NNCF post-training static quantisation (calibrated on real crops) as OpenVINO IR,
  which pays off on CPUs with VNNI/AMX.

Each flavour is run on held-out real crop pairs against fp32 (box IoU, score difference). Only a
flavour that passes the gate (:data:`GATE`) is listed in the manifest; ``int8_report`` records
both, and the class of integer kernels they ran on (``int8_kernels``: VNNI's exact int32 sums or
AVX2's saturating int16 pairs round differently), so ``precision="auto"`` never runs an int8 graph
whose accuracy was not measured and passed on this kind of CPU.
Works on the exported files alone (no torch): the shipped default model can be quantised too.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from mixformerv2_cpu.backends import load_graph
from mixformerv2_cpu.boxes import cxcywh_to_xywh, iou
from mixformerv2_cpu.cpu import cpu_flags, cpu_model, int8_kernels
from mixformerv2_cpu.decode import decode_boxes
from mixformerv2_cpu.formats import side_files
from mixformerv2_cpu.metadata import ModelMetadata

from .calibration import sample_pairs
from .to_openvino import save_ir

log = logging.getLogger(__name__)
# an int8 flavour is accepted when, on held-out real crops, its boxes overlap the fp32 boxes by this
# mean IoU and its scores differ by at most this much on average
GATE = {"iou_vs_fp32_mean_min": 0.90, "score_absdiff_mean_max": 0.03}
READER = {"onnx": "onnxruntime", "openvino": "openvino"}


def box_iou_cxcywh(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of (N,4) cx,cy,w,h boxes. A negative w/h (right edge left of the left edge, which the
    head allows) is read as the region between the two edges, i.e. its absolute value."""
    def xywh(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64).reshape(-1, 4)
        return cxcywh_to_xywh(np.concatenate([x[:, :2], np.abs(x[:, 2:])], axis=1))

    return iou(xywh(a), xywh(b))


def _run_pairs(backend: str, template_file: Path, search_file: Path, pairs,
               threads: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    tmpl, search = load_graph(backend, template_file, threads), load_graph(backend, search_file, threads)
    boxes, scores = [], []
    for p in pairs:
        kv = tmpl({"template": p.template, "online_template": p.online_template})["template_kv"]
        out = search({"search": p.search, "template_kv": kv})
        boxes.append(decode_boxes(out["logits"])[0][0])
        scores.append(float(out["score"].reshape(-1)[0]))
    return np.array(boxes), np.array(scores)


def _int8_metadata(fp32_file: Path) -> dict[str, str]:
    meta = load_graph("onnxruntime", fp32_file).metadata.to_strings()
    return {**meta, "precision": "int8"}


SMALL_ROWS = 16  # a MatMul over fewer rows per sample than this stays fp32 (see small_matmuls)


def small_matmuls(src: Path, feeds: dict[str, np.ndarray], max_rows: int = SMALL_ROWS) -> list[str]:
    """Names of the MatMul/Gemm nodes with constant weights whose input has fewer than ``max_rows`` rows
    per sample, found by running the fp32 graph once on ``feeds`` (batch 1): the prediction-token heads
    that turn four tokens into the edge distributions and the score, and squeeze-excitation layers.
    Quantising them saves nothing measurable and costs the box most of its int8 error (MixFormerV2-S,
    reference weights, 100 held-out real crops: mean box IoU vs fp32 0.878 with them in int8, 0.937
    without). Each Gemm is named twice, as itself and as the MatMul the quantiser turns it into."""
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(src))
    weights = {t.name for t in model.graph.initializer}
    nodes = [n for n in model.graph.node if n.op_type in ("MatMul", "Gemm") and len(n.input) > 1
             and n.input[1] in weights]
    have = {o.name for o in model.graph.output}
    for name in dict.fromkeys(n.input[0] for n in nodes):
        if name not in have:
            model.graph.output.append(onnx.ValueInfoProto(name=name))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    values = dict(zip((o.name for o in session.get_outputs()), session.run(None, feeds)))
    small = []
    for n in nodes:
        shape = values[n.input[0]].shape
        if int(np.prod(shape[:-1])) < max_rows:
            small += [n.name, f"{n.name}_MatMul"] if n.op_type == "Gemm" else [n.name]
    return small


def _dynamic_onnx(src: Path, dst: Path, exclude: list[str] | None = None) -> Path:
    """ONNX Runtime dynamic quantisation of MatMul/Gemm weights (7 bits, per output channel; the nodes
    named in ``exclude`` stay fp32); metadata copied with precision int8."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quiet = logging.getLogger()  # the quantiser logs one line per tensor it leaves in fp32
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul", "Gemm"],
                         per_channel=True, reduce_range=True, nodes_to_exclude=list(exclude or []))
    finally:
        quiet.setLevel(level)
    proto = onnx.load(str(dst))
    del proto.metadata_props[:]
    for k, v in _int8_metadata(src).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v
    onnx.save(proto, str(dst))
    return dst


def _nncf_ir(src: Path, dst: Path, items: list[dict]) -> Path:
    import nncf
    import openvino as ov

    q = nncf.quantize(ov.Core().read_model(str(src)), nncf.Dataset(items), subset_size=len(items),
                      model_type=nncf.ModelType.TRANSFORMER)
    save_ir(q, dst, _int8_metadata(src))
    return dst


MEASURE_THREADS = (1, 2)  # kernels differ with the thread count (seen: OpenVINO int8 at 1 thread), so both


def measure(fp32: dict[str, Path], int8: dict[str, Path], fmt: str, held, search_size: int) -> dict:
    """Held-out accuracy of one int8 flavour against fp32 (both run by the backend that reads ``fmt``), at
    each of MEASURE_THREADS; accepted only if every thread count passes the gate (worst case reported)."""
    backend = READER[fmt]
    fp_boxes, fp_scores = _run_pairs(backend, fp32["template"], fp32["search"], held)
    per_threads = {}
    for threads in MEASURE_THREADS:
        q_boxes, q_scores = _run_pairs(backend, int8["template"], int8["search"], held, threads)
        iou = box_iou_cxcywh(fp_boxes, q_boxes)
        dscore = np.abs(fp_scores - q_scores)
        dbox_px = np.abs(fp_boxes - q_boxes).max(axis=1) * search_size
        per_threads[threads] = {
            "iou_vs_fp32_mean": round(float(iou.mean()), 4), "iou_vs_fp32_p5": round(float(np.percentile(iou, 5)), 4),
            "box_maxdiff_px_mean": round(float(dbox_px.mean()), 3),
            "score_absdiff_mean": round(float(dscore.mean()), 5), "score_absdiff_max": round(float(dscore.max()), 5)}
    worst = min(per_threads, key=lambda t: per_threads[t]["iou_vs_fp32_mean"])
    summary = {"heldout_pairs": len(held), "run_by": backend, "worst_threads": worst, **per_threads[worst],
               "per_threads": {str(t): v for t, v in per_threads.items()}}
    summary["accepted"] = all(v["iou_vs_fp32_mean"] >= GATE["iou_vs_fp32_mean_min"]
                              and v["score_absdiff_mean"] <= GATE["score_absdiff_mean_max"]
                              for v in per_threads.values())
    return summary


# kernel classes (cpu.int8_kernels) whose int32 sums are exact for 7-bit weights and u8 activations
EXACT_WITH_7BIT_WEIGHTS = ("vnni", "avx2")


def valid_on(fmt: str, measured_on: str) -> list[str]:
    """The kernel classes a measurement of flavour ``fmt`` on ``measured_on`` kernels holds for: both x86
    classes for the ONNX flavour (7-bit weights: exact sums on either) when measured on one of them,
    else only the class it ran on (NNCF's 8-bit weights can saturate AVX2's int16 pair sums)."""
    if fmt == "onnx" and measured_on in EXACT_WITH_7BIT_WEIGHTS:
        return list(EXACT_WITH_7BIT_WEIGHTS)
    return [measured_on]


def quantize_int8(folder: Path, name: str, fp32: dict[str, Path], sources: list[Path], samples: int = 300,
                  holdout: int = 100) -> tuple[dict, dict]:
    """Write the int8 flavours of the fp32 ``template``/``search`` files into ``folder``, measure each on
    held-out crops of ``sources``; return (graphs entry of the accepted flavours, report of all)."""
    meta: ModelMetadata = load_graph("onnxruntime", fp32["template"]).metadata
    pairs = sample_pairs(sources, samples + holdout, meta, seed=0)
    calib, held = pairs[:samples], pairs[samples:]
    tmpl_fp32 = load_graph("onnxruntime", fp32["template"])
    t_items = [{"template": p.template, "online_template": p.online_template} for p in calib]
    s_items = [{"search": p.search, "template_kv": tmpl_fp32(t)["template_kv"]} for p, t in zip(calib, t_items)]
    roles = (("template", t_items), ("search", s_items))
    flavours = {
        "onnx": {role: _dynamic_onnx(fp32[role], folder / f"{name}.int8.{role}.onnx", small_matmuls(fp32[role], items[0]))
                 for role, items in roles},
        "openvino": {role: _nncf_ir(fp32[role], folder / f"{name}.int8.{role}.xml", items) for role, items in roles},
    }
    graphs, report = {}, {"gate": GATE, "calibration_pairs": len(calib), "sources": [str(s) for s in sources],
                          "int8_kernels": int8_kernels(), "measured_on": {"cpu": cpu_model(), "flags": cpu_flags()}}
    for fmt, files in flavours.items():
        report[fmt] = measure(fp32, files, fmt, held, meta.search_size)
        report[fmt]["valid_on"] = valid_on(fmt, report["int8_kernels"])
        log.info("int8 (%s) vs fp32 on %d held-out crops: %s", fmt, len(held), report[fmt])
        if report[fmt]["accepted"]:
            graphs[fmt] = {role: p.name for role, p in files.items()}
        else:  # not listed, not kept: an unmeasured or failed int8 file never ships
            for p in files.values():
                for q in (p, *side_files(p)):
                    q.unlink(missing_ok=True)
    report["accepted"] = bool(graphs)
    return graphs, report
