"""One-pass evaluation (OPE): run every (tracker, sequence) job, store the result files, summarise.

``mixformerv2-eval`` (accuracy.py) and the recovery protocol (recovery.py) both run it.
"""
from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from collections.abc import Sequence as Seq

import numpy as np

from .datasets import Dataset
from .distributed import Job, JobResult, TrackerSpec, execute_dask, execute_local
from .metrics import PROTOCOLS, aggregate, evaluate_sequence, fps_from_times

log = logging.getLogger(__name__)


class SettingsMismatch(ValueError):
    """An output folder holds results of the same tracker label made with other settings."""


class ResultStore:
    """Result files of one dataset under ``<out>/<dataset>/`` (layout in the module docstring)."""

    def __init__(self, out_dir: Path, dataset: str) -> None:
        self.root = Path(out_dir) / dataset

    def box_file(self, tracker: str, seq: str) -> Path:
        return self.root / tracker / f"{seq}.txt"

    def time_file(self, tracker: str, seq: str) -> Path:
        return self.root / tracker / f"{seq}_time.txt"

    def error_file(self, tracker: str, seq: str) -> Path:
        return self.root / tracker / f"{seq}.error.txt"

    def settings_file(self, tracker: str) -> Path:
        return self.root / tracker / "settings.json"

    def check_settings(self, tracker: str, settings: dict, resume: bool) -> None:
        """Record what a tracker label's results are made with; with ``resume``, refuse results of the
        same label made with other settings (they would be mixed into this run's summary)."""
        path = self.settings_file(tracker)
        if resume and path.is_file():
            try:
                old = json.loads(path.read_text())
            except ValueError:
                old = None
            if old != settings:
                diff = ", ".join(f"{k}={(old or {}).get(k)!r} there, {v!r} now" for k, v in settings.items()
                                 if (old or {}).get(k) != v) or "unreadable settings file"
                raise SettingsMismatch(f"{path.parent}: results of tracker {tracker!r} were made with other "
                                       f"settings ({diff}); use another --out, another label, or --no-resume")
        path.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write(path, json.dumps(settings, sort_keys=True))

    def trackers(self) -> list[str]:
        """Labels of every tracker folder holding at least one result."""
        if not self.root.is_dir():
            return []
        return sorted(d.name for d in self.root.iterdir() if d.is_dir() and any(d.glob("*_time.txt")))

    def is_done(self, tracker: str, seq: str, num_frames: int) -> bool:
        boxes = self.load_boxes(tracker, seq)
        return boxes is not None and len(boxes) == num_frames and self.time_file(tracker, seq).is_file()

    def load_boxes(self, tracker: str, seq: str) -> np.ndarray | None:
        """(N, 4) boxes or None when missing / unreadable."""
        path = self.box_file(tracker, seq)
        if not path.is_file():
            return None
        try:
            return np.loadtxt(path, delimiter="\t", dtype=np.float64, ndmin=2)
        except ValueError:
            return None

    def load_times(self, tracker: str, seq: str) -> np.ndarray:
        path = self.time_file(tracker, seq)
        return np.loadtxt(path, dtype=np.float64, ndmin=1) if path.is_file() else np.zeros(0)

    def write(self, res: JobResult) -> None:
        """Write one job's files (box file last, each file atomically) or its error file."""
        err = self.error_file(res.tracker, res.seq_name)
        err.parent.mkdir(parents=True, exist_ok=True)
        if res.error is not None or res.boxes is None or res.times is None:
            _atomic_write(err, f"host: {res.host}\n{res.error}")
            return
        seq, trk = res.seq_name, res.tracker
        got = self.root / trk / "got10k" / seq
        got.mkdir(parents=True, exist_ok=True)
        times = "".join(f"{t:.8f}\n" for t in res.times)
        scores = res.scores if res.scores is not None else np.full(len(res.times), np.nan)
        _atomic_write(got / f"{seq}_time.txt", times)
        _atomic_write(got / f"{seq}_001.txt", "".join("%.3f,%.3f,%.3f,%.3f\n" % tuple(b) for b in res.boxes))
        _atomic_write(self.root / trk / f"{seq}_score.txt", "".join(f"{s:.6f}\n" for s in scores))
        _atomic_write(self.time_file(trk, seq), times)
        _atomic_write(self.box_file(trk, seq), "".join("%.2f\t%.2f\t%.2f\t%.2f\n" % tuple(b) for b in res.boxes))
        if err.exists():
            err.unlink()


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


# --------------------------------------------------------------------------------------- execution
class Progress:
    """tqdm bar (if installed and enabled) with sequences done and aggregate frames per second."""

    def __init__(self, total: int, enabled: bool = True) -> None:
        self.frames = 0
        self.start = time.perf_counter()
        self.bar = None
        if enabled and total:
            try:
                from tqdm import tqdm
                self.bar = tqdm(total=total, unit="seq", desc="eval", dynamic_ncols=True)
            except ImportError:
                pass

    def update(self, res: JobResult) -> None:
        self.frames += 0 if res.boxes is None else len(res.boxes)
        fps = self.frames / max(time.perf_counter() - self.start, 1e-9)
        if self.bar is not None:
            self.bar.set_postfix_str(f"{fps:.1f} frames/s, last {res.tracker}/{res.seq_name}")
            self.bar.update(1)
        else:
            log.info("done %s/%s (%.1f frames/s overall)", res.tracker, res.seq_name, fps)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# ------------------------------------------------------------------------------------------ summary
