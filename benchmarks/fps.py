"""mixformerv2-bench: CPU speed of MixFormerV2 (every backend and precision) beside peer CPU trackers.

Matrix: model x backend x precision x threads (single target), batched multi-target rows (N targets,
one batched inference per frame), and the peer trackers (OpenCV's; NanoTrack v3 and FEAR-XS with their
reference loops on ONNX Runtime), all on the same decoded frames in
the same run. Backends: ``openvino`` and ``onnxruntime`` (cached template keys/values, the
runtime's default) and ``baseline`` (the public-port way: the full graph with all three inputs
every frame, on ONNX Runtime).

Per row: model load (wall time of constructing the tracker), first use (init + first update; for
OpenVINO this includes compiling the graphs), then for each of model-only (``engine.search`` on
fixed normalised inputs) and end-to-end (``update()`` on the real frames: crop, preprocess,
inference, decode, template update) a warm-up followed by at least ``--min-iters`` iterations and
``--min-time`` seconds: median, p90 and mean ms, FPS = 1000 / mean ms. OpenCV's own thread count
is set to the row's thread count for every row. Each row runs in a fresh process (multiprocessing
'spawn'); its peak RSS (VmHWM, else ru_maxrss) and the growth over the process's baseline (Python, numpy,
OpenCV and the frames already loaded) are reported.
"""
from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from collections.abc import Sequence

import numpy as np

from .machine import library_versions, load_average, machine_info, usable_cores
from .peers import DEFAULT_PEERS_DIR, ENV_PEERS_DIR, PEERS, default_peers_dir, peer_backend
from .runner import (QUICK, BenchError, RowSpec, Settings, Source, load_source,
                     run_row, run_row_isolated, _failure)

log = logging.getLogger(__name__)

BACKENDS = ("openvino", "onnxruntime", "baseline")
BACKEND_LABELS = {"openvino": "OpenVINO", "onnxruntime": "ONNX Runtime",
                  "baseline": "public-port baseline (ORT, full graph)"}
PRECISIONS = ("fp32", "int8", "bf16")
DEFAULT_TARGETS = (1, 2, 4, 8)
DEFAULT_SOURCE = Path("..") / "shared" / "data" / "sequences" / "crossing"
SCHEMA = "mixformerv2-bench/1"


@dataclass
class ModelEntry:
    label: str
    manifest: str
    name: str
    variant: str
    graphs: dict[str, dict[str, dict[str, str]]] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------- parsing
def parse_list(text: str | None, valid: Sequence[str], what: str) -> list[str]:
    """'a,b' -> ['a', 'b'] checked against ``valid`` (order kept, duplicates dropped)."""
    items = [t.strip().lower() for t in (text or "").split(",") if t.strip()]
    bad = [t for t in items if t not in valid]
    if bad:
        raise BenchError(f"unknown {what} {', '.join(map(repr, bad))}; valid: {', '.join(valid)}")
    return list(dict.fromkeys(items))


def parse_ints(text: str, what: str) -> list[int]:
    try:
        vals = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise BenchError(f"{what} must be comma-separated positive integers, got {text!r}") from None
    if not vals or min(vals) < 1:
        raise BenchError(f"{what} must be comma-separated positive integers, got {text!r}")
    return list(dict.fromkeys(vals))


def default_threads() -> list[int]:
    return list(dict.fromkeys((1, 2, usable_cores())))


def resolve_models(specs: Sequence[str]) -> list[ModelEntry]:
    """[LABEL=]MODEL (registered name, export folder or manifest) -> entries with unique labels."""
    from mixformerv2_cpu.errors import ModelFileError
    from mixformerv2_cpu.registry import resolve_model

    out: list[ModelEntry] = []
    for spec in specs:
        label, sep, target = spec.partition("=")
        if not sep or Path(spec).exists():
            label, target = "", spec
        try:
            man = resolve_model(None if target == "default" else target)
        except ModelFileError as exc:
            raise BenchError(str(exc)) from None
        if not label:
            label = man.name if man.variant.lower() in man.name.lower() else f"{man.name}/{man.variant}"
        out.append(ModelEntry(label, str(man.path.resolve()), man.name, man.variant, man.data["graphs"]))
    seen: dict[str, int] = {}
    for e in out:
        seen[e.label] = seen.get(e.label, 0) + 1
        if seen[e.label] > 1:
            e.label = f"{e.label}#{seen[e.label]}"
    return out


