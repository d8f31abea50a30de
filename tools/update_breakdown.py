"""Where the time of ``Tracker.update()`` goes: timers around each step of one frame.

Tracks one pass over a source as ``mixformerv2-bench`` reads and feeds it (``load_source``: a sequence
folder, image folder or video, first box from its ground truth or sidecar; ``FrameLoop``: each frame
copied into one reused buffer before its update, as a video decoder writes it) and prints, per step,
the calls per frame, the median time of a call and the time per frame on average: the crop, the normalisation, the
network's search step, decoding the distributions, box mapping, the online-template candidate crop
and the online-template refresh (the template graph). The rest of ``update()`` is the difference
between its total and the sum of the steps.

    python tools/update_breakdown.py --source ../shared/data/sequences/boat1 --threads 2
    tools/avx2-only python tools/update_breakdown.py --source ../shared/data/sequences/boat1
"""
from __future__ import annotations

import argparse
import collections
import sys
import time
from pathlib import Path

import numpy as np

import mixformerv2_cpu.tracker as tracker_module
from mixformerv2_benchmarks.runner import BenchError, FrameLoop, load_source
from mixformerv2_cpu import Tracker


def _timed(owner: object, name: str, label: str, spent: dict[str, list[float]]) -> None:
    """Replace ``owner.name`` with a wrapper that appends each call's seconds to ``spent[label]``."""
    inner = getattr(owner, name)

    def wrapper(*args, **kwargs):
        t = time.perf_counter()
        try:
            return inner(*args, **kwargs)
        finally:
            spent[label].append(time.perf_counter() - t)

    setattr(owner, name, wrapper)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--source", type=Path, required=True, help="sequence folder (img/, groundtruth.txt), image folder "
                   "or video, as for mixformerv2-bench")
    p.add_argument("--box", help="init box x,y,w,h (default: first groundtruth line / video sidecar JSON)")
    p.add_argument("--model", default=None, help="registered name or export folder (default model)")
    p.add_argument("--backend", default="openvino")
    p.add_argument("--precision", default="fp32")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--frames", type=int, default=0, help="frames to track (0: all)")
    a = p.parse_args(argv)
    try:
        src = load_source(a.source, a.box, a.frames or sys.maxsize)
    except BenchError as exc:
        sys.exit(f"update_breakdown: {exc}")
    if len(src.frames) < 2:
        sys.exit(f"need at least 2 frames in {a.source}, found {len(src.frames)}")

    tr = Tracker(a.model, backend=a.backend, threads=a.threads, precision=a.precision)
    loop = FrameLoop(src.frames, lambda frame: tr.init(frame, src.box), tr.update)
    loop.prepare()  # init on frame 0 (untimed, before the timers go in), frame 1 into the buffer
    multi = tr._multi
    spent: dict[str, list[float]] = collections.defaultdict(list)
    for owner, name, label in [(multi, "_crop", "crop"), (tracker_module, "network_input", "normalisation"),
                               (multi.engine, "search", "network (search step)"),
                               (tracker_module, "decode_boxes", "decoding"), (multi, "_prediction", "box mapping"),
                               (multi, "_template_tensor", "online-template candidate crop"),
                               (multi, "_refresh_templates", "online-template refresh")]:
        _timed(owner, name, label, spent)
    total = []
    for k in range(1, len(src.frames)):
        if k > 1:
            loop.prepare()
        t = time.perf_counter()
        loop.step()
        total.append(time.perf_counter() - t)
    n = len(total)
    print(f"{tr.engine.description}; {src.name}, {n} updates")
    print(f"update(): median {np.median(total) * 1e3:.3f} ms, mean {np.mean(total) * 1e3:.3f} ms")
    print(f"{'step':32s} {'calls/frame':>11s} {'median/call us':>15s} {'per frame us':>13s}")
    steps = 0.0
    for label, v in spent.items():
        steps += sum(v) / n
        print(f"{label:32s} {len(v) / n:11.2f} {np.median(v) * 1e6:15.1f} {sum(v) / n * 1e6:13.1f}")
    print(f"{'rest of update()':32s} {'':11s} {'':15s} {(np.mean(total) - steps) * 1e6:13.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
