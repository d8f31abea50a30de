"""The online-template rule (reference facts §3) on hand-computed score sequences."""
from __future__ import annotations

import pytest

from mixformerv2_cpu.template import OnlineTemplatePolicy


def _run(policy: OnlineTemplatePolicy, scores: list[float]) -> list[object]:
    """Feed frames 1..N (candidate crop of frame k = "c<k>"); returns what step() gave at each frame."""
    out = []
    for k, score in enumerate(scores, start=1):
        if policy.wants_candidate(score):
            policy.set_candidate(f"c{k}", score)
        out.append(policy.step(k))
    return out


def test_interval_gate_decay_and_reset():
    p = OnlineTemplatePolicy(initial="T0", interval=3, gate=0.5, decay=0.9)
    # frame 1: max -1 * 0.9 = -0.9; 0.60 passes the gate and beats it -> c1 (max 0.60)
    # frame 2: max 0.60 * 0.9 = 0.54; 0.58 > 0.54 -> c2 (only thanks to the decay: 0.58 < 0.60)
    # frame 3: max 0.522; 0.40 fails the gate; interval due -> c2 becomes the online template, reset to T0 / -1
    # frames 4-6: 0.45, 0.30 fail the gate, 0.50 is not *above* it -> at frame 6 the initial template comes back
    # frame 7: 0.95 -> c7; frame 8: max 0.855, 0.86 -> c8; frame 9: max 0.774, 0.80 -> c9, due -> c9
    got = _run(p, [0.60, 0.58, 0.40, 0.45, 0.30, 0.50, 0.95, 0.86, 0.80])
    assert got == [None, None, "c2", None, None, "T0", None, None, "c9"]
    assert p.best == "T0" and p.max_score == -1.0


def test_without_decay_the_interval_best_wins():
    p = OnlineTemplatePolicy(initial="T0", interval=3, gate=0.5, decay=1.0)
    assert _run(p, [0.60, 0.58, 0.40, 0.9, 0.7, 0.8]) == [None, None, "c1", None, None, "c4"]


@pytest.mark.parametrize("interval, due", [(1, [1, 2, 3, 4]), (2, [2, 4]), (4, [4])])
def test_update_frames(interval, due):
    p = OnlineTemplatePolicy(initial="T0", interval=interval, gate=0.5)
    got = _run(p, [0.9, 0.9, 0.9, 0.9])
    assert [k for k, g in enumerate(got, start=1) if g is not None] == due
