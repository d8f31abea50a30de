"""``mixformerv2-export``: official checkpoint -> verified ONNX + OpenVINO export folder."""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from .checkpoint import CheckpointError
from .exporter import ExportError, export_checkpoint
from .network import CONFIGS


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mixformerv2-export", description=__doc__)
    p.add_argument("--checkpoint", required=True, type=Path, help="mixformerv2_*.pth.tar (or a trainer checkpoint)")
    p.add_argument("--variant", choices=sorted(CONFIGS), help="expected variant; must match the file")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--name", help="file stem (default mixformerv2_<variant>)")
    p.add_argument("--int8", nargs="+", type=Path, metavar="SEQUENCE_DIR",
                   help="also write INT8 graphs (ONNX Runtime dynamic + OpenVINO NNCF static), calibrated "
                        "and checked on crops of these sequence folders (<seq>/img/*.jpg + groundtruth.txt, or "
                        "folders of such sequences); only a flavour that passes the accuracy gate is kept")
    p.add_argument("--int8-samples", type=int, default=300, help="calibration crops (default 300)")
    p.add_argument("--tolerance", type=float, default=1e-4, help="max abs difference allowed vs PyTorch")
    p.add_argument("--allow-unsafe-pickle", action="store_true",
                   help="DANGEROUS: fully unpickle the checkpoint, which runs any code stored in it; only for "
                        "files from a source you trust whose extra entries the safe loader cannot read")
    p.add_argument("--box-scale", type=float, default=1.0, metavar="F",
                   help="box-size calibration of a trained model, written into the metadata: the boxes the tracker "
                        "reports have width and height multiplied by F about the centre, what it follows is "
                        "unchanged (default 1.0 = reference; choose F on tuning sequences, never on the ones "
                        "you report)")
    p.add_argument("--keep-search-tokens", type=int, metavar="K",
                   help="search-token pruning (not in the reference): after block --prune-after keep only the K "
                        "search tokens the prediction tokens attend to most (0: off; default: what the "
                        "checkpoint's configuration says, off for the official files)")
    p.add_argument("--prune-after", type=int, default=0, metavar="I", help="the block after which to prune (default 0)")
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.prune_after and args.keep_search_tokens is None:
        parser.error("--prune-after needs --keep-search-tokens")
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    try:
        manifest = export_checkpoint(args.checkpoint, args.out, args.variant, args.name, args.allow_unsafe_pickle,
                                     tolerance=args.tolerance, int8_source=args.int8, int8_samples=args.int8_samples,
                                     box_scale=args.box_scale, keep_search_tokens=args.keep_search_tokens,
                                     prune_after=args.prune_after)
    except (CheckpointError, ExportError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    data = json.loads(manifest.read_text())
    print(f"max abs difference vs PyTorch (tolerance {args.tolerance:g}):")
    for fname, per in data["verification"]["max_abs_diff"].items():
        print(f"  {fname:36s} " + "  ".join(f"{k}={v:.2e}" for k, v in per.items()))
    if "int8_report" in data:
        for fmt in ("onnx", "openvino"):
            print(f"int8 ({fmt}) vs fp32: " + json.dumps(data["int8_report"][fmt]))
    print(f"wrote {manifest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
