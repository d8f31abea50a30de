"""Peer trackers (OpenCV, and own loops on ONNX Runtime) with the interface of ``mixformerv2_cpu.Tracker``; the factory.

Interface of every returned tracker::

    tracker.init(frame_bgr_uint8, (x, y, w, h))      # frame: (H, W, 3) uint8 BGR; box: top-left x, y, width, height
    ok, (x, y, w, h) = tracker.update(frame)
    tracker.score                                     # float of the last update (NaN when the tracker has none)

Peers: ``nanotrack`` (cv2.TrackerNano, NanoTrack v2 ONNX backbone + head), ``vittrack``
(cv2.TrackerVit, VitTrack ONNX), ``csrt``, ``kcf`` (opencv-contrib-python), ``mil`` (OpenCV main),
and two peers whose reference tracking loop is written in this package and runs on ONNX Runtime:
``nanotrack_v3`` (:mod:`.peer_nanotrack_v3`) and ``fear_xs`` (:mod:`.peer_fear`).
The score is ``getTrackingScore()`` for NanoTrack / VitTrack, the classification score of the chosen
location for NanoTrack v3 / FEAR-XS, and NaN for CSRT / KCF / MIL.

The ONNX files are looked up in ``peers_dir`` (the paths in :data:`PEER_FILES`, e.g.
``nanotrack_v2/nanotrack_backbone_sim.onnx``); when ``peers_dir`` is None the environment variable
``MIXFORMERV2_PEERS_DIR`` is used. A peer that cannot be built raises :class:`PeerUnavailable` with the
reason (for a missing file: the path looked for and where to put it); nothing is dropped silently.
"""
from __future__ import annotations

import importlib
import math
import os
import re
from pathlib import Path
from typing import Any
from collections.abc import Callable

from mixformerv2_cpu.boxes import Box

PEERS = ("nanotrack", "vittrack", "csrt", "kcf", "mil", "nanotrack_v3", "fear_xs")
ENV_PEERS_DIR = "MIXFORMERV2_PEERS_DIR"
PEER_FILES: dict[str, tuple[str, ...]] = {
    "nanotrack": ("nanotrack_v2/nanotrack_backbone_sim.onnx", "nanotrack_v2/nanotrack_head_sim.onnx"),
    "vittrack": ("vittrack/vitTracker.onnx",),
    "nanotrack_v3": ("nanotrack_v3/nanotrack_backbone.onnx", "nanotrack_v3/nanotrack_head.onnx"),
    "fear_xs": ("fear_xs/fear_xs_template.onnx", "fear_xs/fear_xs_track.onnx"),
}
# where the model files come from (each folder's SOURCE.txt has the commit and checksums)
PEER_SOURCES: dict[str, str] = {
    "nanotrack": "https://github.com/HonglinChu/SiamTrackers NanoTrack/models/nanotrackv2/",
    "vittrack": "https://github.com/opencv/opencv_zoo models/object_tracking_vittrack/",
    "nanotrack_v3": "https://github.com/HonglinChu/SiamTrackers NanoTrack/models/nanotrackv3/",
    "fear_xs": "https://github.com/PinataFarms/FEARTracker evaluate/FEARDemo/FEARDemo/*.mlmodel, converted to ONNX",
}
# peers whose tracking loop lives in this package: name -> (module, class); they run on ONNX Runtime
_ORT_PEERS = {"nanotrack_v3": ("peer_nanotrack_v3", "NanoTrackV3"), "fear_xs": ("peer_fear", "FearXS")}
_CV2_CLASS = {"nanotrack": "TrackerNano", "vittrack": "TrackerVit", "csrt": "TrackerCSRT",
              "kcf": "TrackerKCF", "mil": "TrackerMIL"}
_PIP_PACKAGE = {"csrt": "opencv-contrib-python (or opencv-contrib-python-headless)",
                "kcf": "opencv-contrib-python (or opencv-contrib-python-headless)"}



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

    def update(self, frame: Any) -> tuple[bool, Box]:
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


def peer_backend(name: str) -> str:
    """Runtime of a peer, as the ``backend`` of its benchmark rows: ``onnxruntime`` or ``opencv``."""
    return "onnxruntime" if name.lower() in _ORT_PEERS else "opencv"


DEFAULT_PEERS_DIR = Path("..") / "shared" / "data" / "peers"


def default_peers_dir() -> Path | None:
    """$MIXFORMERV2_PEERS_DIR, else ./../shared/data/peers when that folder exists, else None."""
    env = os.environ.get(ENV_PEERS_DIR)
    if env:
        return Path(env)
    return DEFAULT_PEERS_DIR.resolve() if DEFAULT_PEERS_DIR.is_dir() else None


def resolve_peers_dir(peers_dir: os.PathLike | str | None = None) -> Path | None:
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


def _model_files(name: str, peers_dir: Path | None) -> list:
    """The model files of peer ``name`` under ``peers_dir``; PeerUnavailable naming the missing ones."""
    if peers_dir is None:
        raise PeerUnavailable(f"{name}: no peer model folder: set {ENV_PEERS_DIR} or pass peers_dir "
                              f"(--peers-dir) to a folder holding {', '.join(PEER_FILES[name])}")
    files = [peers_dir / f for f in PEER_FILES[name]]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        src = f" (from {PEER_SOURCES[name]})" if name in PEER_SOURCES else ""
        raise PeerUnavailable(f"{name}: missing model file(s) {', '.join(missing)}; put "
                              f"{', '.join(PEER_FILES[name])}{src} under the peers folder {peers_dir} "
                              f"(--peers-dir or ${ENV_PEERS_DIR})")
    return files


