"""One benchmark row: decoding the source once, timing loops, the per-row worker (in-process or in a
fresh spawned process) and its memory readings. Used by :mod:`.fps`.
"""
from __future__ import annotations

import json
import math
import multiprocessing
import os
import sys
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path
from collections.abc import Callable, Sequence

import numpy as np

from mixformerv2_cpu.boxes import parse_box
from mixformerv2_cpu.preprocess import input_shape


class BenchError(ValueError):
    """Bad input (unknown name, unreadable source...): the message says what is valid."""


# ------------------------------------------------------------------------------------------ settings
@dataclass(frozen=True)
class Settings:
    warmup: int = 10          # untimed iterations before each measured phase (at most warmup_time s, >= 1)
    warmup_time: float = 2.0
    min_time: float = 3.0     # seconds, per phase
    min_iters: int = 20       # iterations, per phase
    max_iters: int = 100000   # safety cap for very fast peers
    max_frames: int = 150     # frames decoded from the source (end-to-end cycles through them)
    isolate: bool = True      # one fresh spawned process per row
    row_timeout: float = 900.0


QUICK = dict(warmup=1, min_time=0.05, min_iters=3, max_frames=8)


@dataclass(frozen=True)
class RowSpec:
    kind: str                 # "single" | "multi" | "peer"
    label: str                # model label or peer name
    backend: str              # BACKENDS, or the peer's runtime ("opencv" / "onnxruntime", peers.peer_backend)
    precision: str            # PRECISIONS, or "-" for peers
    threads: int
    targets: int = 1
    model: str | None = None   # manifest path (MixFormerV2 rows)

    @property
    def key(self) -> str:
        return f"{self.kind}|{self.label}|{self.backend}|{self.precision}|t{self.threads}|n{self.targets}"


@dataclass
class Source:
    name: str
    frames: np.ndarray        # (N, H, W, 3) uint8 BGR, decoded once
    box: tuple[float, float, float, float]
    total_frames: int         # frames in the source (before --max-frames)


# -------------------------------------------------------------------------------------------- source
def _read_box(text: str) -> tuple[float, float, float, float]:
    try:
        box = parse_box(text)
    except ValueError as exc:
        raise BenchError(f"init box: {exc}") from None
    if box[2] <= 0 or box[3] <= 0:
        raise BenchError(f"init box must have w,h > 0, got {text.strip()!r}")
    return box


def load_source(path: os.PathLike | str, box: str | None = None, max_frames: int = 150) -> Source:
    """Decode up to ``max_frames`` frames of a sequence folder (img/ + groundtruth.txt), an image
    folder or a video, once. The init box comes from ``box``, groundtruth.txt (first line) or a
    video's sidecar JSON (``init_box_xywh``). Errors: BenchError."""
    import cv2
    from mixformerv2_cpu.sources import SourceError, VideoFileSource, ImageFolderSource, quiet_opencv

    path = Path(path)
    if not path.exists():
        raise BenchError(f"source not found: {path}")
    gt_file: Path | None = None
    frames: list[np.ndarray] = []
    try:
        if path.is_dir():
            folder = path / "img" if (path / "img").is_dir() else path
            for cand in (path / "groundtruth.txt", path / "groundtruth_rect.txt", folder.parent / "groundtruth.txt"):
                if cand.is_file():
                    gt_file = cand
                    break
            paths = ImageFolderSource(folder).paths
            total = len(paths)
            with quiet_opencv():
                for p in paths[:max_frames]:
                    img = cv2.imread(str(p), cv2.IMREAD_COLOR)
                    if img is None:
                        raise BenchError(f"unreadable frame {p} in source {path}")
                    frames.append(img)
        else:
            src = VideoFileSource(path)
            total = src.frame_count or 0
            with src:
                for fr in src:
                    frames.append(fr.image)
                    if len(frames) >= max_frames:
                        break
            total = max(total, len(frames))
    except SourceError as exc:
        raise BenchError(f"source {path}: {exc}") from None
    if len(frames) < 2:
        raise BenchError(f"source {path} has {len(frames)} readable frame(s); at least 2 are needed")
    if len({f.shape for f in frames}) != 1:
        raise BenchError(f"source {path}: frames have different sizes")
    if box is not None:
        init = _read_box(box)
    elif gt_file is not None:
        first = next((ln for ln in gt_file.read_text().splitlines() if ln.strip()), "")
        init = _read_box(first)
    else:
        sidecar = path.with_suffix(".json")
        data = json.loads(sidecar.read_text()) if sidecar.is_file() else {}
        if "init_box_xywh" not in data:
            raise BenchError(f"source {path} has no groundtruth.txt (or sidecar JSON with init_box_xywh); "
                             "pass --box x,y,w,h")
        init = _read_box(",".join(map(str, data["init_box_xywh"])))
    name = path.parent.name if path.is_dir() and path.name == "img" else path.name
    return Source(name, np.stack(frames), init, total)


