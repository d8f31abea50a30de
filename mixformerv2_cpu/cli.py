"""The ``mixformerv2`` command: ``track`` (webcam, video, image folder, stream) and ``info``.

Examples::

    mixformerv2 track --source 0                        # webcam, pick the target with the mouse
    mixformerv2 track --source samples/sample_clip.mp4 --init 127,230,70,89 \\
        --no-show --output out.mp4 --results out.txt
    mixformerv2 info

Every user error (a camera that does not open, an unreadable video, an empty folder, a bad
``--init``, a model or preset problem) is one line ``error: ...`` on stderr and exit code 2.
Ctrl-C stops tracking, closes the outputs (the video stays playable) and exits with 130.
"""
from __future__ import annotations

import argparse
import logging
import platform
import sys
from pathlib import Path
from typing import Any
from collections.abc import Callable

from ._version import __version__
from .cpu import INTERESTING_FLAGS, ISA_ENV, cpu_flags, cpu_model, hidden_flags, isa_cap, usable_cores
from . import boxes
from .boxes import Box
from .display import has_display
from .session import FOURCC_BY_EXT, SessionOptions, run_session
from .errors import TrackerError, UsageError
from .sources import SourceError, open_source

log = logging.getLogger(__name__)

TrackerFactory = Callable[..., Any]
EXIT_OK, EXIT_ERROR, EXIT_INTERRUPTED = 0, 2, 130