def _ort_peer(name: str, peers_dir: Path | None, threads: int | None) -> Any:
    """Build a peer of :data:`_ORT_PEERS` (own tracking loop on ONNX Runtime)."""
    files = _model_files(name, peers_dir)
    try:
        import onnxruntime  # noqa: F401
    except ImportError as exc:
        raise PeerUnavailable(f"{name}: ONNX Runtime is not installed ({exc}); pip install onnxruntime") from None
    mod_name, cls_name = _ORT_PEERS[name]
    cls = getattr(importlib.import_module(f"{__package__}.{mod_name}"), cls_name)
    try:
        return cls(*files, threads=threads)
    except Exception as exc:  # noqa: BLE001 - ORT raises its own exception types on bad files
        raise PeerUnavailable(f"{name}: ONNX Runtime could not load {', '.join(map(str, files))}: "
                              f"{type(exc).__name__}: {str(exc).strip()}") from None


def _peer_factory(name: str, peers_dir: Path | None) -> Callable[[], Any]:
    cv2 = _cv2_module()
    cls_name = _CV2_CLASS[name]
    if not hasattr(cv2, cls_name):
        pkg = _PIP_PACKAGE.get(name, "opencv-python >= 4.9 (or opencv-contrib-python)")
        raise PeerUnavailable(f"{name}: cv2.{cls_name} is missing in OpenCV {cv2.__version__}; "
                              f"it is in the pip package {pkg}")
    cls = getattr(cv2, cls_name)
    if name not in PEER_FILES:
        return cls.create
    files = _model_files(name, peers_dir)
    params = getattr(cv2, cls_name + "_Params")()
    if name == "nanotrack":
        params.backbone, params.neckhead = str(files[0]), str(files[1])
    else:
        params.net = str(files[0])
    return lambda: cls.create(params)


def make_peer(name: str, threads: int | None = None, peers_dir: Path | None = None) -> Any:
    """Build peer ``name`` (one of PEERS). ``threads`` sets ``cv2.setNumThreads`` (process-wide) and,
    for the ONNX Runtime peers (``nanotrack_v3``, ``fear_xs``), also their intra-op thread count.

    Returns a :class:`PeerTracker` (OpenCV peers) or the peer's own tracker object (same interface).
    Raises PeerUnavailable (missing ONNX file, no peers folder, OpenCV module / ONNX Runtime missing)
    and ValueError for an unknown name. The model is loaded once here to surface errors early.
    """
    key = name.lower()
    if key not in PEERS:
        raise ValueError(f"unknown peer {name!r}; peers: {', '.join(PEERS)}")
    cv2 = _cv2_module()
    if threads is not None:
        cv2.setNumThreads(int(threads))
    if key in _ORT_PEERS:
        return _ort_peer(key, resolve_peers_dir(peers_dir), threads)
    factory = _peer_factory(key, resolve_peers_dir(peers_dir))
    try:
        factory()
    except cv2.error as exc:
        raise PeerUnavailable(f"{key}: OpenCV could not load the tracker: {str(exc).strip()}") from None
    return PeerTracker(key, factory, has_score=key in PEER_FILES)


def available_peers(peers_dir: Path | None = None) -> dict[str, str | None]:
    """{peer name: None if it can be built here, else the reason}."""
    out: dict[str, str | None] = {}
    for name in PEERS:
        try:
            make_peer(name, peers_dir=peers_dir)
            out[name] = None
        except PeerUnavailable as exc:
            out[name] = str(exc)
    return out


_IMPORT_SPEC = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


def tracker_kind(name: str | None) -> str:
    """What :func:`make_tracker` builds for ``name``: "peer", "factory" (``module:Factory``) or "mixformerv2"."""
    if name is not None and name.lower() in PEERS:
        return "peer"
    if name is not None and _IMPORT_SPEC.match(name) and not Path(name).exists():
        return "factory"
    return "mixformerv2"


def make_tracker(name: str | None, threads: int | None = None, backend: str = "openvino",
                 peers_dir: Path | None = None, preset: str | None = None, precision: str = "auto") -> Any:
    """Tracker factory of the evaluation runner.

    * a peer name (PEERS) -> :func:`make_peer`;
    * ``"module.path:Factory"`` -> ``Factory(threads=threads)`` from an importable module (custom trackers);
    * anything else (a registered model name, an export folder, ``"default"`` or None for the default
      model) -> ``mixformerv2_cpu.Tracker(model=..., backend=backend, preset=preset, threads=threads,
      precision=precision)`` (peers have one precision and ignore it);
      ``preset`` is a preset name, a JSON file, or ``key=value,...`` overrides of 'default'
      (:func:`preset_arg`).
    """
    kind = tracker_kind(name)
    if kind == "peer":
        return make_peer(name, threads=threads, peers_dir=peers_dir)
    if kind == "factory":
        mod_name, attr = name.split(":")
        return getattr(importlib.import_module(mod_name), attr)(threads=threads)
    from mixformerv2_cpu import Tracker  # lazy: benchmarks import without the runtime

    model = None if name in (None, "default") else name
    return Tracker(model=model, backend=backend, preset=preset_arg(preset), threads=threads, precision=precision)


def preset_arg(text: str | None) -> Any:
    """A preset given as text: ``key=value,key=value`` (values JSON, e.g. ``recovery=false``) -> a dict
    of overrides of the 'default' preset; anything else (name, JSON file, None) unchanged."""
    if text is None or "=" not in text:
        return text
    import json

    out: dict[str, Any] = {}
    for item in re.split(r",(?=\s*\w+\s*=)", text):  # commas inside list values stay
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"preset overrides must be key=value[,key=value...], got {text!r}")
        try:
            out[key.strip()] = json.loads(value)
        except ValueError:
            raise ValueError(f"preset override {item!r}: the value must be JSON (a number, true/false, a list)") from None
    return out
