"""Reading annotation files (rectangles, polygons, VOT masks, flags) and frame folders, and
assembling a checked :class:`~.records.Sequence` from them."""
from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from .records import DatasetLayoutError, Sequence

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp")


def parse_box_line(line: str) -> np.ndarray:
    """One annotation line -> float64 (4,) ``x, y, w, h`` (NaN row for an empty line or ``nan`` values).

    Accepts 4 values (rectangle), 6+ even values (polygon x1,y1,...: its axis-aligned min/max box), or
    a VOT mask ``m<x0>,<y0>,<w>,<h>,<rle...>`` (the box of the non-zero pixels; empty mask -> NaN).
    Values may be separated by commas, tabs or spaces.
    """
    text = line.strip()
    if not text:
        return np.full(4, np.nan)
    if text[0] == "m":
        return _mask_box([int(float(v)) for v in re.split(r"[,\s]+", text[1:].strip()) if v])
    vals = np.array([float(v) for v in re.split(r"[,\s]+", text) if v], dtype=np.float64)
    if vals.size == 4:
        return vals
    if vals.size >= 6 and vals.size % 2 == 0:
        xs, ys = vals[0::2], vals[1::2]
        return np.array([xs.min(), ys.min(), xs.max() - xs.min(), ys.max() - ys.min()])
    if vals.size == 1 and np.isnan(vals[0]):
        return np.full(4, np.nan)
    raise ValueError(f"expected 4 values (x,y,w,h) or a polygon, got {vals.size}: {text[:60]!r}")


def _mask_box(vals: list[int]) -> np.ndarray:
    """VOT run-length mask (offset x, offset y, width, height, runs starting with zeros) -> box."""
    if len(vals) < 4:
        raise ValueError("VOT mask line needs offset x, offset y, width, height")
    x0, y0, w, h = vals[:4]
    flat = np.repeat(np.arange(len(vals) - 4) % 2, vals[4:]).astype(bool)
    rows, cols = np.nonzero(np.pad(flat, (0, max(0, w * h - flat.size)))[: w * h].reshape(h, w))
    if not rows.size:
        return np.full(4, np.nan)
    return np.array([x0 + cols.min(), y0 + rows.min(), np.ptp(cols) + 1, np.ptp(rows) + 1], dtype=np.float64)


def read_boxes(path: Path) -> np.ndarray:
    """Annotation file -> float64 (N, 4); trailing blank lines are dropped, inner blank lines are NaN rows.

    Raises ValueError naming the file and line for an unreadable line.
    """
    lines = path.read_text().splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    out = np.empty((len(lines), 4), dtype=np.float64)
    for i, line in enumerate(lines):
        try:
            out[i] = parse_box_line(line)
        except ValueError as exc:
            raise ValueError(f"{path}: line {i + 1}: {exc}") from None
    return out


def _read_flags(path: Path) -> np.ndarray:
    """0/1 (or integer) labels separated by commas or newlines -> int array."""
    return np.array([int(float(v)) for v in re.split(r"[,\s]+", path.read_text().strip()) if v], dtype=np.int64)


def list_frames(folder: Path) -> tuple[list[Path], list[str]]:
    """Image files of a folder sorted by frame number (numeric stems) or name -> (paths, problems).

    A gap in the numbering is a problem naming the first missing frames.
    """
    if not folder.is_dir():
        return [], [f"missing frame folder {folder}"]
    files = [Path(e.path) for e in os.scandir(folder) if e.name.lower().endswith(IMAGE_EXTS) and e.is_file()]
    if not files:
        return [], [f"no image files in {folder}"]
    if all(f.stem.isdigit() for f in files):
        files.sort(key=lambda f: int(f.stem))
        nums = [int(f.stem) for f in files]
        missing = sorted(set(range(nums[0], nums[-1] + 1)) - set(nums))
        if missing:
            width, ext = len(files[0].stem), files[0].suffix
            names = ", ".join(f"{m:0{width}d}{ext}" for m in missing[:5])
            more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            return files, [f"missing frame(s) {names}{more} in {folder}"]
    else:
        files.sort()
    return files, []


def _frame_range(frames: list[Path], first: int, count: int) -> tuple[list[Path], list[str]]:
    """Frames numbered first .. first + count - 1 from a numerically named list."""
    by_num = {int(f.stem): f for f in frames if f.stem.isdigit()}
    want = range(first, first + count)
    missing = [n for n in want if n not in by_num]
    if missing:
        return [], [f"missing frame number(s) {', '.join(map(str, missing[:5]))} (range {first}-{first + count - 1})"]
    return [by_num[n] for n in want], []


def _make_seq(name: str, frames: list[Path], problems: list[str], gt_file: Path,
              full_gt: bool = True, absent: np.ndarray | None = None,
              image_size: tuple[int, int] | None = None, first_frame: int | None = None) -> Sequence:
    """Read ground truth, mark absent frames as NaN rows and check the sequence.

    ``first_frame``: when the folder holds more frames than the annotation has lines, keep the
    frames numbered first_frame .. first_frame + lines - 1 (official sub-ranges of OTB / UAV123).
    """
    gt = np.full((0, 4), np.nan)
    if not gt_file.is_file():
        problems.append(f"missing ground-truth file {gt_file}")
    else:
        try:
            gt = read_boxes(gt_file)
        except ValueError as exc:
            problems.append(str(exc))
    if absent is not None and len(gt):
        if len(absent) != len(gt):
            problems.append(f"absence flags have {len(absent)} values but {gt_file.name} has {len(gt)} lines")
        else:
            gt[absent.astype(bool)] = np.nan
    if not full_gt:
        gt = gt[:1]
    if first_frame is not None and frames and not problems and 0 < len(gt) < len(frames):
        frames, more = _frame_range(frames, first_frame, len(gt))
        problems += more
    seq = Sequence(name, frames, gt, full_gt=full_gt, image_size=image_size, problems=problems)
    if frames and len(gt):
        if full_gt and len(gt) != len(frames):
            problems.append(f"{gt_file.name} has {len(gt)} lines but there are {len(frames)} frames")
        x, y, w, h = gt[0]
        if not (np.isfinite(gt[0]).all() and w > 0 and h > 0):
            problems.append(f"invalid first-frame box {gt[0].tolist()}")
    elif frames and gt_file.is_file():
        problems.append(f"{gt_file} is empty")
    return seq


def _require(path: Path, what: str) -> Path:
    if not path.exists():
        raise DatasetLayoutError(f"{what}: missing {path}")
    return path


def _subdirs(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def _read_list(path: Path) -> list[str]:
    return [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]
