"""A/B speed of ``update()`` for two trackers (models, files of one model, or a peer) in one process, in lockstep.

On a VM whose speed drifts by up to 2x within a minute, two bench rows timed one after the other
measure the drift as much as the models. Here both trackers track the same source at the same time:
blocks of ``--block`` frames alternate between them (the order flips every block), each frame copied
into one reused buffer before its update as a decoder writes it, and the whole pass is repeated
``--reps`` times from a fresh init. Prints per model the median and mean ms of ``update()`` and the
ratios A/B (under 1: A is faster). ``NAME=MODEL@BACKEND/PRECISION`` gives one model its own backend and
precision (else ``--backend`` / ``--precision``). Across backends the comparison is biased: ONNX Runtime's
threads keep spinning after its calls, so an OpenVINO block that follows an ONNX Runtime block starts on
busy cores (measured: the default model's int8 graphs on ONNX Runtime 0.92-0.96x OpenVINO fp32 here,
while the automatic choice's interleaved trial, which runs other work between calls, has them level).

    python tools/ab_update.py --source ../shared/data/sequences/boat1 --model raw=default --model rgb=<old export> --backend openvino
    python tools/ab_update.py --source ../shared/data/sequences/boat1 --model fp32=default@openvino/fp32 --model int8=<export with --int8>@onnxruntime/int8
    python tools/ab_update.py --source ../shared/data/sequences/boat1 --model ours=default --model nanotrack=nanotrack

A MODEL that names a peer of ``mixformerv2-bench`` (``nanotrack``, ``vittrack``, ...: ``benchmarks.peers``)
runs that tracker instead (its own runtime; it sets OpenCV's thread count to ``--threads`` for the process).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from mixformerv2_benchmarks.peers import PeerUnavailable, default_peers_dir, make_tracker
from mixformerv2_benchmarks.runner import BenchError, load_source


WARMUP_UPDATES = 10  # per tracker, before any timing (the first search step of an OpenVINO engine took 0.7 s)


def lockstep(trackers: dict, frames: list[np.ndarray], box, reps: int, block: int) -> dict[str, list[float]]:
    """Seconds of every ``update()`` per tracker, after an untimed init and ``WARMUP_UPDATES`` updates of each; blocks of ``block`` frames alternate between the trackers,
    the first tracker of a block changing every block and every rep."""
    names = list(trackers)
    spent: dict[str, list[float]] = {n: [] for n in names}
    buf = np.empty_like(frames[0])
    for trk in trackers.values():  # untimed: OpenVINO compiles its kernels for the real shapes on the first call
        trk.init(frames[0], box)
        for frame in frames[1:1 + WARMUP_UPDATES]:
            np.copyto(buf, frame)
            trk.update(buf)
    for rep in range(reps):
        for trk in trackers.values():
            trk.init(frames[0], box)
        for k, start in enumerate(range(1, len(frames), block)):
            order = names if (k + rep) % 2 == 0 else names[::-1]
            for name in order:
                for frame in frames[start:start + block]:
                    np.copyto(buf, frame)
                    t0 = time.perf_counter()
                    trackers[name].update(buf)
                    spent[name].append(time.perf_counter() - t0)
    return spent


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--source", type=Path, required=True, help="sequence folder, image folder or video (as for mixformerv2-bench)")
    p.add_argument("--box", help="init box x,y,w,h (default: first groundtruth line / video sidecar JSON)")
    p.add_argument("--model", action="append", required=True, metavar="NAME=MODEL[@BACKEND[/PRECISION]]",
                   help="two of them: a label and a registered name or export folder, optionally with its own "
                        "backend and precision")
    p.add_argument("--backend", default="openvino")
    p.add_argument("--precision", default="fp32")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--peers-dir", type=Path, default=None,
                   help="peer model folder (default: $MIXFORMERV2_PEERS_DIR, else ../shared/data/peers if present)")
    p.add_argument("--reps", type=int, default=4)
    p.add_argument("--block", type=int, default=10)
    a = p.parse_args(argv)
    pairs = [m.split("=", 1) for m in a.model]
    if len(pairs) != 2 or any(len(x) != 2 or not x[0] for x in pairs) or pairs[0][0] == pairs[1][0]:
        sys.exit(f"ab_update: need exactly two --model NAME=MODEL with different names, got {a.model}")
    try:
        src = load_source(a.source, a.box, sys.maxsize)
    except BenchError as exc:
        sys.exit(f"ab_update: {exc}")
    if len(src.frames) < 2:
        sys.exit(f"ab_update: need at least 2 frames in {a.source}, found {len(src.frames)}")
    trackers = {}
    for name, spec in pairs:
        model, _, engine = spec.partition("@")
        backend, _, precision = engine.partition("/")
        try:
            trackers[name] = make_tracker(model, threads=a.threads, backend=backend or a.backend,
                                          precision=precision or a.precision,
                                          peers_dir=a.peers_dir or default_peers_dir())
        except PeerUnavailable as exc:
            sys.exit(f"ab_update: {exc}")
    for name, trk in trackers.items():
        engine = getattr(trk, "engine", None)
        print(f"{name}: {engine.description if engine is not None else type(trk).__name__ + ' (peer)'}")
    spent = lockstep(trackers, list(src.frames), src.box, a.reps, a.block)
    stats = {n: (statistics.median(v) * 1e3, float(np.mean(v)) * 1e3, len(v)) for n, v in spent.items()}
    for n, (med, mean, count) in stats.items():
        print(f"{n}: update() median {med:.3f} ms, mean {mean:.3f} ms over {count} updates")
    (na, (ma, aa, _)), (nb, (mb, ab, _)) = stats.items()
    print(f"{na}/{nb}: median {ma / mb:.3f}, mean {aa / ab:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
