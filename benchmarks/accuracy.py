"""Accuracy evaluation runner (console script ``mixformerv2-eval``).

Runs trackers one-pass over every sequence of a dataset (see :mod:`.datasets`), in parallel
processes or on a Dask cluster, and writes under ``<out>/<dataset name>/``::

    <tracker>/<seq>.txt               boxes, pytracking format: one ``x<TAB>y<TAB>w<TAB>h`` line per frame
    <tracker>/<seq>_time.txt          seconds per frame (frame 1: init), one value a line
    <tracker>/<seq>_score.txt         tracker score per frame (NaN when the tracker has none)
    <tracker>/<seq>.error.txt         traceback when the tracker failed on that sequence
    <tracker>/got10k/<seq>/<seq>_001.txt, <seq>_time.txt    the same in the GOT-10k toolkit format
    summary.json, summary.md          per-sequence and overall metrics of every tracker found there
    success.png, precision.png, norm_precision.png

With ``--protocol recovery`` the same trackers also run the absent-and-reappear cases made from every
sequence (cut-away, reappear elsewhere), written under ``<out>/<dataset>/recovery/`` (:mod:`.recovery`).

Boxes are ``x, y, w, h`` (top-left corner, pixels). A sequence is finished when its box file has one
line per frame; finished sequences are skipped on the next run (resume). A job writes its box file
last and atomically, so an interrupted run never leaves a half-written result behind.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
import time
from pathlib import Path
from typing import List, Optional, Sequence as Seq, Tuple

import numpy as np

from .datasets import FORMATS, Dataset, load_dataset
from .distributed import Job, JobResult, TrackerSpec, execute_dask, execute_local, run_job
from .metrics import PROTOCOLS, aggregate, evaluate_sequence, fps_from_times
from .peers import ENV_PEERS_DIR, PEERS, make_tracker

__all__ = ["Job", "JobResult", "TrackerSpec", "ResultStore", "evaluate", "main", "parse_tracker", "run_job",
           "summarize", "write_summary"]

log = logging.getLogger(__name__)
DEFAULT_PEERS_DIR = Path("..") / "shared" / "data" / "peers"


def parse_tracker(text: str, threads: int) -> TrackerSpec:
    """``[LABEL=]TARGET[@PRESET][:THREADS]`` -> TrackerSpec; ``default`` is the default MixFormerV2 model.

    PRESET (MixFormerV2 only): a preset name, a JSON file, or ``key=value,...`` overrides of 'default'
    (e.g. ``default@lasot``, ``default@recovery=false``); it replaces ``--preset`` for this tracker.
    """
    label = None
    m = re.match(r"^([\w.+-]+)=(.+)$", text)
    if m and not Path(text).exists():
        label, text = m.group(1), m.group(2)
    m = re.match(r"^(.+):(\d+)$", text)
    if m:
        text, threads = m.group(1), int(m.group(2))
    preset: Optional[str] = None
    if "@" in text and not Path(text).exists():
        text, preset = text.split("@", 1)
    target: Optional[str] = None if text == "default" else text
    if label is None:
        if target is None:
            label = "mixformerv2"
        elif target.lower() in PEERS:
            label = target.lower()
        elif re.match(r"^[\w.]+:\w+$", target) and not Path(target).exists():
            label = target.split(":")[1]
        else:
            label = Path(target).name or target
        if preset is not None:
            label += "@" + preset
    return TrackerSpec(re.sub(r"[^\w.+-]", "_", label), target, max(1, threads), preset)


# ------------------------------------------------------------------------------------ result files
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

    def trackers(self) -> List[str]:
        """Labels of every tracker folder holding at least one result."""
        if not self.root.is_dir():
            return []
        return sorted(d.name for d in self.root.iterdir() if d.is_dir() and any(d.glob("*_time.txt")))

    def is_done(self, tracker: str, seq: str, num_frames: int) -> bool:
        boxes = self.load_boxes(tracker, seq)
        return boxes is not None and len(boxes) == num_frames and self.time_file(tracker, seq).is_file()

    def load_boxes(self, tracker: str, seq: str) -> Optional[np.ndarray]:
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
def summarize(dataset: Dataset, store: ResultStore, trackers: Optional[Seq[str]] = None) -> dict:
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


def write_summary(summary: dict, root: Path, plots: bool = True) -> List[Path]:
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


def evaluate(dataset: Dataset, specs: Seq[TrackerSpec], out_dir: Path, workers: int = 1,
             backend: str = "openvino", preset: Optional[str] = None, peers_dir: Optional[Path] = None,
             resume: bool = True, dask: Optional[str] = None, progress: bool = True,
             plots: bool = True) -> Tuple[dict, List[JobResult]]:
    """Run every tracker on every sequence not yet finished, then write the summary and plots.

    ``dask``: None (local processes), ``"local"`` (a LocalCluster of ``workers`` processes) or a
    scheduler address. Returns (summary dict, results of the jobs that failed).
    """
    store = ResultStore(out_dir, dataset.name)
    jobs = [Job(spec, seq.name, tuple(str(f) for f in seq.frames), seq.init_box, backend, preset,
                str(peers_dir) if peers_dir else None)
            for spec in specs for seq in dataset.sequences
            if not (resume and store.is_done(spec.label, seq.name, len(seq)))]
    done = len(specs) * len(dataset.sequences) - len(jobs)
    if done:
        log.info("resume: %d finished sequence result(s) kept, %d job(s) to run", done, len(jobs))
    jobs.sort(key=lambda j: -len(j.frames))
    failures: List[JobResult] = []
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
def default_peers_dir() -> Optional[Path]:
    """$MIXFORMERV2_PEERS_DIR, else ./../shared/data/peers when that folder exists, else None."""
    env = os.environ.get(ENV_PEERS_DIR)
    if env:
        return Path(env)
    return DEFAULT_PEERS_DIR.resolve() if DEFAULT_PEERS_DIR.is_dir() else None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mixformerv2-eval", description=__doc__.split("\n")[0])
    p.add_argument("--dataset", required=True, type=Path, help="dataset folder")
    p.add_argument("--format", choices=FORMATS, help="dataset format (detected when omitted)")
    p.add_argument("--subset", help="got10k: val|test; lasot: test|all; uav123: UAV123|UAV20L; trackingnet: TEST|TRAIN_k")
    p.add_argument("--name", help="dataset name used for the output folder (default: from format / folder)")
    p.add_argument("--sequences", help="comma-separated sequence names to evaluate (default: all)")
    p.add_argument("--tracker", action="append", required=True, metavar="[LABEL=]NAME[@PRESET][:THREADS]",
                   help="registered model, export folder, 'default', a peer (%s) or module:Factory; "
                        "@PRESET: this MixFormerV2 tracker's preset (name, JSON file or key=value,... overrides "
                        "of 'default', e.g. default@recovery=false); repeat for several" % ", ".join(PEERS))
    p.add_argument("--workers", type=int, default=1, help="parallel worker processes (default 1)")
    p.add_argument("--threads", type=int, help="threads per tracker (default: cores // workers)")
    p.add_argument("--backend", default="openvino", choices=("openvino", "onnxruntime"))
    p.add_argument("--preset", help="MixFormerV2 preset name (default: the tracker's default)")
    p.add_argument("--protocol", choices=("ope", "recovery"), default="ope",
                   help="ope: one pass over every sequence (default); recovery: also absent-and-reappear cases "
                        "made from every sequence (cut-away and reappear-elsewhere, see mixformerv2_benchmarks.recovery)")
    p.add_argument("--tuning-sequences", metavar="SEQ,SEQ,...",
                   help="recovery protocol: report these sequences ('tuning') and the others ('held-out') "
                        "separately as well")
    p.add_argument("--peers-dir", type=Path, default=None,
                   help=f"peer model folder: NanoTrack v2/v3, VitTrack, FEAR-XS ONNX files (default: ${ENV_PEERS_DIR}, "
                        "else ../shared/data/peers if it exists)")
    p.add_argument("--out", type=Path, default=Path("eval_results"), help="output folder (default eval_results)")
    p.add_argument("--dask", metavar="ADDRESS", help="run on a Dask cluster: scheduler address, or 'local'")
    p.add_argument("--no-resume", action="store_true", help="rerun sequences that already have results")
    p.add_argument("--strict", action="store_true", help="fail on the first broken sequence instead of skipping it")
    p.add_argument("--no-plots", action="store_true")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point of ``mixformerv2-eval``. Exit status: 0 ok, 1 some sequence failed, 2 bad input."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    from mixformerv2_cpu.errors import TrackerError

    from .datasets import DatasetError
    from .peers import PeerUnavailable

    if not args.verbose:  # Dask logs its cluster life at INFO; OpenCV's dnn warns on every model load
        logging.getLogger("distributed").setLevel(logging.WARNING)
        try:
            import cv2
            cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
        except (ImportError, AttributeError):  # pragma: no cover
            pass
    workers = max(1, args.workers)
    threads = args.threads or max(1, (os.cpu_count() or 1) // workers)
    peers_dir = args.peers_dir or default_peers_dir()
    try:
        dataset = load_dataset(args.dataset, args.format, args.subset, strict=args.strict, name=args.name)
        specs = [parse_tracker(t, threads) for t in args.tracker]
        if len({s.label for s in specs}) != len(specs):
            raise ValueError("two trackers share a label; name them with LABEL=NAME")
        for spec in specs:  # fail fast, with the reason, before any worker starts
            make_tracker(spec.target, threads=1, backend=args.backend, peers_dir=peers_dir,
                         preset=spec.preset if spec.preset is not None else args.preset)
    except (DatasetError, PeerUnavailable, ValueError, OSError, ImportError, TrackerError) as exc:
        print(f"mixformerv2-eval: error: {exc}", file=sys.stderr)
        return 2
    every = list(dataset.sequences)  # donors of the recovery cases, whatever --sequences keeps
    if args.sequences:
        wanted = {s.strip() for s in args.sequences.split(",") if s.strip()}
        unknown = wanted - {s.name for s in dataset.sequences} - set(dataset.skipped)
        if unknown:
            print(f"mixformerv2-eval: error: unknown sequence(s) {', '.join(sorted(unknown))}", file=sys.stderr)
            return 2
        dataset.sequences = [s for s in dataset.sequences if s.name in wanted]
    for name, reason in dataset.skipped.items():
        print(f"WARNING: skipped sequence {name}: {reason}", file=sys.stderr)
    if args.protocol == "recovery":
        return _main_recovery(args, dataset, specs, workers, peers_dir, every)
    summary, failures = evaluate(dataset, specs, args.out, workers=workers, backend=args.backend,
                                 preset=args.preset, peers_dir=peers_dir, resume=not args.no_resume,
                                 dask=args.dask, progress=not args.no_progress, plots=not args.no_plots)
    from .plots import markdown_summary
    print(markdown_summary(summary, per_sequence=False))
    print(f"results: {ResultStore(args.out, dataset.name).root}")
    for res in failures:
        print(f"FAILED: {res.tracker} on {res.seq_name} (see {res.tracker}/{res.seq_name}.error.txt)", file=sys.stderr)
    return 1 if failures else 0


def _main_recovery(args: argparse.Namespace, dataset: Dataset, specs: List[TrackerSpec], workers: int,
                   peers_dir: Optional[Path], every: list) -> int:
    """``--protocol recovery``: the ordinary run plus the absent-and-reappear cases; prints their table."""
    from .recovery import evaluate_recovery, markdown_recovery

    groups = None
    if args.tuning_sequences:
        tuning = [s.strip() for s in args.tuning_sequences.split(",") if s.strip()]
        names = [s.name for s in every]
        unknown = set(tuning) - set(names)
        if unknown:
            print(f"mixformerv2-eval: error: unknown tuning sequence(s) {', '.join(sorted(unknown))}", file=sys.stderr)
            return 2
        kept = {s.name for s in dataset.sequences}
        groups = {"tuning": [n for n in tuning if n in kept],
                  "held-out": [n for n in names if n not in tuning and n in kept]}
    summary, failures = evaluate_recovery(dataset, specs, args.out, workers=workers, backend=args.backend,
                                          preset=args.preset, peers_dir=peers_dir, resume=not args.no_resume,
                                          dask=args.dask, progress=not args.no_progress, groups=groups,
                                          plots=not args.no_plots, pool=every)
    print(markdown_recovery(summary))
    print(f"results: {Path(args.out) / dataset.name / 'recovery'}")
    for res in failures:
        print(f"FAILED: {res.tracker} on {res.seq_name}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
