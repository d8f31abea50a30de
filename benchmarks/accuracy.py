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
With ``--starts 0,0.25,...`` every sequence is also run from later start frames (OTB's TRE,
:mod:`.starts`): ``<seq>@<fraction>`` results beside the ordinary ones, summaries over all of them.

Boxes are ``x, y, w, h`` (top-left corner, pixels). A sequence is finished when its box file has one
line per frame; finished sequences are skipped on the next run (resume). A job writes its box file
last and atomically, so an interrupted run never leaves a half-written result behind.
"""
from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from pathlib import Path


from .datasets import FORMATS, Dataset, load_dataset
from .distributed import Job, JobResult, TrackerSpec, run_job
from .ope import Progress, ResultStore, SettingsMismatch, evaluate, summarize, write_summary  # noqa: F401 (API of the harness)
from .peers import ENV_PEERS_DIR, PEERS, default_peers_dir, make_tracker

__all__ = ["Job", "JobResult", "TrackerSpec", "ResultStore", "evaluate", "main", "parse_tracker", "run_job",
           "summarize", "write_summary"]

log = logging.getLogger(__name__)


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
    preset: str | None = None
    if "@" in text and not Path(text).exists():
        text, preset = text.split("@", 1)
    target: str | None = None if text == "default" else text
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
    p.add_argument("--precision", default="auto", choices=("auto", "fp32", "int8", "bf16"),
                   help="precision of the MixFormerV2 trackers (default auto: what Tracker() picks here)")
    p.add_argument("--preset", help="MixFormerV2 preset name (default: the tracker's default)")
    p.add_argument("--protocol", choices=("ope", "recovery"), default="ope",
                   help="ope: one pass over every sequence (default); recovery: also absent-and-reappear cases "
                        "made from every sequence (cut-away and reappear-elsewhere, see mixformerv2_benchmarks.recovery)")
    p.add_argument("--tuning-sequences", metavar="SEQ,SEQ,...",
                   help="recovery protocol: report these sequences ('tuning') and the others ('held-out') "
                        "separately as well")
    p.add_argument("--cuts", default="0.5", metavar="F,F,...",
                   help="recovery protocol: cut positions as fractions of each sequence (default 0.5, the middle, "
                        "as specified; e.g. 0.25,0.5,0.75 makes three cases of each kind per sequence)")
    p.add_argument("--starts", default="0", metavar="F,F,...",
                   help="one-pass protocol: start every sequence at these fractions of its length (OTB's TRE; "
                        "default 0 = the first frame only; e.g. 0,0.25,0.5,0.75 runs each sequence four times, "
                        "later runs named <seq>@<fraction>, and every summary aggregates over all runs)")
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


def main(argv: list[str] | None = None) -> int:
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
                         preset=spec.preset_or(args.preset), precision=args.precision)
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
    from .starts import start_positions, start_sequences

    starts = _positions_arg("--starts", args.starts, start_positions)
    if starts is None:
        return 2
    if starts != [0.0]:
        if args.protocol != "ope":
            print("mixformerv2-eval: error: --starts is for the one-pass protocol (ope); the recovery protocol "
                  "has --cuts", file=sys.stderr)
            return 2
        dataset.sequences, not_made = start_sequences(dataset.sequences, starts)
        for reason in not_made:
            print(f"WARNING: start not made: {reason}", file=sys.stderr)
    try:  # a resumed output folder with other settings stops either protocol before any job runs
        if args.protocol == "recovery":
            return _main_recovery(args, dataset, specs, workers, peers_dir, every)
        summary, failures = evaluate(dataset, specs, args.out, workers=workers, backend=args.backend,
                                     preset=args.preset, peers_dir=peers_dir, resume=not args.no_resume,
                                     dask=args.dask, progress=not args.no_progress, plots=not args.no_plots,
                                     precision=args.precision)
    except SettingsMismatch as exc:
        print(f"mixformerv2-eval: error: {exc}", file=sys.stderr)
        return 2
    from .plots import markdown_summary
    print(markdown_summary(summary, per_sequence=False))
    print(f"results: {ResultStore(args.out, dataset.name).root}")
    for res in failures:
        print(f"FAILED: {res.tracker} on {res.seq_name} (see {res.tracker}/{res.seq_name}.error.txt)", file=sys.stderr)
    return 1 if failures else 0


def _positions_arg(flag: str, text: str, parse) -> list[float] | None:
    """``flag``'s comma-separated fractions through ``parse`` (cut_positions / start_positions); None
    after printing the error when they are not valid."""
    try:
        return parse([v for v in text.split(",") if v.strip()])
    except ValueError as exc:
        print(f"mixformerv2-eval: error: {flag} {text!r}: {exc}", file=sys.stderr)
        return None


def _main_recovery(args: argparse.Namespace, dataset: Dataset, specs: list[TrackerSpec], workers: int,
                   peers_dir: Path | None, every: list) -> int:
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
    from .recovery_cases import cut_positions

    cuts = _positions_arg("--cuts", args.cuts, cut_positions)
    if cuts is None:
        return 2
    summary, failures = evaluate_recovery(dataset, specs, args.out, workers=workers, backend=args.backend,
                                          preset=args.preset, peers_dir=peers_dir, resume=not args.no_resume,
                                          dask=args.dask, progress=not args.no_progress, groups=groups,
                                          plots=not args.no_plots, pool=every, precision=args.precision,
                                          cuts=cuts)
    print(markdown_recovery(summary))
    print(f"results: {Path(args.out) / dataset.name / 'recovery'}")
    for res in failures:
        print(f"FAILED: {res.tracker} on {res.seq_name}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
