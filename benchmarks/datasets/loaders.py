"""One loader per dataset format: ``load_<format>(root, subset) -> list[Sequence]`` (problems of
single sequences are recorded in ``Sequence.problems``, a wrong layout raises DatasetLayoutError)."""
from __future__ import annotations

import configparser
import re
from pathlib import Path
from collections.abc import Callable

from .reading import _make_seq, _read_flags, _read_list, _require, _subdirs, list_frames
from .records import DatasetLayoutError, Sequence

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



def load_shared(root: Path, subset: str | None = None) -> list[Sequence]:
    """Shared format: ``<root>/<seq>/img/00001.jpg ...`` and ``<root>/<seq>/groundtruth.txt`` (x,y,w,h a line)."""
    seqs = [d for d in _subdirs(root) if (d / "img").is_dir() or (d / "groundtruth.txt").is_file()]
    if not seqs:
        raise DatasetLayoutError(f"shared layout: no <seq>/img/ folder under {root} (missing {root}/<seq>/img)")
    out = []
    for d in seqs:
        frames, problems = list_frames(d / "img")
        out.append(_make_seq(d.name, frames, problems, d / "groundtruth.txt"))
    return out


def load_lasot(root: Path, subset: str | None = None) -> list[Sequence]:
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


def load_got10k(root: Path, subset: str | None = None) -> list[Sequence]:
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


def _got10k_resolution(path: Path) -> tuple[int, int] | None:
    if not path.is_file():
        return None
    parser = configparser.ConfigParser()
    try:
        parser.read_string(path.read_text())
        nums = re.findall(r"\d+", parser[parser.sections()[0]]["resolution"])
        return int(nums[0]), int(nums[1])
    except (configparser.Error, KeyError, IndexError):
        return None


def load_otb(root: Path, subset: str | None = None) -> list[Sequence]:
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


def load_uav123(root: Path, subset: str | None = None) -> list[Sequence]:
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


def load_trackingnet(root: Path, subset: str | None = None) -> list[Sequence]:
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


def load_vot(root: Path, subset: str | None = None) -> list[Sequence]:
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


LOADERS: dict[str, Callable[[Path, str | None], list[Sequence]]] = {
    "shared": load_shared, "lasot": load_lasot, "got10k": load_got10k, "otb": load_otb,
    "uav123": load_uav123, "trackingnet": load_trackingnet, "vot": load_vot}