def unavailable_reason(model: ModelEntry, backend: str, precision: str) -> str | None:
    """Why this model has no graphs for (backend, precision), or None."""
    from mixformerv2_cpu.formats import GRAPH_MODES, readable_formats

    formats = readable_formats("onnxruntime" if backend == "baseline" else backend, precision)
    roles = GRAPH_MODES["full" if backend == "baseline" else "cached"]
    if precision == "bf16":  # fp32 files computed in bfloat16 by OpenVINO
        if backend != "openvino":
            return "not available: bf16 runs on OpenVINO only"
        import openvino as ov

        if "BF16" not in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
            return "not available: this CPU has no AVX512-BF16/AMX"
        precision = "fp32"
    per_prec = model.graphs.get(precision)
    if per_prec is None:
        return f"not exported: no {precision} graphs (exported: {', '.join(sorted(model.graphs))})"
    fmt = next((f for f in formats if f in per_prec), None)
    if fmt is None:
        return f"not exported: {precision} graphs exist only for {', '.join(sorted(per_prec))}"
    missing = [r for r in roles if r not in per_prec[fmt]]
    if missing:
        return f"not exported: no {'/'.join(missing)} graph for {precision}/{fmt}"
    return None


# ------------------------------------------------------------------------------------------ planning
def plan_rows(models: Sequence[ModelEntry], backends: Sequence[str], precisions: Sequence[str],
              threads: Sequence[int], targets: Sequence[int], multi_backends: Sequence[str],
              peers: Sequence[str]) -> list[RowSpec]:
    rows: list[RowSpec] = []
    for m in models:
        for b in backends:
            for p in precisions:
                for t in threads:
                    rows.append(RowSpec("single", m.label, b, p, t, 1, m.manifest))
    top = max(threads)
    for m in models:
        for b in multi_backends:
            for p in precisions:
                for n in targets:
                    rows.append(RowSpec("multi", m.label, b, p, top, n, m.manifest))
    for name in peers:
        for t in threads:
            rows.append(RowSpec("peer", name, peer_backend(name), "-", t))
    return rows


def _progress(total: int, enabled: bool):
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, unit="row", file=sys.stderr, dynamic_ncols=True)


def round_order(n_rows: int, rounds: int) -> list[list[int]]:
    """Row indices per round: the planned order, reversed every other round, so a machine whose speed
    drifts during the run favours no row (round 0: 0..n-1, round 1: n-1..0, ...)."""
    forward = list(range(n_rows))
    return [forward if r % 2 == 0 else forward[::-1] for r in range(rounds)]