def build_parser() -> argparse.ArgumentParser:
    """The full parser: ``mixformerv2 [-v] {track,info} ...``."""
    parser = argparse.ArgumentParser(
        prog="mixformerv2",
        description="MixFormerV2 single-object tracking on the CPU (OpenVINO / ONNX Runtime).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="more log output (-v info, -vv debug)")
    sub = parser.add_subparsers(dest="command", metavar="{track,info,verify}")
    sub.required = True

    track = sub.add_parser(
        "track", help="track one object in a webcam, video, image folder or stream",
        description="Track one object. With a display: pick the target with the mouse "
        "(unless --init is given); keys r re-select, p pause, q/Esc quit. Without a display "
        "(or with --no-show): --init is required, and --output/--results are written.",
    )
    track.add_argument("--source", "-s", default="0",
                       help="camera index (0), video file, folder of images, or "
                       "rtsp:// / http:// URL (default: 0)")
    track.add_argument("--model", "-m", default=None,
                       help="registered model name or path to a model file/folder "
                       "(default: the package's default model; see `mixformerv2 info`)")
    track.add_argument("--backend", "-b", default=None,
                       help="inference backend: auto (default: the faster one on this CPU for "
                       "this model, timed once and cached), openvino or onnxruntime")
    track.add_argument("--preset", "-p", default=None,
                       help="tracking preset name (search factor, template update interval)")
    track.add_argument("--precision", default=None,
                       help="auto (default: the fastest precision whose accuracy was measured "
                       "for the model), fp32, int8 (the export's int8 graphs that passed its accuracy gate) or bf16 "
                       "(OpenVINO on AVX512-BF16/AMX CPUs)")
    track.add_argument("--threads", "-t", type=_positive_int, default=None,
                       help="CPU threads for inference (default: the backend's choice)")
    track.add_argument("--init", "-i", default=None, metavar="X,Y,W,H",
                       help="initial box in pixels on the first frame: left,top,width,height "
                       "(a negative left needs the = form: --init=-5,20,40,60)")
    track.add_argument("--output", "-o", type=Path, default=None, metavar="OUT.mp4",
                       help="write the annotated video (.mp4, .avi, .mkv, .mov)")
    track.add_argument("--results", "-r", type=Path, default=None, metavar="OUT.txt",
                       help="write one line x,y,w,h,score,state per frame (score nan and state "
                       "'init' on the init frame; state 'tracking' or 'lost')")
    track.add_argument("--no-show", action="store_true",
                       help="no window (headless); needs --init")
    track.add_argument("--show-distributions", action="store_true",
                       help="draw the four predicted edge distributions across the box edges")
    track.set_defaults(func=cmd_track)

    info = sub.add_parser("info", help="versions, backends, CPU features, registered models")
    info.set_defaults(func=cmd_info)

    verify = sub.add_parser("verify", help="check a model's files (size + sha256 from its manifest) and "
                            "load every graph on every backend that reads it")
    verify.add_argument("model", nargs="?", default=None,
                        help="registered name, export folder, manifest or model file (default: the default model)")
    verify.set_defaults(func=cmd_verify)
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def parse_box(text: str) -> Box:
    """``"x,y,w,h"`` -> floats; raises UsageError for anything else or w/h <= 0."""
    try:
        x, y, w, h = boxes.parse_box(text)
    except ValueError:
        raise UsageError(f"--init must be four numbers x,y,w,h (pixels), got {text!r}") from None
    if w <= 0 or h <= 0:
        raise UsageError(f"--init width and height must be positive, got w={w:g} h={h:g}")
    return x, y, w, h


def check_outputs(output: Path | None, results: Path | None) -> str | None:
    """Validate the output paths before any work; return the video codec (fourcc) or None."""
    for flag, path in (("--output", output), ("--results", results)):
        if path is not None and not path.parent.is_dir():
            raise UsageError(f"{flag} folder does not exist: {path.parent}")
    if output is None:
        return None
    fourcc = FOURCC_BY_EXT.get(output.suffix.lower())
    if fourcc is None:
        raise UsageError(
            f"--output must end in one of {', '.join(FOURCC_BY_EXT)}, got {output.name!r}"
        )
    return fourcc


def create_tracker(model: str | None = None, backend: str | None = None,
                   preset: str | None = None, threads: int | None = None,
                   precision: str | None = None) -> Any:
    """``mixformerv2_cpu.Tracker`` with only the options the user gave (others: defaults)."""
    try:
        from . import Tracker  # imported late: `info` and --help must work without a model
    except ImportError as exc:
        raise UsageError(f"the tracker cannot be imported: {exc}") from exc

    kwargs: dict[str, Any] = {"model": model, "backend": backend, "preset": preset,
                              "threads": threads, "precision": precision}
    return Tracker(**{k: v for k, v in kwargs.items() if v is not None})


def cmd_track(args: argparse.Namespace, tracker_factory: TrackerFactory | None = None) -> int:
    """``mixformerv2 track``: open the source, build the tracker, run the session."""
    init = parse_box(args.init) if args.init is not None else None
    check_outputs(args.output, args.results)
    show = not args.no_show and has_display()
    if not args.no_show and not show:
        log.info("no display found (DISPLAY/WAYLAND_DISPLAY unset): running headless")
    if not show and init is None:
        raise UsageError("no display (or --no-show): give the target with --init x,y,w,h")
    source = open_source(args.source)
    try:
        factory = tracker_factory or create_tracker
        tracker = factory(model=args.model, backend=args.backend, preset=args.preset,
                          threads=args.threads, precision=args.precision)
        if not show and args.output is None and args.results is None:
            log.warning("headless without --output or --results: only the summary is printed")
        opts = SessionOptions(init=init, output=args.output, results=args.results, show=show,
                              show_distributions=args.show_distributions,
                              progress=not show and not source.live and sys.stderr.isatty())
        summary = run_session(source, tracker, opts)
    finally:
        source.close()
    engine = getattr(tracker, "engine", None)
    if engine is not None and hasattr(engine, "description"):
        print(f"engine: {engine.description}", flush=True)
    print(summary.line(), flush=True)
    if args.output is not None:
        log.info("annotated video: %s", args.output)
    return EXIT_INTERRUPTED if summary.interrupted else EXIT_OK


def _version_of(module: str) -> str:
    try:
        mod = __import__(module)
    except Exception as exc:  # noqa: BLE001 - any import failure is "not available"
        return f"not available ({type(exc).__name__}: {exc})"
    return str(getattr(mod, "__version__", "unknown version"))


def cmd_info(args: argparse.Namespace, tracker_factory: TrackerFactory | None = None) -> int:
    """``mixformerv2 info``: versions, backends, CPU flags, registered models, display."""
    lines = [f"mixformerv2-cpu {__version__}",
             f"python {platform.python_version()} on {platform.platform()}"]
    for module in ("numpy", "cv2", "onnxruntime", "openvino"):
        name = "opencv" if module == "cv2" else module
        lines.append(f"  {name:<12} {_version_of(module)}")
    lines.append("backends:")
    try:
        from .backends import available_backends

        for name, reason in available_backends().items():
            lines.append(f"  {name:<12} {'available' if reason is None else 'unavailable: ' + reason}")
    except Exception as exc:  # noqa: BLE001 - info must print whatever it can
        lines.append(f"  (cannot list backends: {exc})")
    lines.append(f"cpu: {cpu_model() or 'unknown'} ({usable_cores()} usable cores)")
    lines.append(f"  flags: {' '.join(cpu_flags()) or '(none of ' + ', '.join(INTERESTING_FLAGS) + ')'}"
                 + (f"; {ISA_ENV}={isa_cap()}" if isa_cap() else "")
                 + (f"; CPUID masked by tools/avx2-only, hidden: {' '.join(hidden_flags())}" if hidden_flags() else ""))
    lines.append("models:")
    try:
        from .registry import list_models

        names = list_models()
        lines.extend(f"  {n}" for n in names)
        if not names:
            lines.append("  (none registered)")
    except Exception as exc:  # noqa: BLE001
        lines.append(f"  (cannot list models: {exc})")
    try:
        from .engine import Engine

        lines.append(f"default engine: {Engine(None, threads=getattr(args, 'threads', None)).description}")
    except Exception as exc:  # noqa: BLE001 - info must print whatever it can
        lines.append(f"default engine: (cannot load the default model: {exc})")
    lines.append(f"display: {'yes' if has_display() else 'no (use --no-show --init)'}")
    print("\n".join(lines), flush=True)
    return EXIT_OK


def cmd_verify(args: argparse.Namespace, tracker_factory: TrackerFactory | None = None) -> int:
    """``mixformerv2 verify [MODEL]``: every listed file against the manifest, every graph loaded."""
    from .backends import available_backends, load_graph
    from .formats import BACKENDS
    from .registry import resolve_model

    manifest = resolve_model(args.model)
    manifest.verify_all()
    print(f"{manifest.path}: {len(manifest.data['files'])} files match their size and sha256", flush=True)
    usable = [b for b, reason in available_backends().items() if reason is None]
    for precision, per_fmt in sorted(manifest.data["graphs"].items()):
        for fmt, roles in sorted(per_fmt.items()):
            for role, rel in sorted(roles.items()):
                for backend in (b for b in usable if fmt in BACKENDS[b][2]):
                    graph = load_graph(backend, manifest.folder / rel)
                    if graph.metadata.role != role:
                        raise UsageError(f"{rel}: metadata says role {graph.metadata.role!r}, manifest says {role!r}")
                    print(f"  {precision:5s} {role:8s} {rel} loads on {backend}", flush=True)
    return EXIT_OK


def main(argv: list[str] | None = None, *,
         tracker_factory: TrackerFactory | None = None) -> int:
    """Entry point of ``mixformerv2``; returns the exit code (0 ok, 2 error, 130 Ctrl-C).

    ``tracker_factory`` (keywords ``model, backend, preset, threads, precision`` -> tracker) replaces
    :func:`create_tracker`; tests use it to inject a fake tracker.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error argparse already printed
        return exc.code if isinstance(exc.code, int) else EXIT_ERROR
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s: %(message)s")
    try:
        return args.func(args, tracker_factory)
    except (UsageError, SourceError, TrackerError) as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"error: {message}", file=sys.stderr, flush=True)
        return EXIT_ERROR
    except OSError as exc:
        print(f"error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "),
              file=sys.stderr, flush=True)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    raise SystemExit(main())
