"""Single-object tracking datasets: the shared format, LaSOT, GOT-10k, OTB, UAV123, TrackingNet, VOT.

Every loader returns :class:`Sequence` objects with absolute frame paths and the ground truth as a
float64 array of shape (N, 4), rows ``x, y, w, h`` (top-left corner, width, height, pixels, no 0.5/1 px
shift). A row of NaN marks a frame where the target is absent. When only the first-frame box is
published (GOT-10k test, TrackingNet test) the array has shape (1, 4) and ``full_gt`` is False.

A wrong layout raises :class:`DatasetLayoutError` naming the missing path. Problems of single
sequences (missing frames, ground-truth lines that do not match the frame count, unreadable lines,
an invalid first box) are collected by name in ``Dataset.skipped`` and logged as warnings; with
``strict=True`` the first one raises :class:`DatasetError` instead.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

from .loaders import LOADERS
from .reading import IMAGE_EXTS, list_frames, parse_box_line, read_boxes  # noqa: F401
from .reading import _read_list, _subdirs
from .records import Dataset, DatasetError, DatasetLayoutError, Sequence  # noqa: F401

log = logging.getLogger(__name__)

FORMATS = tuple(LOADERS)
__all__ = ["FORMATS", "IMAGE_EXTS", "LOADERS", "Dataset", "DatasetError", "DatasetLayoutError", "Sequence",
           "dataset_name", "detect_format", "list_frames", "load_dataset", "parse_box_line", "read_boxes"]


def detect_format(root: Path) -> str:
    """Guess the format from marker files; raises DatasetLayoutError listing what was looked for."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetLayoutError(f"dataset folder: missing {root}")
    if (root / "anno").is_dir() and (root / "data_seq").is_dir():
        return "uav123"
    if any((root / s / "list.txt").is_file() for s in ("val", "test")):
        return "got10k"
    if any((root / s / "anno").is_dir() for s in ("TEST", "TRAIN_0")) or (
            (root / "anno").is_dir() and (root / "frames").is_dir()):
        return "trackingnet"
    subdirs = _subdirs(root)
    if (root / "list.txt").is_file():
        first = _read_list(root / "list.txt")[:1]
        if first and any((root / first[0] / f).is_file() for f in ("absence.label", "cover.label", "meta_info.ini")):
            return "got10k"  # a GOT-10k split folder
        return "vot"
    if any(next(d.glob("groundtruth_rect*.txt"), None) for d in subdirs):
        return "otb"
    if any((d / "img").is_dir() and (d / "groundtruth.txt").is_file() for d in subdirs):
        return "shared"
    for c in subdirs:
        if any(s.name.startswith(c.name + "-") and (s / "full_occlusion.txt").is_file() for s in _subdirs(c)):
            return "lasot"
    raise DatasetLayoutError(
        f"cannot detect the dataset format of {root}: looked for anno/ + data_seq/ (uav123), "
        "val|test/list.txt (got10k), TEST/anno (trackingnet), list.txt (vot), <seq>/groundtruth_rect.txt (otb), "
        "<seq>/img + <seq>/groundtruth.txt (shared), <class>/<class>-<k>/full_occlusion.txt (lasot)")


def dataset_name(root: Path, fmt: str, subset: str | None) -> str:
    """Folder-friendly dataset name: the folder name for the shared format, else format[_subset]."""
    if fmt == "shared":
        return Path(root).resolve().name
    sub = (subset or {"got10k": "val", "trackingnet": "test", "lasot": "all"}.get(fmt, "")).lower()
    return f"{fmt}_{sub}" if sub and sub not in (fmt, "uav123", "all") else fmt


def load_dataset(root: os.PathLike | str, fmt: str | None = None, subset: str | None = None,
                 strict: bool = False, name: str | None = None) -> Dataset:
    """Load a dataset (format detected when ``fmt`` is None) and set aside sequences with problems.

    Skipped sequences are logged as warnings and listed in ``Dataset.skipped``; with ``strict`` the
    first problem raises DatasetError naming the sequence.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetLayoutError(f"dataset folder: missing {root}")
    fmt = fmt or detect_format(root)
    if fmt not in LOADERS:
        raise ValueError(f"unknown dataset format {fmt!r}; known: {', '.join(FORMATS)}")
    seqs = LOADERS[fmt](root.resolve(), subset)
    ds = Dataset(name or dataset_name(root, fmt, subset), fmt, root.resolve(), [])
    for seq in seqs:
        if seq.problems:
            reason = "; ".join(seq.problems)
            if strict:
                raise DatasetError(f"sequence {seq.name}: {reason}")
            log.warning("skipping sequence %s: %s", seq.name, reason)
            ds.skipped[seq.name] = reason
        else:
            ds.sequences.append(seq)
    if not ds.sequences:
        log.warning("dataset %s (%s) has no usable sequence", root, fmt)
    return ds
