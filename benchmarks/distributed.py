"""Where evaluation jobs run: the worker function, a local process pool, and a Dask cluster.

A job is one tracker on one sequence (:class:`Job`); :func:`run_job` tracks it and returns boxes
(N, 4) ``x, y, w, h`` (top-left corner, pixels), per-frame seconds (N,) and scores (N,) to the caller,
which writes every file, so workers never touch the output folder.

Local: :func:`execute_local` runs jobs in spawned processes (``--workers N``), rebuilding the pool
when a worker process dies. Dask (optional extra ``distributed``: ``pip install dask[distributed]``):
:func:`execute_dask` makes every job one task; the workers need read access to the frames under the
same paths (a shared file system) and the ``mixformerv2-cpu`` package installed, but no access to
the output folder. Start workers with one thread each (``dask worker ADDRESS --nthreads 1``) so that
one worker runs one tracker at a time; the tracker's own thread count comes from the job
(``--threads`` / ``NAME:THREADS``).
"""
from __future__ import annotations

import logging
import math
import multiprocessing as mp
import os
import socket
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from collections.abc import Callable, Sequence

import numpy as np

from mixformerv2_cpu.boxes import Box
from .peers import make_tracker

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrackerSpec:
    """label: output folder name; target: peer / model name / export folder / ``module:Factory`` / None
    (default model); threads: thread count given to that tracker (and to cv2); preset: this tracker's
    MixFormerV2 preset (name, JSON file or ``key=value,...`` overrides of 'default'), None = the run's."""

    label: str
    target: str | None
    threads: int
    preset: str | None = None

    def preset_or(self, run_preset: str | None) -> str | None:
        """This tracker's preset, else the run's."""
        return self.preset if self.preset is not None else run_preset


@dataclass(frozen=True)
class Job:
    """One tracker on one sequence; frames are absolute paths, init_box the first-frame x, y, w, h."""

    spec: TrackerSpec
    seq_name: str
    frames: tuple[str, ...]
    init_box: Box
    backend: str = "openvino"
    preset: str | None = None
    peers_dir: str | None = None
    precision: str = "auto"


@dataclass
class JobResult:
    """boxes (N, 4) x,y,w,h; times (N,) seconds (frame 1 = init); scores (N,); error = traceback text."""

    tracker: str
    seq_name: str
    boxes: np.ndarray | None = None
    times: np.ndarray | None = None
    scores: np.ndarray | None = None
    error: str | None = None
    host: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")


def _read_frame(path: str) -> np.ndarray:
    import cv2
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        raise IOError(f"cannot read frame {path}")
    return img


@dataclass
class Track:
    """What one tracker did on N frames: boxes (N, 4) x,y,w,h; times (N,) s (frame 1 = init); scores (N,);
    ok (N,) bool; states (N,) ("init" on frame 1, "-" for trackers without a state)."""

    boxes: np.ndarray
    times: np.ndarray
    scores: np.ndarray
    ok: np.ndarray
    states: list[str]


def job_tracker(job: Job):
    """The job's tracker, with OpenCV's threads and log level set for this worker."""
    import cv2
    cv2.setNumThreads(job.spec.threads)
    try:
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    except AttributeError:  # pragma: no cover
        pass
    return make_tracker(job.spec.target, threads=job.spec.threads, backend=job.backend,
                        peers_dir=Path(job.peers_dir) if job.peers_dir else None, preset=job.spec.preset_or(job.preset),
                        precision=job.precision)


def track_frames(tracker, frames: Sequence, init_box: Box, read: Callable) -> Track:
    """Init on ``read(frames[0])``, update on the rest. Only the tracker calls are timed (not the frame
    decode). An update that returns an invalid box (NaN, w or h <= 0) records the previous box instead."""
    n = len(frames)
    out = Track(np.zeros((n, 4)), np.zeros(n), np.full(n, np.nan), np.ones(n, bool), ["init"] + ["-"] * (n - 1))
    frame = read(frames[0])
    t0 = time.perf_counter()
    tracker.init(frame, init_box)
    out.times[0] = time.perf_counter() - t0
    out.boxes[0] = init_box
    for i in range(1, n):
        frame = read(frames[i])
        t0 = time.perf_counter()
        found, box = tracker.update(frame)
        out.times[i] = time.perf_counter() - t0
        b = np.asarray(box, dtype=np.float64).reshape(-1)
        valid = b.size == 4 and np.isfinite(b).all() and b[2] > 0 and b[3] > 0
        out.boxes[i] = b if valid else out.boxes[i - 1]
        out.ok[i] = bool(found)
        out.scores[i] = float(getattr(tracker, "score", math.nan))
        out.states[i] = str(getattr(tracker, "state", "-"))
    return out


