"""Several start frames per sequence (OTB's temporal robustness evaluation, TRE).

One pass over a sequence ranks trackers by whichever failure happens to occur in it; starting the
same sequence again from later frames (initialised on the ground truth there) averages over such
events. ``--starts 0,0.25,0.5,0.75`` runs every sequence four times: from its first frame (the
ordinary one-pass run, name unchanged) and from the frames at 25, 50 and 75 % of its length (names
``<seq>@<fraction>``), and every summary then aggregates over all those runs.
"""
from __future__ import annotations

import math
from dataclasses import replace
from collections.abc import Sequence as Seq

import numpy as np

from .datasets.records import Sequence
from .positions import distinct_fractions, visible

MIN_FRAMES = 10  # a start leaves at least this many frames to track


def start_positions(values: Seq[float | str]) -> list[float]:
    """Start positions (numbers or numeric strings) -> floats; ValueError unless they are distinct
    fractions in [0, 1)."""
    return distinct_fractions(values, "start positions", include_zero=True)


def start_name(seq: str, fraction: float) -> str:
    """``seq`` for the first frame, ``seq@<fraction>`` for a later start (fraction as given: 0.25)."""
    return seq if fraction == 0.0 else f"{seq}@{fraction:g}"


def start_sequences(sequences: Seq[Sequence], fractions: Seq[float],
                    min_frames: int = MIN_FRAMES) -> tuple[list[Sequence], list[str]]:
    """Every sequence once per start fraction -> (sequences to run, reasons for starts not made).

    The start frame of fraction f is floor(f * N), moved forward to the first frame where the target
    is visible (a finite ground-truth row); a start that leaves fewer than ``min_frames`` frames, or
    that another fraction already took, is not made (with a reason). f = 0 is the sequence itself.
    Later starts need full ground truth: a sequence with only its first box gets only f = 0.
    """
    out, reasons = [], []
    for seq in sequences:
        taken: set[int] = set()
        for f in fractions:
            if f == 0.0:
                out.append(seq)
                taken.add(0)
                continue
            name = start_name(seq.name, f)
            if not seq.full_gt:
                reasons.append(f"{name}: only the first frame's box is known")
                continue
            shown = np.flatnonzero(visible(seq.gt))
            s = next((int(i) for i in shown if i >= math.floor(f * len(seq))), None)
            if s is None or len(seq) - s < min_frames:
                reasons.append(f"{name}: fewer than {min_frames} frames left after a visible target")
            elif s in taken:
                reasons.append(f"{name}: starts at frame {s}, as another start of {seq.name}")
            else:
                taken.add(s)
                out.append(replace(seq, name=name, frames=list(seq.frames[s:]), gt=seq.gt[s:].copy()))
    return out, reasons
