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

import configparser
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

log = logging.getLogger(__name__)

FORMATS = ("shared", "lasot", "got10k", "otb", "uav123", "trackingnet", "vot")
IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp")

# OTB sequences whose img/ folder holds more frames than groundtruth_rect.txt lines: number of the
# first annotated frame (the annotation then covers as many frames as it has lines).
_OTB_FIRST_FRAME = {"David": 300, "Tiger1": 6, "BlurCar1": 247, "BlurCar3": 3, "BlurCar4": 18,
                    "Football1": 1, "Freeman3": 1, "Freeman4": 1, "Diving": 1}
# UAV123 sub-sequences cut from one folder (data_seq/UAV123/<name without _k>): first frame number
# of the sub-sequence when it is not 1. The last frame is first + annotation lines - 1.
_UAV123_FIRST_FRAME = {
    "bird1_2": 775, "bird1_3": 1573, "car16_2": 415, "car1_2": 751, "car1_3": 1627, "car6_2": 487,
    "car6_3": 1807, "car6_4": 2953, "car6_5": 3925, "car8_2": 1357, "group1_2": 1333, "group1_3": 2515,
    "group1_4": 3925, "group2_2": 907, "group2_3": 1771, "group3_2": 1567, "group3_3": 2827,
    "group3_4": 4369, "person12_2": 601, "person14_2": 847, "person14_3": 1813, "person17_2": 1501,
    "person19_2": 1243, "person19_3": 2791, "person2_2": 1189, "person4_2": 1501, "person5_2": 877,
    "person7_2": 1249, "person8_2": 1075, "truck4_2": 577, "uav1_2": 1555, "uav1_3": 2473}


class DatasetError(ValueError):
    """A sequence that cannot be evaluated (raised in strict mode)."""


class DatasetLayoutError(DatasetError, FileNotFoundError):
    """The folder does not have the layout of the requested format; the message names the missing path."""