def multi_boxes(box: Sequence[float], n: int, width: int, height: int, seed: int = 0) -> list[tuple[float, ...]]:
    """``n`` boxes of the GT box's size tiled around it (plus a small jitter), clipped inside the frame."""
    x, y, w, h = (float(v) for v in box)
    w, h = min(w, width - 1.0), min(h, height - 1.0)
    rng = np.random.default_rng(seed)
    offsets = [(0, 0), (1, 0), (0, 1), (-1, 0), (0, -1), (1, 1), (-1, -1), (1, -1), (-1, 1)]
    out = []
    for i in range(n):
        ox, oy = offsets[i % len(offsets)]
        ring = 1 + i // len(offsets)
        jx, jy = (rng.uniform(-0.1, 0.1, 2) if i else (0.0, 0.0))
        bx = x + (ox * ring + jx) * 1.2 * w
        by = y + (oy * ring + jy) * 1.2 * h
        bx = float(np.clip(bx, 0.0, width - w))
        by = float(np.clip(by, 0.0, height - h))
        out.append((bx, by, w, h))
    return out


# -------------------------------------------------------------------------------------------- timing
def measure(fn: Callable[[], object], warmup: int, min_time: float, min_iters: int, max_iters: int = 100000,
            prepare: Callable[[], None] | None = None, warmup_time: float = math.inf) -> np.ndarray:
    """Warm-up (``warmup`` untimed calls, stopping early once ``warmup_time`` s have passed after the
    first), then time ``fn`` (perf_counter, ms) until both ``min_iters`` and ``min_time`` are reached.
    ``prepare`` runs untimed before every call."""
    start = time.perf_counter()
    for i in range(warmup):
        if i and time.perf_counter() - start >= warmup_time:
            break
        if prepare:
            prepare()
        fn()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < max_iters and (len(times) < min_iters or time.perf_counter() - start < min_time):
        if prepare:
            prepare()
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return np.asarray(times)


PAIRED_BLOCK = 10  # calls per block of the paired phase


def measure_paired(network: Callable[[], object], step: Callable[[], object], prepare: Callable[[], None],
                   min_time: float, min_iters: int, block: int = PAIRED_BLOCK) -> tuple[np.ndarray, np.ndarray]:
    """The network alone and ``update()``, timed in alternating blocks of ``block`` calls (ms arrays, same
    length) until both ``min_iters`` updates and ``min_time`` s are reached.

    A VM's speed drifts over seconds (one run measured rows 1.5x apart), so the ratio of two phases
    timed one after the other measures drift as much as overhead; blocks of ~0.1 s see the same
    drift. Each block starts with one untimed call: the network block then times back-to-back calls
    (the model-only condition), the update block calls that follow other updates (the tracking loop).
    ``prepare`` runs untimed before every update (the next frame into the buffer)."""
    net: list[float] = []
    upd: list[float] = []
    start = time.perf_counter()
    while len(upd) < min_iters or time.perf_counter() - start < min_time:
        network()
        for _ in range(block):
            t0 = time.perf_counter()
            network()
            net.append((time.perf_counter() - t0) * 1e3)
        prepare()
        step()
        for _ in range(block):
            prepare()
            t0 = time.perf_counter()
            step()
            upd.append((time.perf_counter() - t0) * 1e3)
    return np.asarray(net), np.asarray(upd)


def paired_stats(net: np.ndarray, upd: np.ndarray) -> dict:
    """Overhead of ``update()`` over the network from one paired phase: medians, update p90 and their ratios."""
    n, u = float(np.median(net)), float(np.median(upd))
    p90 = float(np.percentile(upd, 90))
    return {"network_median_ms": n, "update_median_ms": u, "update_p90_ms": p90,
            "overhead_pct": 100.0 * (u / n - 1.0), "p90_over_median": p90 / u, "iters": int(upd.size)}


def stats(ms: np.ndarray) -> dict:
    mean = float(ms.mean())
    return {"median_ms": float(np.median(ms)), "p90_ms": float(np.percentile(ms, 90)), "mean_ms": mean,
            "fps": 1000.0 / mean if mean > 0 else math.inf, "iters": int(ms.size)}


class FrameLoop:
    """Feeds frames 1..N-1 to ``update``; at the end re-inits on frame 0 (untimed, via ``prepare``).

    Each frame is first written into one reused buffer (untimed, in ``prepare``) and ``update`` gets
    that buffer, as a video decoder hands the frame it has just written: the frame is in the CPU's
    caches, not read cold from the N decoded frames held in memory (on a 2-core EPYC the cold read
    doubled the default model's crop: 0.11 instead of 0.055 ms).
    """

    def __init__(self, frames: np.ndarray, init: Callable[[np.ndarray], None], update: Callable[[np.ndarray], object]):
        self.frames, self._init, self._update = frames, init, update
        self.buffer = np.empty_like(frames[0])
        self.i = len(frames)  # forces an init on the first prepare()
        self.reinits = -1

    def prepare(self) -> None:
        if self.i >= len(self.frames):
            self._init(self.frames[0])
            self.i = 1
            self.reinits += 1
        np.copyto(self.buffer, self.frames[self.i])

    def step(self) -> None:
        self._update(self.buffer)
        self.i += 1


# --------------------------------------------------------------------------------------- row worker
def _rss_bytes() -> int | None:
    try:
        import psutil
        return int(psutil.Process().memory_info().rss)
    except Exception:  # noqa: BLE001
        return None