def summarize(dataset: Dataset, store: ResultStore, trackers: Seq[str] | None = None) -> dict:
    """Metrics of every tracker with results for ``dataset`` (or of ``trackers``) -> JSON-able dict.

    Scores are fractions in [0, 1]; fps = update frames / update seconds (frame 1 excluded).
    """
    protocol = PROTOCOLS[dataset.format]
    names = [s.name for s in dataset.sequences]
    out: dict = {"dataset": dataset.name, "format": dataset.format, "root": str(dataset.root),
                 "protocol": protocol.as_dict(), "sequences": names, "skipped_sequences": dataset.skipped,
                 "trackers": {}}
    for label in trackers or store.trackers():
        per_seq, results, failed, missing = {}, [], {}, []
        n_upd, t_upd = 0, 0.0
        for seq in dataset.sequences:
            boxes = store.load_boxes(label, seq.name)
            if boxes is None or len(boxes) != len(seq):
                err = store.error_file(label, seq.name)
                if err.is_file():
                    lines = [ln for ln in err.read_text().splitlines() if ln.strip()]
                    failed[seq.name] = lines[-1] if lines else "failed"
                else:
                    missing.append(seq.name)
                continue
            n, t = fps_from_times(store.load_times(label, seq.name))
            n_upd, t_upd = n_upd + n, t_upd + t
            entry: dict = {"frames": len(seq), "fps": n / t if t > 0 else float("nan")}
            if seq.full_gt:
                size = seq.frame_size() if protocol.clip_to_image else None
                res = evaluate_sequence(boxes, seq.gt, protocol, image_size=size)
                results.append(res)
                entry.update(res.metrics())
            per_seq[seq.name] = entry
        scores, curves = aggregate(results)
        overall = dict(scores, fps=n_upd / t_upd if t_upd > 0 else float("nan"),
                       sequences=len(per_seq), frames=int(sum(e["frames"] for e in per_seq.values())))
        out["trackers"][label] = {"overall": overall, "sequences": per_seq, "failed": failed,
                                  "missing": missing, "curves": {k: v.tolist() for k, v in curves.items()}}
    return out


def _json_safe(obj: object) -> object:
    """NaN / inf -> None (JSON null), recursively."""
    if isinstance(obj, float):
        return obj if np.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


def write_summary(summary: dict, root: Path, plots: bool = True) -> list[Path]:
    """summary.json (NaN written as null), summary.md and (optionally) the PNG plots in ``root``;
    returns the written paths."""
    from .plots import markdown_summary, plot_curves

    root.mkdir(parents=True, exist_ok=True)
    js = root / "summary.json"
    _atomic_write(js, json.dumps(_json_safe(summary), indent=1, allow_nan=False))
    md = root / "summary.md"
    _atomic_write(md, markdown_summary(summary))
    paths = [js, md]
    if plots:
        paths += plot_curves(summary, root)
    return paths


def run_settings(spec: TrackerSpec, backend: str, preset: str | None, precision: str) -> dict:
    """What a tracker's results depend on besides its code: the target, and for MixFormerV2 trackers the
    backend, precision and preset (peers and custom factories do not take them)."""
    from .peers import tracker_kind

    if tracker_kind(spec.target) != "mixformerv2":
        return {"target": spec.target}
    return {"target": spec.target, "backend": backend, "precision": precision,
            "preset": spec.preset_or(preset)}


def evaluate(dataset: Dataset, specs: Seq[TrackerSpec], out_dir: Path, workers: int = 1,
             backend: str = "openvino", preset: str | None = None, peers_dir: Path | None = None,
             resume: bool = True, dask: str | None = None, progress: bool = True,
             plots: bool = True, precision: str = "auto") -> tuple[dict, list[JobResult]]:
    """Run every tracker on every sequence not yet finished, then write the summary and plots.

    ``dask``: None (local processes), ``"local"`` (a LocalCluster of ``workers`` processes) or a
    scheduler address. Returns (summary dict, results of the jobs that failed).
    """
    store = ResultStore(out_dir, dataset.name)
    for spec in specs:
        store.check_settings(spec.label, run_settings(spec, backend, preset, precision), resume)
    jobs = [Job(spec, seq.name, tuple(str(f) for f in seq.frames), seq.init_box, backend, preset,
                str(peers_dir) if peers_dir else None, precision)
            for spec in specs for seq in dataset.sequences
            if not (resume and store.is_done(spec.label, seq.name, len(seq)))]
    done = len(specs) * len(dataset.sequences) - len(jobs)
    if done:
        log.info("resume: %d finished sequence result(s) kept, %d job(s) to run", done, len(jobs))
    jobs.sort(key=lambda j: -len(j.frames))
    failures: list[JobResult] = []
    bar = Progress(len(jobs), enabled=progress)

    def on_result(res: JobResult) -> None:
        store.write(res)
        if res.error is not None:
            failures.append(res)
            last = res.error.strip().splitlines()[-1] if res.error.strip() else "failed"
            log.warning("%s failed on %s: %s", res.tracker, res.seq_name, last)
        bar.update(res)

    try:
        if dask:
            execute_dask(jobs, on_result, address=None if dask == "local" else dask, n_workers=workers)
        else:
            execute_local(jobs, workers, on_result)
    finally:
        bar.close()
    summary = summarize(dataset, store, sorted(set(store.trackers()) | {s.label for s in specs}))
    write_summary(summary, store.root, plots=plots)
    return summary, failures


# ---------------------------------------------------------------------------------------------- CLI
