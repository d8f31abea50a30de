"""End-to-end FPS of ``Tracker.update()`` while the target is lost (recovery searching).

Tracks the first ``--warmup`` frames of a sequence, then feeds frames of another sequence (the target
is absent there), so the tracker goes lost and stays lost; times every update whose state is "lost"
(after ``--skip`` of them: the first lost frames warm up; since session 18 ``init()`` compiles the batched graph). Prints median /
p90 / mean milliseconds, FPS (1000 / mean ms), the crops per lost frame, and the machine load.

    python tools/lost_fps.py --source ../shared/data/sequences/person11 --donor ../shared/data/sequences/boat1 --threads 2
    tools/avx2-only python tools/lost_fps.py ...            # as on an AVX2-only CPU (CPUID masked)
    ONEDNN_MAX_CPU_ISA=AVX2 python tools/lost_fps.py ...   # only oneDNN (OpenVINO) kernels capped at AVX2
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--source", type=Path, required=True, help="sequence folder (img/, groundtruth.txt)")
    p.add_argument("--donor", type=Path, required=True, help="sequence whose frames replace the target's")
    p.add_argument("--model", default=None)
    p.add_argument("--backend", default="openvino")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--preset", default="default")
    p.add_argument("--warmup", type=int, default=20, help="tracked frames before the cut")
    p.add_argument("--frames", type=int, default=200, help="donor frames fed after the cut")
    p.add_argument("--skip", type=int, default=5, help="first lost frames not timed")
    args = p.parse_args(argv)

    from mixformerv2_cpu import Tracker
    from mixformerv2_cpu import tracker as tracker_module
    from mixformerv2_cpu.cpu import cpu_flags, hidden_flags

    from mixformerv2_benchmarks.runner import BenchError, load_source

    try:  # frames and the first ground-truth box read as mixformerv2-bench reads them
        source, donor_source = load_source(args.source, max_frames=args.warmup), load_source(args.donor, max_frames=args.frames)
    except BenchError as exc:
        sys.exit(str(exc))
    own, box = list(source.frames), source.box
    donor = [cv2.resize(f, (own[0].shape[1], own[0].shape[0])) for f in donor_source.frames]
    crops = []
    search = tracker_module.Engine.search

    def counting(self, batch, state):
        crops.append(len(batch))
        return search(self, batch, state)

    tracker_module.Engine.search = counting
    t = Tracker(model=args.model, backend=args.backend, preset=args.preset, threads=args.threads)
    t.init(own[0], box)
    for f in own[1:]:
        t.update(f)
    times, per_frame, lost_seen = [], [], 0
    for f in donor:
        t0 = time.perf_counter()
        t.update(f)
        dt = time.perf_counter() - t0
        if t.state == "lost":
            lost_seen += 1
            if lost_seen > args.skip:
                times.append(dt)
                per_frame.append(crops[-1])
    if not times:
        print("the tracker never stayed lost on the donor frames (try another --donor)")
        return 1
    ms = 1e3 * np.asarray(times)
    hidden = hidden_flags()
    masked = f" (CPUID masked, hidden: {' '.join(hidden)})" if hidden else ""
    print(f"model {args.model or 'default'}, {args.backend} ({t.engine.precision}), {args.threads} threads, preset "
          f"{args.preset} (max_crops_per_frame {t.preset.max_crops_per_frame}); "
          f"CPU flags {' '.join(cpu_flags())}{masked}; "
          f"ONEDNN_MAX_CPU_ISA={os.environ.get('ONEDNN_MAX_CPU_ISA', '-')}; load average {os.getloadavg()}")
    print(f"lost frames timed: {len(ms)}, crops per lost frame {np.mean(per_frame):.1f}; update() median "
          f"{np.median(ms):.1f} ms, p90 {np.percentile(ms, 90):.1f} ms, mean {ms.mean():.1f} ms -> "
          f"{1e3 / ms.mean():.1f} FPS end-to-end while lost")
    return 0


if __name__ == "__main__":
    sys.exit(main())
