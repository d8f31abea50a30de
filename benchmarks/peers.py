"""Peer trackers (OpenCV) behind the same interface as ``mixformerv2_cpu.Tracker``, and the tracker factory.

Interface of every returned tracker::

    tracker.init(frame_bgr_uint8, (x, y, w, h))      # frame: (H, W, 3) uint8 BGR; box: top-left x, y, width, height
    ok, (x, y, w, h) = tracker.update(frame)
    tracker.score                                     # float of the last update (NaN when the tracker has none)

Peers: ``nanotrack`` (cv2.TrackerNano, NanoTrack v2 ONNX backbone + head), ``vittrack``
(cv2.TrackerVit, VitTrack ONNX), ``csrt``, ``kcf`` (opencv-contrib-python), ``mil`` (OpenCV main).
The score is ``getTrackingScore()`` for NanoTrack / VitTrack and NaN for CSRT / KCF / MIL.

The ONNX files are looked up in ``peers_dir`` (``nanotrack_v2/nanotrack_backbone_sim.onnx``,
``nanotrack_v2/nanotrack_head_sim.onnx``, ``vittrack/vitTracker.onnx``); when ``peers_dir`` is None
the environment variable ``MIXFORMERV2_PEERS_DIR`` is used. A peer that cannot be built raises
:class:`PeerUnavailable` with the reason; nothing is dropped silently.
"""
from __future__ import annotations

import importlib
import math
import os
import re
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple

PEERS = ("nanotrack", "vittrack", "csrt", "kcf", "mil")
ENV_PEERS_DIR = "MIXFORMERV2_PEERS_DIR"
PEER_FILES: Dict[str, Tuple[str, ...]] = {
    "nanotrack": ("nanotrack_v2/nanotrack_backbone_sim.onnx", "nanotrack_v2/nanotrack_head_sim.onnx"),
    "vittrack": ("vittrack/vitTracker.onnx",),
}
_CV2_CLASS = {"nanotrack": "TrackerNano", "vittrack": "TrackerVit", "csrt": "TrackerCSRT",
              "kcf": "TrackerKCF", "mil": "TrackerMIL"}
_PIP_PACKAGE = {"csrt": "opencv-contrib-python (or opencv-contrib-python-headless)",
                "kcf": "opencv-contrib-python (or opencv-contrib-python-headless)"}

Box = Tuple[float, float, float, float]


class PeerUnavailable(RuntimeError):
    """A peer tracker that cannot be built here; the message says why and how to fix it."""


class PeerTracker:
    """An OpenCV tracker with the init / update / score interface of ``mixformerv2_cpu.Tracker``.

    OpenCV trackers take integer rectangles: the init box is rounded (w, h at least 1 px).
    """

    def __init__(self, name: str, factory: Callable[[], Any], has_score: bool) -> None:
        self.name = name
        self._factory = factory
        self._has_score = has_score
        self._tracker: Any = None
        self._box: Box = (math.nan,) * 4
        self.score: float = math.nan

    def init(self, frame: Any, box: Box) -> None:
        """Start tracking ``box`` (x, y, w, h) in ``frame`` ((H, W, 3) uint8 BGR)."""
        x, y, w, h = (float(v) for v in box)
        rect = (int(round(x)), int(round(y)), max(1, int(round(w))), max(1, int(round(h))))
        self._tracker = self._factory()
        self._tracker.init(frame, rect)
        self._box = (x, y, w, h)
        self.score = math.nan  # no update yet

    def update(self, frame: Any) -> Tuple[bool, Box]:
        """Track into ``frame``; returns (found, (x, y, w, h)). The tracker's box is returned even when
        not found; when OpenCV gives none (empty rectangle on failure) the last box is repeated."""
        if self._tracker is None:
            raise RuntimeError(f"{self.name}: update() called before init()")
        ok, rect = self._tracker.update(frame)
        box = tuple(float(v) for v in rect)
        if len(box) == 4 and box[2] > 0 and box[3] > 0:
            self._box = box  # type: ignore[assignment]
        self.score = float(self._tracker.getTrackingScore()) if self._has_score else math.nan
        return bool(ok), self._box


