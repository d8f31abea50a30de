"""Export a trained checkpoint into models/default and (re)write models/registry.json.

    python train/ship.py runs/default/last.pth.tar

Uses the same exporter as ``mixformerv2-export`` (parity-checked ONNX + OpenVINO IR, manifest
with sha256), then records the manifest's sha256 in the registry under the name ``default``.
"""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from mixformerv2_cpu.manifest import sha256_of
from mixformerv2_export.exporter import export_checkpoint

ROOT = Path(__file__).resolve().parents[1]
MAX_FILE_BYTES = 20 * 1024 * 1024


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    ckpt = Path(args[0])
    folder = ROOT / "models" / "default"
    shutil.rmtree(folder, ignore_errors=True)
    manifest = export_checkpoint(ckpt, folder, name="default")
    for f in folder.iterdir():
        if f.stat().st_size > MAX_FILE_BYTES:
            raise SystemExit(f"{f} is {f.stat().st_size} bytes, over the 20 MB limit")
    reg = {"models": {"default": {"manifest": f"default/{manifest.name}", "sha256": sha256_of(manifest)}}}
    (ROOT / "models" / "registry.json").write_text(json.dumps(reg, indent=2) + "\n")
    print(f"shipped {manifest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