def _peak_rss_bytes() -> int | None:
    """Peak RSS of this process: VmHWM of /proc/self/status on Linux (the high-water mark of this
    process's own memory; ru_maxrss would also carry the parent's peak across fork + exec), else
    ru_maxrss."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        import resource
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return int(peak if sys.platform == "darwin" else peak * 1024)
    except (ImportError, OSError):
        return None


def run_row(spec: RowSpec, frames: np.ndarray, box: Sequence[float], settings: Settings,
            peers_dir: str | None = None, isolated: bool = True) -> dict:
    """Measure one row in this process; returns the row's result dict (status 'ok')."""
    import cv2
    try:
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    except AttributeError:
        pass
    rss0 = _rss_bytes()
    cv2.setNumThreads(spec.threads)
    h, w = frames.shape[1:3]
    t0 = time.perf_counter()
    if spec.kind == "peer":
        from .peers import make_peer
        trk = make_peer(spec.label, threads=spec.threads, peers_dir=Path(peers_dir) if peers_dir else None)
    else:
        from mixformerv2_cpu import MultiTracker
        trk = MultiTracker(spec.model, backend="onnxruntime" if spec.backend == "baseline" else spec.backend,
                           threads=spec.threads, precision=spec.precision,
                           graphs="full" if spec.backend == "baseline" else "cached")
    load_s = time.perf_counter() - t0
    boxes = multi_boxes(box, spec.targets, w, h)
    init = (lambda f: trk.init(f, boxes[0])) if spec.kind == "peer" else (lambda f: trk.init(f, boxes))
    t0 = time.perf_counter()
    init(frames[0])
    trk.update(frames[1])
    first_s = time.perf_counter() - t0
    result: dict = {"load_s": load_s, "first_s": first_s, "model_only": None}
    if spec.kind != "peer":
        eng = trk.engine
        result["engine"] = eng.description
        result["threads_used"] = eng.threads
        rng = np.random.default_rng(0)
        m = eng.meta
        tmpl = rng.standard_normal((spec.targets, *input_shape(m.input_format, m.template_size)), dtype=np.float32)
        state = eng.encode_templates(tmpl, tmpl.copy())
        x = rng.standard_normal((spec.targets, *input_shape(m.input_format, m.search_size)), dtype=np.float32)
        result["model_only"] = stats(measure(lambda: eng.search(x, state), settings.warmup, settings.min_time,
                                             settings.min_iters, settings.max_iters,
                                             warmup_time=settings.warmup_time))
    loop = FrameLoop(frames, init, trk.update)
    ms = measure(loop.step, settings.warmup, settings.min_time, settings.min_iters, settings.max_iters,
                 prepare=loop.prepare, warmup_time=settings.warmup_time)
    result["end_to_end"] = stats(ms)
    if spec.kind == "single":  # the overhead of a single target's update() (the table's column)
        result["paired"] = paired_stats(*measure_paired(lambda: eng.search(x, state), loop.step, loop.prepare,
                                                        settings.min_time, settings.min_iters))
    result["reinits"] = max(loop.reinits, 0)
    rss1 = _rss_bytes()
    if isolated:
        peak = _peak_rss_bytes()
        result["rss_mb"] = peak / 2 ** 20 if peak else None
        result["rss_delta_mb"] = (peak - rss0) / 2 ** 20 if peak and rss0 else None
    else:
        result["rss_mb"] = rss1 / 2 ** 20 if rss1 else None
        result["rss_delta_mb"] = (rss1 - rss0) / 2 ** 20 if rss1 and rss0 else None
    result["status"] = "ok"
    return result


def _failure(exc: BaseException) -> dict:
    from .peers import PeerUnavailable
    msg = f"{type(exc).__name__}: {exc}".strip().splitlines()[0]
    if isinstance(exc, PeerUnavailable):
        return {"status": "unavailable", "reason": str(exc)}
    return {"status": "failed", "reason": msg, "traceback": traceback.format_exc()}


def _child(conn, spec_d: dict, frames_file: str, box, settings_d: dict, peers_dir: str | None) -> None:
    try:
        frames = np.load(frames_file)  # a private copy, in RAM before the baseline RSS is read
        res = run_row(RowSpec(**spec_d), frames, box, Settings(**settings_d), peers_dir, isolated=True)
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        res = _failure(exc)
    conn.send(res)
    conn.close()


def run_row_isolated(spec: RowSpec, frames_file: str, box, settings: Settings, peers_dir: str | None) -> dict:
    ctx = multiprocessing.get_context("spawn")
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(send, asdict(spec), frames_file, tuple(box), asdict(settings), peers_dir),
                       daemon=True)
    proc.start()
    send.close()
    try:
        if recv.poll(settings.row_timeout):
            res = recv.recv()
        else:
            proc.kill()
            res = {"status": "failed", "reason": f"timed out after {settings.row_timeout:.0f} s"}
    except EOFError:
        proc.join(5)
        res = {"status": "failed", "reason": f"worker process died (exit code {proc.exitcode})"}
    proc.join(10)
    return res
