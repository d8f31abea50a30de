"""Export a trained checkpoint into models/default, with its run record, and (re)write models/registry.json.

    python train/ship.py runs/v2/last.pth.tar [--int8] [--box-scale F]

Uses the same exporter as ``mixformerv2-export`` (parity-checked ONNX graphs sharing one weights
file, manifest with sha256). ``--int8`` also writes the int8 flavours, calibrated and measured on
the CC0 sample clip (``samples/``: nothing research-use enters the shipped files); only flavours
that pass the accuracy gate are listed. ``--box-scale`` writes the reported-box size calibration
(chosen on the tuning sequences with ``train/box_scale.py``; see ``mixformerv2-export --box-scale``)
into the metadata. The run record (``run.json`` beside the checkpoint: command, steps, seed,
commit, package versions, data sources with licences, final losses) is copied to
``models/default/default.run.json``, which the model card references; when the checkpoint is a
snapshot of the run (``step_<k>.pth.tar``), the copy says which step was shipped.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import torch

from mixformerv2_cpu.manifest import sha256_of
from mixformerv2_export.calibration import video_to_sequence
from mixformerv2_export.exporter import export_checkpoint

ROOT = Path(__file__).resolve().parents[1]
MAX_FILE_BYTES = 20 * 1024 * 1024


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("checkpoint", type=Path)
    p.add_argument("--int8", action="store_true", help="also write int8 flavours (calibrated on the sample clip)")
    p.add_argument("--box-scale", type=float, default=1.0, metavar="F",
                   help="reported-box size calibration written into the metadata (default 1.0)")
    args = p.parse_args(argv)
    folder = ROOT / "models" / "default"
    shutil.rmtree(folder, ignore_errors=True)
    with tempfile.TemporaryDirectory() as tmp:
        int8 = [video_to_sequence(ROOT / "samples" / "sample_clip.mp4", ROOT / "samples" / "sample_clip_gt.txt",
                                  Path(tmp) / "sample_clip")] if args.int8 else None
        manifest = export_checkpoint(args.checkpoint, folder, name="default", int8_source=int8, int8_samples=120,
                                     box_scale=args.box_scale)
    record = args.checkpoint.parent / "run.json"
    if record.is_file():
        run = json.loads(record.read_text())
        step = torch.load(args.checkpoint, map_location="cpu", weights_only=True)["step"]
        if step != run.get("step"):  # a snapshot of the run, not its end: say which weights these are
            run["shipped"] = {"checkpoint": args.checkpoint.name, "step": step,
                              "note": "final_losses are those of the run's end, not of these weights"}
        (folder / "default.run.json").write_text(json.dumps(run, indent=1) + "\n")
    for f in folder.iterdir():
        if f.stat().st_size > MAX_FILE_BYTES:
            raise SystemExit(f"{f} is {f.stat().st_size} bytes, over the 20 MB limit")
    reg = {"models": {"default": {"manifest": f"default/{manifest.name}", "sha256": sha256_of(manifest)}}}
    (ROOT / "models" / "registry.json").write_text(json.dumps(reg, indent=2) + "\n")
    print(f"shipped {manifest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
