"""A wheel built from the repo carries the default model, and a fresh venv tracks with it."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    # build from a clean copy: setuptools never empties build/lib, so files deleted from the tree
    # (e.g. an older model layout) would still end up in a wheel built in the checkout
    src = tmp_path_factory.mktemp("src") / "repo"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns("build", "dist", "*.egg-info", ".venv*", "runs", ".git",
                                                             "__pycache__", ".pytest_cache"))
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation", "-w", str(out),
                    "-q"], check=True)
    return next(out.glob("mixformerv2_cpu-*.whl"))


WHEEL_LIMIT = 12 * 1024 * 1024  # the default model's weights are stored once (shared by its graphs)


def test_wheel_contains_default_model_and_no_generic_top_level(wheel):
    assert wheel.stat().st_size <= WHEEL_LIMIT, f"wheel is {wheel.stat().st_size / 2**20:.1f} MB"
    names = zipfile.ZipFile(wheel).namelist()
    registry = json.loads((ROOT / "models" / "registry.json").read_text())
    manifest_rel = registry["models"]["default"]["manifest"]
    manifest = json.loads((ROOT / "models" / manifest_rel).read_text())
    folder = Path(manifest_rel).parent
    for fname in manifest["files"]:
        assert f"mixformerv2_cpu/zoo/{folder / fname}" in names, fname
    assert "mixformerv2_cpu/zoo/registry.json" in names and "mixformerv2_cpu/presets/default.json" in names
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith((".dist-info", ".data"))}
    assert tops == {"mixformerv2_cpu", "mixformerv2_export", "mixformerv2_benchmarks"}


@pytest.mark.slow
def test_fresh_venv_tracks_with_the_wheel(wheel, tmp_path):
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    subprocess.run([str(py), "-m", "pip", "install", "-q", str(wheel)], check=True)
    code = (
        "import numpy as np, sys; from mixformerv2_cpu import Tracker\n"
        "f = np.full((240, 320, 3), 40, np.uint8); f[100:140, 150:190] = (20, 200, 240)\n"
        "t = Tracker(threads=1); t.init(f, (150, 100, 40, 40))\n"
        "g = np.roll(f, (6, 8), axis=(0, 1)); ok, box = t.update(g)\n"
        "print(ok, [round(v) for v in box], 'torch' in sys.modules)\n")
    out = subprocess.run([str(py), "-c", code], capture_output=True, text=True, cwd=tmp_path, check=True).stdout.split()
    ok, torch_loaded = out[0], out[-1]
    x, y = (int(v.strip("[],")) for v in out[1:3])
    assert ok == "True" and torch_loaded == "False"
    assert abs(x - 158) <= 6 and abs(y - 106) <= 6  # followed the square that moved by (+8, +6)