def resolve_peers_dir(peers_dir: Optional[os.PathLike | str] = None) -> Optional[Path]:
    """``peers_dir`` if given, else ``$MIXFORMERV2_PEERS_DIR``, else None (no implicit relative path)."""
    if peers_dir is not None:
        return Path(peers_dir)
    env = os.environ.get(ENV_PEERS_DIR)
    return Path(env) if env else None


def _cv2_module() -> Any:
    try:
        import cv2
    except ImportError as exc:  # pragma: no cover - cv2 is a dependency of the package
        raise PeerUnavailable(f"OpenCV is not installed ({exc}); pip install opencv-contrib-python") from None
    return cv2


def _peer_factory(name: str, peers_dir: Optional[Path]) -> Callable[[], Any]:
    cv2 = _cv2_module()
    cls_name = _CV2_CLASS[name]
    if not hasattr(cv2, cls_name):
        pkg = _PIP_PACKAGE.get(name, "opencv-python >= 4.9 (or opencv-contrib-python)")
        raise PeerUnavailable(f"{name}: cv2.{cls_name} is missing in OpenCV {cv2.__version__}; "
                              f"it is in the pip package {pkg}")
    cls = getattr(cv2, cls_name)
    if name not in PEER_FILES:
        return cls.create
    if peers_dir is None:
        raise PeerUnavailable(f"{name}: no peer model folder: set {ENV_PEERS_DIR} or pass peers_dir "
                              f"(--peers-dir) to a folder holding {', '.join(PEER_FILES[name])}")
    files = [peers_dir / f for f in PEER_FILES[name]]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise PeerUnavailable(f"{name}: missing model file(s) {', '.join(missing)}")
    params = getattr(cv2, cls_name + "_Params")()
    if name == "nanotrack":
        params.backbone, params.neckhead = str(files[0]), str(files[1])
    else:
        params.net = str(files[0])
    return lambda: cls.create(params)


def make_peer(name: str, threads: Optional[int] = None, peers_dir: Optional[Path] = None) -> PeerTracker:
    """Build peer ``name`` (one of PEERS). ``threads`` sets ``cv2.setNumThreads`` (process-wide).

    Raises PeerUnavailable (missing ONNX file, no peers folder, OpenCV module missing) and
    ValueError for an unknown name. The model is loaded once here to surface errors early.
    """
    key = name.lower()
    if key not in PEERS:
        raise ValueError(f"unknown peer {name!r}; peers: {', '.join(PEERS)}")
    cv2 = _cv2_module()
    if threads is not None:
        cv2.setNumThreads(int(threads))
    factory = _peer_factory(key, resolve_peers_dir(peers_dir))
    try:
        factory()
    except cv2.error as exc:
        raise PeerUnavailable(f"{key}: OpenCV could not load the tracker: {str(exc).strip()}") from None
    return PeerTracker(key, factory, has_score=key in PEER_FILES)


def available_peers(peers_dir: Optional[Path] = None) -> Dict[str, Optional[str]]:
    """{peer name: None if it can be built here, else the reason}."""
    out: Dict[str, Optional[str]] = {}
    for name in PEERS:
        try:
            make_peer(name, peers_dir=peers_dir)
            out[name] = None
        except PeerUnavailable as exc:
            out[name] = str(exc)
    return out


_IMPORT_SPEC = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


def make_tracker(name: Optional[str], threads: Optional[int] = None, backend: str = "openvino",
                 peers_dir: Optional[Path] = None, preset: Optional[str] = None) -> Any:
    """Tracker factory of the evaluation runner.

    * a peer name (PEERS) -> :func:`make_peer`;
    * ``"module.path:Factory"`` -> ``Factory(threads=threads)`` from an importable module (custom trackers);
    * anything else (a registered model name, an export folder, ``"default"`` or None for the default
      model) -> ``mixformerv2_cpu.Tracker(model=..., backend=backend, preset=preset, threads=threads)``.
    """
    if name is not None and name.lower() in PEERS:
        return make_peer(name, threads=threads, peers_dir=peers_dir)
    if name is not None and _IMPORT_SPEC.match(name) and not Path(name).exists():
        mod_name, attr = name.split(":")
        return getattr(importlib.import_module(mod_name), attr)(threads=threads)
    from mixformerv2_cpu import Tracker  # lazy: benchmarks import without the runtime

    model = None if name in (None, "default") else name
    return Tracker(model=model, backend=backend, preset=preset, threads=threads)