def median_round(results: Sequence[dict]) -> dict:
    """One row's results of several rounds -> the round with the median end-to-end mean time (the
    lower middle one for an even count), with ``rounds`` = every round's end-to-end and model-only FPS
    in run order. A failed round makes the row failed (that round's result)."""
    failed = [r for r in results if r.get("status") != "ok"]
    if failed:
        return failed[0]
    ranked = sorted(results, key=lambda r: r["end_to_end"]["mean_ms"])
    chosen = dict(ranked[(len(ranked) - 1) // 2])
    chosen["rounds"] = [{"end_to_end_fps": r["end_to_end"]["fps"],
                         "model_only_fps": r["model_only"]["fps"] if r.get("model_only") else None} for r in results]
    return chosen


def run_matrix(rows: Sequence[RowSpec], models: Sequence[ModelEntry], source: Source, settings: Settings,
               peers_dir: Path | None, progress: bool = True, rounds: int = 1) -> list[dict]:
    """Run every row (unavailable ones are recorded with their reason, not run). With ``rounds`` > 1
    the whole matrix runs that many times, interleaved (:func:`round_order`), and each row reports its
    median round (:func:`median_round`)."""
    if rounds < 1:
        raise BenchError(f"rounds must be >= 1, got {rounds}")
    by_label = {m.label: m for m in models}
    cores = usable_cores()
    per_row: list[list[dict]] = [[] for _ in rows]
    bar = _progress(len(rows) * rounds, progress)
    with tempfile.TemporaryDirectory(prefix="mixformerv2-bench-") as tmp:
        frames_file = str(Path(tmp) / "frames.npy")
        if settings.isolate:
            np.save(frames_file, source.frames)
        for index in (i for order in round_order(len(rows), rounds) for i in order):
            spec = rows[index]
            row = {**asdict(spec), "key": spec.key, "oversubscribed": spec.threads > cores}
            row.pop("model")
            if spec.model:
                row["manifest"] = spec.model
            reason = None if spec.kind == "peer" else unavailable_reason(by_label[spec.label], spec.backend,
                                                                       spec.precision)
            if bar is not None:
                bar.set_postfix_str(f"{spec.label} {spec.backend} {spec.precision} t{spec.threads} n{spec.targets}")
            if reason:
                res = {"status": "unavailable", "reason": reason}
            elif settings.isolate:
                res = run_row_isolated(spec, frames_file, source.box, settings, str(peers_dir) if peers_dir else None)
            else:
                try:
                    res = run_row(spec, source.frames, source.box, settings,
                                  str(peers_dir) if peers_dir else None, isolated=False)
                except Exception as exc:  # noqa: BLE001 - recorded in the row
                    res = _failure(exc)
            if res.get("status") == "failed":
                log.warning("row %s failed: %s", spec.key, res.get("reason"))
            per_row[index].append({**row, **res})
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    return [done[0] if len(done) == 1 or done[0]["status"] == "unavailable" else median_round(done)
            for done in per_row]


# --------------------------------------------------------------------------------------------- CLI
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mixformerv2-bench", description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="Example: mixformerv2-bench --source ../shared/data/sequences/crossing "
                                       "--model exports/small --model exports/base --out bench_results")
    p.add_argument("--source", type=Path, help=f"sequence folder (img/ + groundtruth.txt), image folder or video "
                                               f"(default {DEFAULT_SOURCE} if it exists)")
    p.add_argument("--box", help="init box x,y,w,h (default: first groundtruth line / video sidecar JSON)")
    p.add_argument("--model", action="append", metavar="[LABEL=]MODEL",
                   help="registered name, export folder or manifest; repeat for several (default: 'default')")
    p.add_argument("--backend", default=",".join(BACKENDS), help=f"comma list of {', '.join(BACKENDS)} (default all)")
    p.add_argument("--precision", default=",".join(PRECISIONS), help="comma list of fp32, int8, bf16 (default all; "
                   "rows without exported graphs are marked 'not exported')")
    p.add_argument("--threads", help="comma list of thread counts (default 1,2,all usable cores; --quick: 1)")
    p.add_argument("--targets", help="comma list of target counts for batched rows (default 1,2,4,8; --quick: 1,2; "
                                     "'0' = none)")
    p.add_argument("--multi-backend", help="backends of the batched rows (default: the cached backends requested)")
    p.add_argument("--peers", default=",".join(PEERS), help=f"comma list of {', '.join(PEERS)} or 'none' (default all)")
    p.add_argument("--peers-dir", type=Path, help=f"peer model folder: NanoTrack v2/v3, VitTrack, FEAR-XS ONNX files "
                                                  f"(default ${ENV_PEERS_DIR}, "
                                                  f"else {DEFAULT_PEERS_DIR} if it exists)")
    p.add_argument("--warmup", type=int, help=f"warm-up iterations per phase (default {Settings.warmup})")
    p.add_argument("--min-time", type=float, help=f"minimum seconds per phase (default {Settings.min_time})")
    p.add_argument("--min-iters", type=int, help=f"minimum iterations per phase (default {Settings.min_iters})")
    p.add_argument("--max-frames", type=int, help=f"frames decoded from the source (default {Settings.max_frames})")
    p.add_argument("--rounds", type=int, default=1,
                   help="run the whole matrix this many times, interleaved (every other round in reverse order), and "
                        "report each row's median round, with every round's FPS listed (default 1); for VMs whose "
                        "speed drifts during a run")
    p.add_argument("--quick", action="store_true", help="CI smoke run: tiny timings, 8 frames, threads 1, targets 1,2")
    p.add_argument("--no-isolate", action="store_true", help="run rows in this process (RSS then = RSS after the row)")
    p.add_argument("--out", type=Path, default=Path("bench_results"), help="output folder (default bench_results)")
    p.add_argument("--readme", type=Path, help="also replace the benchmark section of this README with the table")
    p.add_argument("--no-plot", action="store_true")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def _settings(args: argparse.Namespace) -> Settings:
    base = Settings(**QUICK) if args.quick else Settings()
    over = {k: getattr(args, k) for k in ("warmup", "min_time", "min_iters", "max_frames")
            if getattr(args, k) is not None}
    if any(v < 0 for v in over.values()) or over.get("max_frames", 2) < 2:
        raise BenchError("--warmup/--min-time/--min-iters must be >= 0 and --max-frames >= 2")
    return replace(base, isolate=not args.no_isolate, **over)


def prepare(args: argparse.Namespace) -> dict:
    """Validate every input before anything runs; raises BenchError."""
    backends = parse_list(args.backend, BACKENDS, "backend")
    precisions = parse_list(args.precision, PRECISIONS, "precision")
    peers = [] if (args.peers or "").strip().lower() == "none" else parse_list(args.peers, PEERS, "peer")
    if not backends and not peers:
        raise BenchError("nothing to run: no backend and no peer")
    if backends and not precisions:
        raise BenchError(f"no precision given; valid: {', '.join(PRECISIONS)}")
    threads = parse_ints(args.threads, "--threads") if args.threads else ([1] if args.quick else default_threads())
    if args.targets is not None and args.targets.strip() == "0":
        targets: list[int] = []
    else:
        targets = parse_ints(args.targets, "--targets") if args.targets else \
            ([1, 2] if args.quick else list(DEFAULT_TARGETS))
    multi = parse_list(args.multi_backend, BACKENDS, "backend") if args.multi_backend is not None else \
        [b for b in backends if b != "baseline"]
    models = resolve_models(args.model or ["default"]) if backends or (multi and targets) else []
    settings = _settings(args)
    src_path = args.source or (DEFAULT_SOURCE if DEFAULT_SOURCE.exists() else None)
    if src_path is None:
        raise BenchError("--source is required (a sequence folder, image folder or video)")
    if args.rounds < 1:
        raise BenchError(f"--rounds must be >= 1, got {args.rounds}")
    source = load_source(src_path, args.box, settings.max_frames)
    rows = plan_rows(models, backends, precisions, threads, targets if models else [], multi, peers)
    return dict(backends=backends, precisions=precisions, peers=peers, threads=threads, targets=targets,
                multi_backends=multi, models=models, settings=settings, source=source, rows=rows,
                peers_dir=args.peers_dir or default_peers_dir(), src_path=src_path, rounds=args.rounds)


def add_machine_limits(result: dict, models: Sequence[ModelEntry], threads: Sequence[int]) -> None:
    """Network GFLOP/s of every model row and, measured in the same run, a plain fp32 GEMM's GFLOP/s on the
    same threads: ``result['gemm_gflops'] = {threads: GFLOP/s}``, rows get ``gflops`` and ``gemm_share``."""
    from mixformerv2_cpu.manifest import read_manifest

    from .flops import gemm_gflops, graph_macs

    macs = {}
    for m in models:
        manifest = read_manifest(m.manifest)
        onnx = manifest.data["graphs"].get("fp32", {}).get("onnx", {})
        macs[m.label] = {role: graph_macs(manifest.folder / rel) for role, rel in onnx.items() if role != "template"}
    gemm = {t: gemm_gflops(t) for t in threads}
    result["gemm_gflops"] = {str(t): round(v, 1) for t, v in gemm.items()}
    result["macs"] = macs
    for r in result["rows"]:
        if r["kind"] == "peer" or r["status"] != "ok" or not r.get("model_only"):
            continue
        role = "full" if r["backend"] == "baseline" else "search"
        per_call = macs.get(r["label"], {}).get(role)
        if per_call:
            r["gflops"] = 2 * per_call * r.get("targets", 1) / (r["model_only"]["median_ms"] / 1e3) / 1e9
            r["gemm_share"] = r["gflops"] / gemm[r["threads"]]


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``mixformerv2-bench``. Exit status: 0 ok, 1 some row failed, 2 bad input."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    from . import report

    try:
        plan = prepare(args)
    except BenchError as exc:
        print(f"mixformerv2-bench: error: {exc}", file=sys.stderr)
        return 2
    cores = usable_cores()
    warnings = [f"threads={t} is above the {cores} usable cores here (oversubscribed; marked * in the table)"
                for t in plan["threads"] if t > cores]
    for w in warnings:
        print(f"WARNING: {w}", file=sys.stderr)
    src: Source = plan["source"]
    started = datetime.now(timezone.utc)
    load_start = load_average()
    rows = run_matrix(plan["rows"], plan["models"], src, plan["settings"], plan["peers_dir"],
                      progress=not args.no_progress, rounds=plan["rounds"])
    settings: Settings = plan["settings"]
    result = {
        "schema": SCHEMA, "created": started.isoformat(timespec="seconds"),
        "duration_s": round((datetime.now(timezone.utc) - started).total_seconds(), 1),
        "argv": list(sys.argv[1:] if argv is None else argv), "quick": bool(args.quick),
        "machine": {**machine_info(), "load_average_start": load_start, "load_average_end": load_average()},
        "versions": library_versions(),
        "source": {"path": str(Path(plan["src_path"]).resolve()), "name": src.name, "frames_used": int(len(src.frames)),
                   "frames_total": src.total_frames, "frame_size": [int(src.frames.shape[2]), int(src.frames.shape[1])],
                   "init_box": list(src.box)},
        "settings": {**asdict(settings),
                     "rss_method": ("peak RSS (VmHWM) of a fresh spawned process per row; delta = peak minus the "
                                    "process RSS before the tracker was built (frames, numpy, OpenCV already loaded)")
                     if settings.isolate else
                     ("RSS after the row (psutil) of the shared benchmark process; delta = RSS after minus RSS "
                      "before the row (not a per-row peak)"),
                     "fps": "1000 / mean ms", "rounds": plan["rounds"],
                     "threads": plan["threads"], "targets": plan["targets"],
                     "backends": {b: BACKEND_LABELS[b] for b in plan["backends"]},
                     "multi_backends": plan["multi_backends"], "precisions": plan["precisions"],
                     "peers": plan["peers"], "peers_dir": str(plan["peers_dir"]) if plan["peers_dir"] else None},
        "models": [asdict(m) for m in plan["models"]],
        "warnings": warnings,
        "rows": rows,
    }
    if plan["models"]:
        add_machine_limits(result, plan["models"], plan["threads"])
    result["ratios"] = report.baseline_ratios(rows)
    paths = report.write_outputs(result, args.out, plot=not args.no_plot)
    md = report.markdown(result)
    print(md)
    if args.readme:
        report.update_readme(args.readme, md)
        paths.append(args.readme)
    print("written: " + ", ".join(str(p) for p in paths), file=sys.stderr)
    return 1 if any(r["status"] == "failed" for r in rows) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
