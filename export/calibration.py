"""Real template/search crop pairs from sequence folders, for INT8 calibration and its accuracy check.

A source is a sequence folder (``img/*.jpg`` + ``groundtruth.txt`` with x,y,w,h lines) or a folder
of such sequences. Crops use the runtime's own crop and normalisation.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from mixformerv2_cpu.geometry import sample_target
from mixformerv2_cpu.preprocess import network_input


@dataclass(frozen=True)
class CropPair:
    """Normalised crops (1,3,T,T), (1,3,T,T), (1,3,S,S) of one sequence at frames i (template) and j (search)."""

    template: np.ndarray
    online_template: np.ndarray
    search: np.ndarray


def video_to_sequence(video: Path, groundtruth: Path, dst: Path, quality: int = 95) -> Path:
    """A video with a per-frame ``x,y,w,h`` file -> a sequence folder (``img/00001.jpg``..., ``groundtruth.txt``);
    ValueError if the frame and box counts differ."""
    (dst / "img").mkdir(parents=True, exist_ok=True)
    cap = cv2.VideoCapture(str(video))
    n = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        n += 1
        cv2.imwrite(str(dst / "img" / f"{n:05d}.jpg"), frame, [cv2.IMWRITE_JPEG_QUALITY, quality])
    lines = [ln for ln in Path(groundtruth).read_text().splitlines() if ln.strip()]
    if n != len(lines):
        raise ValueError(f"{video} has {n} frames but {groundtruth} has {len(lines)} boxes")
    (dst / "groundtruth.txt").write_text("\n".join(lines) + "\n")
    return dst


def find_sequences(sources: list[Path]) -> list[Path]:
    seqs: list[Path] = []
    for src in sources:
        src = Path(src)
        if (src / "groundtruth.txt").is_file() and (src / "img").is_dir():
            seqs.append(src)
        elif src.is_dir():
            seqs.extend(p for p in sorted(src.iterdir()) if (p / "groundtruth.txt").is_file() and (p / "img").is_dir())
    if not seqs:
        raise ValueError(f"no sequence folders (img/*.jpg + groundtruth.txt) in {', '.join(map(str, sources))}")
    return seqs


def _read_gt(seq: Path) -> np.ndarray:
    return np.loadtxt(seq / "groundtruth.txt", delimiter=",", ndmin=2)


def sample_pairs(sources: list[Path], n: int, meta, seed: int = 0, search_factor: float = 4.5,
                 template_factor: float = 2.0) -> list[CropPair]:
    """``n`` crop pairs spread over all sequences: template at frame i, online template at a frame
    near i, search at frame j > i cropped around the box of frame j-1 (as the tracker would), as the
    network inputs of the model whose metadata is ``meta`` (sizes and input format)."""
    template_size, search_size = meta.template_size, meta.search_size
    rng = np.random.default_rng(seed)
    seqs = find_sequences(sources)
    frames = {s: sorted((s / "img").glob("*.jpg")) for s in seqs}
    gts = {s: _read_gt(s) for s in seqs}
    pairs = []
    while len(pairs) < n:
        seq = seqs[rng.integers(len(seqs))]
        count = min(len(frames[seq]), len(gts[seq]))
        if count < 3:
            continue
        i = int(rng.integers(0, count - 2))
        j = int(min(count - 1, i + rng.integers(2, 30)))
        o = int(min(count - 1, i + rng.integers(0, 10)))
        boxes = gts[seq]
        if not np.isfinite(boxes[[i, o, j - 1]]).all() or (boxes[[i, o, j - 1], 2:] <= 0).any():
            continue
        img = {k: cv2.imread(str(frames[seq][k])) for k in {i, o, j}}
        t = sample_target(img[i], boxes[i], template_factor, template_size).patch
        ot = sample_target(img[o], boxes[o], template_factor, template_size).patch
        s = sample_target(img[j], boxes[j - 1], search_factor, search_size).patch
        pairs.append(CropPair(network_input(t, meta), network_input(ot, meta), network_input(s, meta)))
    return pairs