@dataclass
class Sequence:
    """One sequence.

    frames: absolute paths, in time order, length N.
    gt: float64 (N, 4) ``x, y, w, h`` with NaN rows for absent targets; (1, 4) when ``full_gt`` is False.
    image_size: (width, height) when the dataset states it (GOT-10k meta_info.ini), else None.
    problems: reasons why the sequence cannot be evaluated (empty when it is fine).
    """

    name: str
    frames: List[Path]
    gt: np.ndarray
    full_gt: bool = True
    image_size: Optional[Tuple[int, int]] = None
    problems: List[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def init_box(self) -> Tuple[float, float, float, float]:
        """First-frame box ``(x, y, w, h)``."""
        return tuple(float(v) for v in self.gt[0])  # type: ignore[return-value]

    def frame_size(self) -> Tuple[int, int]:
        """(width, height): ``image_size`` if known, else read from the first frame."""
        if self.image_size is None:
            import cv2
            img = cv2.imread(str(self.frames[0]), cv2.IMREAD_UNCHANGED)
            if img is None:
                raise DatasetError(f"{self.name}: cannot read {self.frames[0]}")
            self.image_size = (int(img.shape[1]), int(img.shape[0]))
        return self.image_size


@dataclass
class Dataset:
    """A loaded dataset: ``sequences`` are the valid ones, ``skipped`` maps skipped names to reasons."""

    name: str
    format: str
    root: Path
    sequences: List[Sequence]
    skipped: Dict[str, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.sequences)

    @property
    def num_frames(self) -> int:
        return sum(len(s) for s in self.sequences)


# ----------------------------------------------------------------------------------------- parsing
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


def _mask_box(vals: List[int]) -> np.ndarray:
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


def list_frames(folder: Path) -> Tuple[List[Path], List[str]]:
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


def _frame_range(frames: List[Path], first: int, count: int) -> Tuple[List[Path], List[str]]:
    """Frames numbered first .. first + count - 1 from a numerically named list."""
    by_num = {int(f.stem): f for f in frames if f.stem.isdigit()}
    want = range(first, first + count)
    missing = [n for n in want if n not in by_num]
    if missing:
        return [], [f"missing frame number(s) {', '.join(map(str, missing[:5]))} (range {first}-{first + count - 1})"]
    return [by_num[n] for n in want], []


def _make_seq(name: str, frames: List[Path], problems: List[str], gt_file: Path,
              full_gt: bool = True, absent: Optional[np.ndarray] = None,
              image_size: Optional[Tuple[int, int]] = None, first_frame: Optional[int] = None) -> Sequence:
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


def _subdirs(root: Path) -> List[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def _read_list(path: Path) -> List[str]:
    return [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]


# ----------------------------------------------------------------------------------------- loaders
def load_shared(root: Path, subset: Optional[str] = None) -> List[Sequence]:
    """Shared format: ``<root>/<seq>/img/00001.jpg ...`` and ``<root>/<seq>/groundtruth.txt`` (x,y,w,h a line)."""
    seqs = [d for d in _subdirs(root) if (d / "img").is_dir() or (d / "groundtruth.txt").is_file()]
    if not seqs:
        raise DatasetLayoutError(f"shared layout: no <seq>/img/ folder under {root} (missing {root}/<seq>/img)")
    out = []
    for d in seqs:
        frames, problems = list_frames(d / "img")
        out.append(_make_seq(d.name, frames, problems, d / "groundtruth.txt"))
    return out


def load_lasot(root: Path, subset: Optional[str] = None) -> List[Sequence]:
    """LaSOT: ``<root>/<class>/<class>-<k>/img/00000001.jpg``, ``groundtruth.txt``, ``full_occlusion.txt``,
    ``out_of_view.txt`` (frames flagged in either are absent). subset "test" keeps the names listed in
    ``<root>/testing_set.txt``; None or "all" keeps every sequence found.
    """
    seq_dirs = [s for c in _subdirs(root) for s in _subdirs(c) if s.name.startswith(c.name + "-")]
    if not seq_dirs:
        raise DatasetLayoutError(f"LaSOT layout: no <class>/<class>-<k>/ folder under {root} "
                                 f"(missing {root}/<class>/<class>-1/groundtruth.txt)")
    if subset and subset != "all":
        names = set(_read_list(_require(root / "testing_set.txt", f"LaSOT subset {subset!r}")))
        seq_dirs = [s for s in seq_dirs if s.name in names]
    out = []
    for d in seq_dirs:
        frames, problems = list_frames(d / "img")
        absent = None
        flags = [d / "full_occlusion.txt", d / "out_of_view.txt"]
        if all(f.is_file() for f in flags):
            occ, oov = (_read_flags(f) for f in flags)
            if len(occ) == len(oov):
                absent = (occ > 0) | (oov > 0)
            else:
                problems.append(f"full_occlusion.txt has {len(occ)} flags but out_of_view.txt {len(oov)}")
        else:
            problems.append(f"missing {' or '.join(str(f) for f in flags if not f.is_file())}")
        out.append(_make_seq(d.name, frames, problems, d / "groundtruth.txt", absent=absent))
    return out


def load_got10k(root: Path, subset: Optional[str] = None) -> List[Sequence]:
    """GOT-10k: ``<root>/<subset>/list.txt``, ``<root>/<subset>/<seq>/00000001.jpg``, ``groundtruth.txt``,
    ``cover.label`` or ``absence.label`` (cover 0 / absence 1 = absent), ``meta_info.ini`` (resolution).
    ``root`` may also be the subset folder itself. Subset "test" (or a test folder) has only the
    first-frame box: sequences get ``full_gt=False`` (results for the evaluation server, no metrics).
    """
    if (root / "list.txt").is_file() and not subset:
        split_dir, subset = root, ("test" if "test" in root.name.lower() else "val")
    else:
        subset = subset or ("val" if (root / "val").is_dir() else "test")
        split_dir = root / subset
    names = _read_list(_require(split_dir / "list.txt", f"GOT-10k layout (subset {subset})"))
    out = []
    for name in names:
        d = split_dir / name
        frames, problems = list_frames(d)
        full = subset != "test"
        absent = None
        if full:
            if (d / "cover.label").is_file():
                absent = _read_flags(d / "cover.label") == 0
            elif (d / "absence.label").is_file():
                absent = _read_flags(d / "absence.label") > 0
        out.append(_make_seq(name, frames, problems, d / "groundtruth.txt", full_gt=full, absent=absent,
                             image_size=_got10k_resolution(d / "meta_info.ini")))
    return out


def _got10k_resolution(path: Path) -> Optional[Tuple[int, int]]:
    if not path.is_file():
        return None
    parser = configparser.ConfigParser()
    try:
        parser.read_string(path.read_text())
        nums = re.findall(r"\d+", parser[parser.sections()[0]]["resolution"])
        return int(nums[0]), int(nums[1])
    except (configparser.Error, KeyError, IndexError):
        return None


def load_otb(root: Path, subset: Optional[str] = None) -> List[Sequence]:
    """OTB: ``<root>/<Seq>/img/0001.jpg`` and ``<root>/<Seq>/groundtruth_rect.txt`` (comma, tab or space
    separated). Two-target sequences (``groundtruth_rect.1.txt``, ``.2.txt``) become ``<Seq>-1``, ``<Seq>-2``.
    Known sequences whose annotation covers part of img/ (David, Tiger1, BlurCar1/3/4, Football1, ...)
    use the official frame range.
    """
    seqs = [d for d in _subdirs(root) if list(d.glob("groundtruth_rect*.txt"))]
    if not seqs:
        raise DatasetLayoutError(f"OTB layout: no <Seq>/groundtruth_rect.txt under {root} "
                                 f"(missing {root}/<Seq>/groundtruth_rect.txt)")
    out = []
    for d in seqs:
        gts = sorted(d.glob("groundtruth_rect*.txt"))
        frames, problems = list_frames(d / "img")
        for gt_file in gts:
            k = gt_file.name[len("groundtruth_rect"):-len(".txt")].strip(".")
            out.append(_make_seq(f"{d.name}-{k}" if k else d.name, frames, list(problems), gt_file,
                                 first_frame=_OTB_FIRST_FRAME.get(d.name)))
    return out


def load_uav123(root: Path, subset: Optional[str] = None) -> List[Sequence]:
    """UAV123: ``<root>/anno/<subset>/<seq>.txt`` (NaN rows = absent) and
    ``<root>/data_seq/UAV123/<folder>/000001.jpg``. subset "UAV123" (default) or "UAV20L".
    Sub-sequences ``<folder>_<k>`` take their official frame range from the folder ``<folder>``; a
    folder with more frames than annotation lines is cut to the annotated range, as the toolkits do.
    """
    subset = subset or "UAV123"
    anno_dir = _require(root / "anno" / subset, "UAV123 layout")
    data_dir = _require(root / "data_seq" / "UAV123", "UAV123 layout")
    out = []
    for gt_file in sorted(anno_dir.glob("*.txt")):
        name = gt_file.stem
        folder = data_dir / name
        if not folder.is_dir() and re.search(r"_\d+$", name):
            folder = data_dir / re.sub(r"_\d+$", "", name)
        frames, problems = list_frames(folder)
        out.append(_make_seq(name, frames, problems, gt_file, first_frame=_UAV123_FIRST_FRAME.get(name, 1)))
    if not out:
        raise DatasetLayoutError(f"UAV123 layout: no annotation file in {anno_dir} (missing {anno_dir}/<seq>.txt)")
    return out


def load_trackingnet(root: Path, subset: Optional[str] = None) -> List[Sequence]:
    """TrackingNet: ``<root>/<SPLIT>/anno/<seq>.txt`` and ``<root>/<SPLIT>/frames/<seq>/0.jpg ...``
    (0-based). SPLIT is ``subset`` ("TEST" by default, or "TRAIN_0" ...); ``root`` may be the split
    folder itself. TEST has only the first-frame box (``full_gt=False``).
    """
    if (root / "anno").is_dir():
        split_dir = root
    else:
        split_dir = root / (subset or "TEST")
    anno_dir = _require(split_dir / "anno", "TrackingNet layout")
    frames_dir = split_dir / "frames" if (split_dir / "frames").is_dir() else split_dir
    test = split_dir.name.upper().startswith("TEST")
    out = []
    for gt_file in sorted(anno_dir.glob("*.txt")):
        frames, problems = list_frames(frames_dir / gt_file.stem)
        out.append(_make_seq(gt_file.stem, frames, problems, gt_file, full_gt=not test))
    if not out:
        raise DatasetLayoutError(f"TrackingNet layout: no annotation in {anno_dir} (missing {anno_dir}/<seq>.txt)")
    return out


def load_vot(root: Path, subset: Optional[str] = None) -> List[Sequence]:
    """VOT short-term: ``<root>/list.txt``, ``<root>/<seq>/groundtruth.txt`` (rectangles, 8-value polygons or
    masks, converted to their axis-aligned box) and frames in ``<root>/<seq>/color/`` or ``<root>/<seq>/``.
    """
    names = _read_list(_require(root / "list.txt", "VOT layout"))
    out = []
    for name in names:
        d = root / name
        frames, problems = list_frames(d / "color" if (d / "color").is_dir() else d)
        out.append(_make_seq(name, frames, problems, d / "groundtruth.txt"))
    return out


LOADERS: Dict[str, Callable[[Path, Optional[str]], List[Sequence]]] = {
    "shared": load_shared, "lasot": load_lasot, "got10k": load_got10k, "otb": load_otb,
    "uav123": load_uav123, "trackingnet": load_trackingnet, "vot": load_vot}


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


def dataset_name(root: Path, fmt: str, subset: Optional[str]) -> str:
    """Folder-friendly dataset name: the folder name for the shared format, else format[_subset]."""
    if fmt == "shared":
        return Path(root).resolve().name
    sub = (subset or {"got10k": "val", "trackingnet": "test", "lasot": "all"}.get(fmt, "")).lower()
    return f"{fmt}_{sub}" if sub and sub not in (fmt, "uav123", "all") else fmt


def load_dataset(root: os.PathLike | str, fmt: Optional[str] = None, subset: Optional[str] = None,
                 strict: bool = False, name: Optional[str] = None) -> Dataset:
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