def run_job(job: Job) -> JobResult:
    """Track one sequence (runs in a worker process). Exceptions become ``JobResult.error``."""
    try:
        t = track_frames(job_tracker(job), job.frames, job.init_box, _read_frame)
        return JobResult(job.spec.label, job.seq_name, t.boxes, t.times, t.scores)
    except Exception:  # noqa: BLE001 - one failing sequence must not stop the others
        return JobResult(job.spec.label, job.seq_name, error=traceback.format_exc())


# --------------------------------------------------------------------------------------- execution
OnResult = Callable[[JobResult], None]


def execute_local(jobs: Sequence[Job], workers: int, on_result: OnResult, max_attempts: int = 3,
                  worker: Callable[[Any], JobResult] = run_job) -> None:
    """Run jobs in ``workers`` spawned processes (in this process when workers <= 1).

    A worker that dies (segfault, out of memory) breaks the pool, and every job not finished by then
    fails with it, the innocent ones included. Those jobs then run one at a time, each in its own
    one-worker pool, so only a job that kills its own worker fails; it is reported failed after
    ``max_attempts - 1`` such tries (at least one). ``worker``: the job function (a module-level
    function; :func:`run_job` for one-pass jobs).
    """
    if workers <= 1:
        for job in jobs:
            on_result(worker(job))
        return
    ctx = mp.get_context("spawn")
    broken: list[Job] = []
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        futures = {pool.submit(worker, job): job for job in jobs}
        for fut in as_completed(futures):
            try:
                on_result(fut.result())
            except BrokenProcessPool:
                broken.append(futures[fut])
    if broken:
        log.warning("a worker process died; running the %d unfinished job(s) one at a time", len(broken))
    tries = max(1, max_attempts - 1)
    for job in broken:
        for attempt in range(1, tries + 1):
            try:
                with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as solo:
                    on_result(solo.submit(worker, job).result())
                break
            except BrokenProcessPool as exc:
                if attempt == tries:
                    on_result(JobResult(job.spec.label, job.seq_name, error=f"worker process died: {exc}"))


def execute_dask(jobs: Sequence[Job], on_result: OnResult, address: str | None = None,
                 n_workers: int = 2, client: Any = None, worker: Callable[[Any], JobResult] = run_job) -> None:
    """Run ``jobs`` on a Dask cluster and call ``on_result`` as each finishes.

    ``client``: an existing ``distributed.Client`` (used as is); otherwise ``address`` of a running
    scheduler, or None to start a ``LocalCluster(n_workers, threads_per_worker=1, processes=True)``
    for the duration of the call. A task that raises or whose worker dies (after Dask's own retries)
    becomes a failed JobResult; the other jobs go on.
    """
    try:
        from distributed import Client, LocalCluster, as_completed
    except ImportError as exc:
        raise ImportError("the Dask path needs the 'distributed' extra: pip install 'dask[distributed]'") from exc
    owned: list = []
    try:
        if client is None:
            if address is None:
                cluster = LocalCluster(n_workers=max(1, n_workers), threads_per_worker=1, processes=True,
                                       dashboard_address=None)
                owned.append(cluster)
                client = Client(cluster)
            else:
                client = Client(address)
            owned.insert(0, client)
        log.info("dask: %d job(s) on %s", len(jobs), client)
        futures = {client.submit(worker, job, pure=False): job for job in jobs}
        for fut in as_completed(list(futures)):
            job = futures[fut]
            try:
                res = fut.result()
            except Exception as exc:  # noqa: BLE001 - a lost task must not lose the others
                res = JobResult(job.spec.label, job.seq_name, error=f"dask task failed: {exc!r}")
            on_result(res)
            fut.release()
    finally:
        for obj in owned:
            obj.close()
