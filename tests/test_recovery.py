"""Lost-target recovery: the state machine and crop plan (pure and through the tracker with a fake
engine), the presets' new keys, the overlay, and the recovery protocol's case construction and metrics."""
from __future__ import annotations

import math
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from conftest import SEQUENCES, shared
from mixformerv2_cpu import PresetError, Tracker, available_presets, load_preset
from mixformerv2_cpu import tracker as tracker_module
from mixformerv2_cpu.drawing import draw_tracking
from mixformerv2_cpu.engine import TemplateState
from mixformerv2_cpu.recovery import (LOST, TRACKING, VERIFY_PER_FRAME, Candidate, RecoverySettings, RecoveryState,
                                      axis_centres, candidate_cycle, crop_budgets, plan_crops, tile_boxes, tile_side)
from mixformerv2_cpu.geometry import crop_side
from mixformerv2_benchmarks import recovery as R
from mixformerv2_benchmarks import recovery_cases as RC


def settings(**kw) -> RecoverySettings:
    base = dict(enabled=True, lost_threshold=0.3, lost_ratio=0.0, lost_frames=3, lost_peak_ratio=0.0, candidate_threshold=0.5,
                reacquire_threshold=0.6, reacquire_ratio=0.0, max_crops=6, growth_factors=(1.5,), tile_stride=0.5,
                search_factor=4.0)
    base.update(kw)
    return RecoverySettings(**base)


BOX = (100.0, 80.0, 20.0, 20.0)


# ------------------------------------------------------------------------ state machine (pure)
def test_lost_after_the_set_number_of_low_frames():
    st = RecoveryState(settings(lost_frames=3), BOX)
    assert st.observe((101, 80, 20, 20), 0.9) == TRACKING and st.anchor == (101, 80, 20, 20)
    assert st.observe((140, 80, 20, 20), 0.1) == TRACKING and st.low
    assert st.observe((150, 80, 20, 20), 0.2) == TRACKING
    assert st.anchor == (101, 80, 20, 20)  # low frames never move the anchor
    assert st.observe((160, 80, 20, 20), 0.05) == LOST and st.searching
    # 3 low frames among the last 6, not in a row, also make it lost
    st = RecoveryState(settings(lost_frames=3), BOX)
    for score in (0.1, 0.9, 0.1, 0.9):
        assert st.observe(BOX, score) == TRACKING
    assert st.observe(BOX, 0.1) == LOST


def test_low_is_relative_to_the_typical_score():
    st = RecoveryState(settings(lost_ratio=0.75), BOX)
    assert st.low_level() == 0.3  # no history yet: the absolute threshold
    for _ in range(5):
        st.observe(BOX, 0.96)
    assert st.typical_score == pytest.approx(0.96) and st.low_level() == pytest.approx(0.72)
    st.observe(BOX, 0.6)
    assert st.low and st.typical_score == pytest.approx(0.96)  # low scores stay out of the history


def test_only_low_frames_with_flat_edges_count_towards_lost():
    """lost_peak_ratio 0.7: a low frame counts towards "lost" only when its edge peak is under 0.7 x the
    typical peak (median peak of the frames that were not low); it is low all the same (ok=False, the
    anchor stays, no history)."""
    st = RecoveryState(settings(lost_frames=2, lost_peak_ratio=0.7), BOX)
    for peak in (0.5, 0.4, 0.6):
        st.observe(BOX, 0.9, peak)
    assert st.typical_score == pytest.approx(0.9) and list(st.peaks) == [0.5, 0.4, 0.6]  # typical peak 0.5
    for _ in range(4):  # low score, sharp edges (0.36 >= 0.35): never lost
        assert st.observe((110, 80, 20, 20), 0.1, 0.36) == TRACKING and st.low
    assert st.anchor == BOX and list(st.history) == [0.9] * 3 and len(st.peaks) == 3
    assert st.observe((120, 80, 20, 20), 0.1, 0.34) == TRACKING  # flat: the first that counts
    assert st.observe((130, 80, 20, 20), 0.1) == LOST  # no peak given: every low frame counts
    # without the rule the sharp low frames count at once
    st = RecoveryState(settings(lost_frames=2), BOX)
    for peak in (0.5, 0.4, 0.6):
        st.observe(BOX, 0.9, peak)
    st.observe((110, 80, 20, 20), 0.1, 0.36)
    assert st.observe((110, 80, 20, 20), 0.1, 0.36) == LOST


def test_recovery_off_makes_lost_only_a_label():
    st = RecoveryState(settings(enabled=False), BOX)
    for _ in range(3):
        st.observe(BOX, 0.1)
    assert st.state == LOST and not st.searching
    assert st.observe(BOX, 0.9) == TRACKING


def lost_state(**kw) -> RecoveryState:
    st = RecoveryState(settings(**kw), BOX)
    for _ in range(st.settings.lost_frames):
        st.observe((300, 200, 20, 20), 0.05)
    assert st.searching
    return st


def test_reacquired_by_a_high_score_centred_crop_only():
    st = lost_state()
    # a tile scoring high only nominates a candidate ...
    found = st.lost_frame([Candidate("local", 0.2, BOX), Candidate("tile", 0.95, (400, 40, 22, 18)),
                           Candidate("tile", 0.55, (10, 10, 20, 20)), Candidate("tile", 0.4, (50, 50, 20, 20))])
    assert found is None and st.state == LOST and st.anchor == BOX
    assert st.pending == [(401.0, 39.0, 20.0, 20.0), (10.0, 10.0, 20.0, 20.0)]  # anchor size, best first
    # ... verified next frame by a crop centred on it
    plan = plan_crops(st, 360, 640)
    assert [c.kind for c in plan[:3]] == ["local", "verify", "verify"] and plan[1].box == st.pending[0]
    found = st.lost_frame([Candidate("local", 0.2, BOX), Candidate("verify", 0.97, (402, 41, 21, 19)),
                           Candidate("verify", 0.3, (10, 10, 20, 20))])
    assert found == 1 and st.state == TRACKING and st.anchor == (402, 41, 21, 19) and st.pending == []


def test_reacquire_level_follows_the_typical_score():
    st = RecoveryState(settings(reacquire_threshold=0.6, reacquire_ratio=0.9, lost_ratio=0.5), BOX)
    for _ in range(4):
        st.observe(BOX, 1.0)
    for _ in range(3):
        st.observe(BOX, 0.1)
    assert st.searching and st.reacquire_level() == pytest.approx(0.9)
    assert st.lost_frame([Candidate("local", 0.85, BOX)]) is None
    assert st.lost_frame([Candidate("local", 0.92, BOX)]) == 0


# -------------------------------------------------------------------------------- crop planning
def test_tiles_cover_the_frame_at_the_target_scale():
    side = math.ceil(20 * 4.0)  # sqrt(20*20) * search factor
    xs = axis_centres(640, side, 0.5 * side)
    assert xs[0] == side / 2 and xs[-1] == 640 - side / 2 and np.diff(xs).max() <= 0.5 * side + 1e-9
    assert axis_centres(60, side, 40).tolist() == [30.0]  # a crop longer than the axis: one, centred
    tiles = tile_boxes(BOX, 360, 640, 4.0, 0.5)
    assert len(tiles) == len(xs) * len(axis_centres(360, side, 0.5 * side))
    assert all(t[2:] == BOX[2:] for t in tiles)
    centre = np.array([BOX[0] + 10, BOX[1] + 10])
    dist = [np.hypot(t[0] + 10 - centre[0], t[1] + 10 - centre[1]) for t in tiles]
    assert dist == sorted(dist)  # nearest the anchor first
    # every pixel lies in some tile crop, and between the outer centres within half a stride of a centre
    c = np.array([(t[0] + 10, t[1] + 10) for t in tiles])
    yy, xx = (g.reshape(-1, 1) for g in np.mgrid[0:360:7, 0:640:7])
    dx, dy = np.abs(xx - c[:, 0]), np.abs(yy - c[:, 1])
    assert ((dx <= side / 2) & (dy <= side / 2)).any(1).all()
    inner = ((xx >= c[:, 0].min()) & (xx <= c[:, 0].max()) & (yy >= c[:, 1].min()) & (yy <= c[:, 1].max()))[:, 0]
    assert ((dx <= side / 4 + 1e-9) & (dy <= side / 4 + 1e-9)).any(1)[inner].all()


def test_tiles_of_a_small_target_can_be_larger_than_its_crop():
    small = (300.0, 150.0, 5.0, 5.0)  # crop at the target's scale: ceil(5 * 4.0) = 20 px
    assert tile_side(small, 360, 640, 4.0) == 20.0
    assert tile_side(small, 360, 640, 4.0, 0.25) == 90.0  # 0.25 x min(360, 640)
    assert tile_side(BOX, 360, 640, 4.0, 0.1) == 80.0  # its own crop (80 px) is larger than 36 px: kept
    own, big = tile_boxes(small, 360, 640, 4.0, 0.5), tile_boxes(small, 360, 640, 4.0, 0.5, 0.25)
    n = lambda side: len(axis_centres(640, side, 0.5 * side)) * len(axis_centres(360, side, 0.5 * side))
    assert len(own) == n(20.0) and len(big) == n(90.0) and len(big) * 20 < len(own)  # 14 x 7 vs 63 x 35
    # the large tiles still cover every pixel of the frame
    c = np.array([(t[0] + 2.5, t[1] + 2.5) for t in big])
    yy, xx = (g.reshape(-1, 1) for g in np.mgrid[0:360:5, 0:640:5])
    assert ((np.abs(xx - c[:, 0]) <= 45) & (np.abs(yy - c[:, 1]) <= 45)).any(1).all()
    # the cycle's tile crops are cut at that side: same anchor-sized box, factor 90 / 5
    st = lost_state(tile_min_fraction=0.25)
    st.anchor = small
    tiles = [c for c in candidate_cycle(small, 360, 640, st.settings) if c.kind == "tile"]
    assert len(tiles) == len(big) and all(c.box[2:] == small[2:] for c in tiles)
    assert {crop_side(c.box, c.factor) for c in tiles} == {90}
    grown = [c for c in candidate_cycle(small, 360, 640, st.settings) if c.kind == "grown"]
    assert [c.factor for c in grown] == [pytest.approx(6.0)]  # the grown crops keep the target's scale


def test_crop_cap_and_round_robin_over_later_frames():
    st = lost_state(max_crops=5)
    cycle = candidate_cycle(st.anchor, 360, 640, st.settings)
    assert cycle[0].kind == "grown" and cycle[0].factor == pytest.approx(6.0) and cycle[1].kind == "tile"
    seen = []
    frames = math.ceil(len(cycle) / 4)
    for _ in range(frames):
        plan = plan_crops(st, 360, 640)
        assert len(plan) == 5 and plan[0].kind == "local" and plan[0].box == st.anchor
        assert len(set(plan[1:])) == 4  # an item at most once per frame
        seen += plan[1:]
        st.lost_frame([])
    assert set(seen) == set(cycle)  # every crop of the cycle within ceil(len / (cap - 1)) frames
    assert plan_crops(st, 360, 640)[1] == cycle[(frames * 4) % len(cycle)]  # then it wraps around
    # pending candidates take their slots from the cycle, the cap holds
    st.pending = [(1.0, 1.0, 20.0, 20.0)] * VERIFY_PER_FRAME
    plan = plan_crops(st, 360, 640)
    assert len(plan) == 5 and [c.kind for c in plan[:1 + VERIFY_PER_FRAME]] == ["local"] + ["verify"] * VERIFY_PER_FRAME
    # a cycle shorter than the cap: each item once, fewer crops
    st = lost_state(max_crops=50, growth_factors=())
    assert len(plan_crops(st, 100, 100)) == 1 + len(tile_boxes(st.anchor, 100, 100, 4.0, 0.5))


def test_lost_targets_share_one_lost_frame_budget():
    assert crop_budgets(0, 6, 0) == []
    assert crop_budgets(1, 6, 3) == [6]  # alone: the whole plan, as a single tracker
    assert crop_budgets(2, 6, 0) == [4, 3] and crop_budgets(2, 6, 1) == [3, 4]  # 7 crops, the extra one rotates
    assert crop_budgets(3, 6, 0) == [3, 3, 2] and crop_budgets(3, 6, 2) == [3, 2, 3]
    assert crop_budgets(7, 6, 0) == [2, 2, 2, 2, 2, 1, 1]  # 12 crops: at least the local crop each
    for lost in range(1, 12):
        for turn in range(lost):
            b = crop_budgets(lost, 6, turn)
            assert sum(b) == 6 + lost - 1 and min(b) >= 1 and max(b) <= 6


def test_a_budget_shortens_the_plan_after_the_local_and_verify_crops():
    st = lost_state(max_crops=6)
    cycle = candidate_cycle(st.anchor, 360, 640, st.settings)
    assert [c.kind for c in plan_crops(st, 360, 640, budget=1)] == ["local"] and st.cursor == 0
    plan = plan_crops(st, 360, 640, budget=3)
    assert [c.kind for c in plan] == ["local", "grown", "tile"] and plan[1:] == cycle[:2] and st.cursor == 2
    st.pending = [(1.0, 1.0, 20.0, 20.0)] * VERIFY_PER_FRAME
    assert [c.kind for c in plan_crops(st, 360, 640, budget=2)] == ["local", "verify"] and st.cursor == 2
    assert len(plan_crops(st, 360, 640, budget=50)) == 6  # the preset's cap still holds
    with pytest.raises(ValueError, match="at least 1 crop"):
        plan_crops(st, 360, 640, budget=0)


# ------------------------------------------------------------------ through the tracker (fake engine)
class FakeEngine:
    """Stands in for Engine: 'templates' counts its calls; 'search' returns scripted scores and
    edge logits that put the box in the middle fifth of every crop."""

    script = None  # callable (call index, batch size) -> scores (B,)
    flat_from = None  # call index from which the edge logits are all equal (flat distributions)

    def __init__(self, *args, **kwargs):
        self.meta = SimpleNamespace(search_size=64, template_size=32, bins=16, mean=[0.5] * 3, std=[0.25] * 3,
                                    box_scale=1.0, input_format="rgb_nchw")
        self.variant = "other"
        self.template_calls = 0
        self.batches = []
        self.prepared = []

    def prepare(self, batches):
        self.prepared.append(set(batches))

    def encode_templates(self, template, online):
        self.template_calls += 1
        return TemplateState(template, online, np.zeros((len(template), 1), np.float32))

    def search(self, batch, state):
        assert len(state.kv) == len(batch)
        self.batches.append(len(batch))
        logits = np.full((len(batch), 4, 16), -20.0, np.float32)
        logits[:, 0, 6] = logits[:, 1, 6] = logits[:, 2, 9] = logits[:, 3, 9] = 20.0
        if self.flat_from is not None and len(self.batches) - 1 >= self.flat_from:
            logits[:] = 0.0
        return logits, np.asarray(self.script(len(self.batches) - 1, len(batch)), np.float32)


@pytest.fixture()
def fake_tracker(monkeypatch):
    monkeypatch.setattr(tracker_module, "Engine", FakeEngine)

    def make(script, flat_from=None, **preset):
        FakeEngine.script, FakeEngine.flat_from = staticmethod(script), flat_from
        base = {"update_interval": 2, "lost_frames": 3, "lost_ratio": 0.0, "max_crops_per_frame": 4,
                "growth_factors": [], "tile_stride": 0.5, "reacquire_ratio": 0.0}
        t = Tracker(preset={**base, **preset})
        t.init(np.zeros((120, 160, 3), np.uint8), (70, 50, 20, 20))
        return t
    return make


def test_several_lost_targets_keep_the_batch_of_one(monkeypatch):
    """Three targets lost at once share one lost target's crop budget: every lost frame is one batch
    of max_crops + 2 crops (the size init prepared), not 3 x max_crops."""
    monkeypatch.setattr(tracker_module, "Engine", FakeEngine)
    FakeEngine.script, FakeEngine.flat_from = staticmethod(lambda call, n: [0.95 if call < 4 else 0.05] * n), None
    multi = tracker_module.MultiTracker(preset={"lost_frames": 3, "lost_ratio": 0.0, "max_crops_per_frame": 4,
                                                "growth_factors": [], "tile_stride": 0.5})
    frame = np.zeros((120, 160, 3), np.uint8)
    multi.init(frame, [(10, 10, 20, 20), (70, 50, 20, 20), (120, 80, 20, 20)])
    assert multi.engine.prepared == [{3, 6}]
    for _ in range(12):
        multi.update(frame)
    assert multi.states == ["lost"] * 3
    assert multi.engine.batches == [3] * 7 + [6] * 5  # 4 good + 3 low frames, then lost frames of 4 + 3 - 1 crops


def test_tracker_goes_lost_keeps_box_and_template_then_reacquires(fake_tracker):
    # calls 0..3: good; 4..6: low (lost after the 3rd); 7: nothing; 8: tile 2 scores high; 9: its verify crop
    def script(call, n):
        if call < 4:
            return [0.95] * n
        if call == 8:
            return [0.1, 0.1, 0.9, 0.1][:n]
        if call == 9:
            return [0.1, 0.97] + [0.1] * (n - 2)
        return [0.05] * n

    t = fake_tracker(script)
    eng = t.engine
    assert eng.prepared == [{1, 4}]  # init prepares the tracking batch and the lost one (the crop cap)
    frame = np.zeros((120, 160, 3), np.uint8)
    for _ in range(4):
        ok, box = t.update(frame)
        assert ok and t.state == "tracking"
    good_box = box
    assert eng.template_calls == 3  # init + online updates every 2 frames while tracking
    for k in range(3):
        ok, box = t.update(frame)
        assert not ok
        assert t.state == ("lost" if k == 2 else "tracking")
    assert box == good_box  # lost: back to the last box that was not low
    templ_calls, online = eng.template_calls, t._multi._session.templates.online.copy()
    for _ in range(2):  # lost frames: the plan's crops in one batch, nothing re-encoded, box kept
        ok, box = t.update(frame)
        assert not ok and t.state == "lost" and box == good_box and not t.updated
    assert eng.batches[-2:] == [4, 4] and eng.template_calls == templ_calls
    np.testing.assert_array_equal(t._multi._session.templates.online, online)
    ok, box = t.update(frame)  # the verify crop of the tile's candidate re-acquires
    assert ok and t.state == "tracking" and t.score == pytest.approx(0.97) and box != good_box
    assert eng.batches[-1] == 4
    ok, _ = t.update(frame)
    assert eng.batches[-1] == 1 and t.state == "tracking"  # normal tracking again


def test_tracker_counts_only_flat_low_frames_with_lost_peak_ratio(fake_tracker):
    """lost_peak_ratio 0.7: low scores with sharp edges are ok=False but never make the target lost; once
    the edges go flat (call 8 on) three low frames do. Without the rule the third low frame does."""
    def script(call, n):
        return [0.95] * n if call < 4 else [0.05] * n

    frame = np.zeros((120, 160, 3), np.uint8)
    t = fake_tracker(script, flat_from=8, lost_peak_ratio=0.7)
    states = []
    for _ in range(10):
        ok, _ = t.update(frame)
        states.append((ok, t.state))
    assert states[:4] == [(True, "tracking")] * 4
    assert states[4:9] == [(False, "tracking")] * 5  # calls 4-7 sharp, call 8 the first flat one
    assert states[9] == (False, "tracking") and t.update(frame)[0] is False and t.state == "lost"  # call 10: 3rd flat
    t = fake_tracker(script)
    assert [t.update(frame) and t.state for _ in range(7)][-2:] == ["tracking", "lost"]


def test_recovery_off_is_the_reference_rule(fake_tracker):
    t = fake_tracker(lambda call, n: [0.05] * n, recovery=False)
    frame = np.zeros((120, 160, 3), np.uint8)
    boxes = [t.update(frame)[1] for _ in range(6)]
    assert t.state == "lost" and set(t.engine.batches) == {1}  # a label only: one crop per frame
    assert t.engine.prepared == [{1}]
    assert boxes[-1] != boxes[2]  # the box keeps following the prediction
    assert t.engine.template_calls > 1  # and the online template its rule


# -------------------------------------------------------------------------------- presets, overlay
def test_presets_turn_recovery_on_in_default_only():
    for name in available_presets():
        p = load_preset(name, "small")
        assert p.recovery == (name == "default"), name
    p = load_preset("default", "other")
    assert p.growth_factors == tuple(p.growth_factors) and p.max_crops_per_frame >= 1
    assert load_preset({"growth_factors": [1.5, 2]}, "small").growth_factors == (1.5, 2.0)


@pytest.mark.parametrize("params", [{"recovery": 1}, {"lost_frames": 0}, {"max_crops_per_frame": 2.5},
                                    {"reacquire_threshold": 1.5}, {"tile_stride": 0}, {"growth_factors": [0.5]},
                                    {"growth_factors": 1.5}, {"lost_ratio": -1}, {"candidate_threshold": True},
                                    {"lost_peak_ratio": 1.2}, {"lost_peak_ratio": "0.7"},
                                    {"min_box_side": 0}, {"min_box_side": 12}, {"min_box_side": True}])
def test_invalid_recovery_values(params):
    with pytest.raises(PresetError):
        load_preset(params, "small")


def test_overlay_shows_the_state():
    img = np.full((120, 200, 3), 100, np.uint8)
    a = draw_tracking(img.copy(), (50, 40, 30, 30), 0.2, state="lost")
    b = draw_tracking(img.copy(), (50, 40, 30, 30), 0.2, state="tracking")
    c = draw_tracking(img.copy(), (50, 40, 30, 30), 0.2, lost=True)
    low = draw_tracking(img.copy(), (50, 40, 30, 30), 0.2, lost=True, state="tracking")
    assert (a != b).any() and (a != c).any() and (low != c).any() and (low != a).any()
    # a low frame while still tracking is labelled LOW, not LOST: it differs from the ok=False frame
    # without a state only in the labels (same dashed red box)
    assert (low[40:70, 50:80] == c[40:70, 50:80]).all()


# ------------------------------------------------------------------------------ protocol: cases
def _seq(n, x0=100.0, dx=1.0, w=20.0, h=30.0):
    return np.array([[x0 + dx * i, 50.0, w, h] for i in range(n)])


def test_cutaway_replaces_30_frames_and_resumes_30_frames_later():
    frames = [f"s/{i:05d}.jpg" for i in range(1, 101)]
    donor = [f"d/{i:05d}.jpg" for i in range(1, 41)]
    gt = _seq(100)
    cases, skipped = RC.make_cases("s", frames, gt, (640, 360), "d", donor)
    cut = cases[0]
    assert not skipped and cut.kind == "cutaway" and len(cut) == 100
    assert cut.cut == 50 and cut.back == 80
    assert [f.path for f in cut.frames[:50]] == frames[:50]
    assert [f.path for f in cut.frames[50:80]] == [donor[(20 + k) % 40] for k in range(30)]  # donor from its middle
    assert all(f.size == (640, 360) and f.roll == 0 for f in cut.frames[50:80])
    assert [f.path for f in cut.frames[80:]] == frames[80:]  # frame i is the original frame i
    assert np.isnan(cut.gt[50:80]).all() and np.array_equal(cut.gt[:50], gt[:50]) and np.array_equal(cut.gt[80:], gt[80:])


def test_elsewhere_rolls_frames_and_ground_truth_by_half_the_width():
    frames = [f"s/{i:05d}.jpg" for i in range(1, 101)]
    cases, _ = RC.make_cases("s", frames, _seq(100), (640, 360), "d", ["d/1.jpg"])
    el = cases[1]
    assert el.kind == "elsewhere" and el.shift == 320
    assert all(f.roll == 320 and f.path == frames[i] for i, f in zip(range(80, 100), el.frames[80:]))
    assert all(f.roll == 0 for f in el.frames[:80])
    np.testing.assert_allclose(el.gt[80:, 0], _seq(100)[80:, 0] + 320)
    np.testing.assert_allclose(el.gt[80:, 1:], _seq(100)[80:, 1:])


def test_shift_avoids_the_seam():
    # a box around x = 300..340: rolling by 320 would put it across the right border
    gt = np.array([[300.0, 10.0, 40.0, 20.0]])
    assert RC.straddles_seam(gt, 320, 640).all()
    assert not RC.straddles_seam(gt, 200, 640).any()
    shift, run = RC.choose_shift(gt, 640, min_run=1)
    assert 160 <= shift <= 480 and not RC.straddles_seam(gt, shift, 640).any()
    assert RC.roll_gt(gt, shift, 640)[0, 0] == pytest.approx((300 + shift) % 640)
    # a target crossing the whole frame: the case ends before the first box the seam would cut
    frames = [f"s/{i}.jpg" for i in range(200)]
    gt = _seq(200, x0=0.0, dx=0.0)
    gt[130:, 0] = 8.5 * np.arange(70)  # after the cut it sweeps the frame from x = 0 to 587
    cases, _ = RC.make_cases("s", frames, gt, (640, 360), "d", ["d/1.jpg"])
    el = cases[1]
    assert len(el) < 200 and len(el) - el.back >= RC.WINDOW
    assert not RC.straddles_seam(gt[el.back:len(el)], el.shift, 640).any()


def test_rolled_frame_holds_the_target_under_the_rolled_box(tmp_path):
    img = np.full((60, 100, 3), 30, np.uint8)
    img[20:35, 10:30] = 250
    path = tmp_path / "f.png"
    cv2.imwrite(str(path), img)
    box = np.array([[10.0, 20.0, 20.0, 15.0]])
    for shift in (50, 37):
        out = RC.load_frame(RC.FrameRef(str(path), shift))
        x, y, w, h = RC.roll_gt(box, shift, 100)[0].astype(int)
        assert (out[y:y + h, x:x + w] == 250).all() and (out == 250).sum() == (img == 250).sum()
    small = RC.load_frame(RC.FrameRef(str(path), 0, (50, 30)))
    assert small.shape == (30, 50, 3)


def test_cut_needs_the_target_visible_around_it():
    gt = _seq(100)
    gt[48:52] = np.nan  # target absent just before the middle
    cut = RC.choose_cut(gt)
    assert cut is not None and np.isfinite(gt[cut - 1]).all() and np.isfinite(gt[cut + 30:cut + 40]).all()
    assert RC.choose_cut(_seq(41)) is None  # too short for 30 absent + 10 back


def test_donor_comes_from_another_video():
    names = ["person11", "truck4_1", "truck4_2", "wakeboard10"]
    assert RC.choose_donor(names, 1) == 3 and RC.choose_donor(names, 2) == 3 and RC.choose_donor(names, 3) == 0
    assert RC.choose_donor(["a_1", "a_2"], 0) is None


def test_case_metrics():
    case = RC.RecoveryCase("s__cutaway", "s", "cutaway", tuple(RC.FrameRef("x") for _ in range(50)),
                           np.concatenate([_seq(5), np.full((30, 4), np.nan), _seq(15)]), 5, 35, 0, "d")
    boxes = np.array(case.gt)
    boxes[5:35] = boxes[4]
    boxes[35:38] = [500, 500, 20, 30]  # wrong for 3 frames after the return
    ok = np.ones(50, bool)
    ok[5:30] = False  # 25 of the 30 absent frames said "not found"
    states = ["init"] + ["tracking"] * 49
    m = R.case_metrics(case, {"boxes": boxes, "ok": ok, "states": states, "times": np.full(50, 0.01)})
    assert m["absent_frames"] == 30 and m["absent_not_ok"] == 25
    assert m["frames_to_reacquire"] == 3 and m["reacquired"]
    ok[35:] = False
    assert math.isinf(R.case_metrics(case, {"boxes": boxes, "ok": ok, "states": states, "times": np.ones(50)})
                      ["frames_to_reacquire"])
    assert m["held_at_cut"]  # frame 4 (the last before the cut) is the ground truth itself, with ok
    ok[4] = False
    assert not R.case_metrics(case, {"boxes": boxes, "ok": ok, "states": states, "times": np.ones(50)})["held_at_cut"]
    ok[4] = True
    x, y, w, h = case.gt[4]
    boxes[4] = [x + 0.5 * w, y, w, h]  # half a width off: IoU 1/3, under 0.5
    assert not R.case_metrics(case, {"boxes": boxes, "ok": ok, "states": states, "times": np.ones(50)})["held_at_cut"]


def test_group_stats_split_the_held_cases():
    def case(kind, reacquired, held):
        return {"kind": kind, "reacquired": reacquired, "held_at_cut": held, "frames_to_reacquire": 1.0 if reacquired
                else math.inf, "absent_frames": 30, "absent_not_ok": 30, "lost_frames": 0, "lost_seconds": 0.0,
                "tracking_frames": 10, "tracking_seconds": 0.1}
    cases = [case("cutaway", True, True), case("cutaway", False, True), case("cutaway", False, False),
             case("elsewhere", False, False)]
    g = R._group_stats(cases, ("cutaway", "elsewhere"))
    assert g["cutaway_reacquired"] == 1 / 3 and g["cutaway_held_cases"] == 2 and g["cutaway_held_reacquired"] == 0.5
    assert g["elsewhere_held_cases"] == 0 and math.isnan(g["elsewhere_held_reacquired"])


def test_several_cut_positions_give_named_cases_and_skip_a_repeated_cut():
    def seq(name, n):
        return SimpleNamespace(name=name, full_gt=True, gt=_seq(n), frames=[f"{name}/{i:05d}.jpg" for i in range(n)],
                               frame_size=lambda: (640, 360))

    ds = SimpleNamespace(sequences=[seq("a", 200), seq("b", 45)])
    cases, skipped = RC.dataset_cases(ds, at=(0.25, 0.5, 0.75))
    a = {c.name: c.cut for c in cases if c.seq == "a"}
    # cut nearest at*N among frames 2..N-40: 50, 100, 150 (the middle keeps the unsuffixed name)
    assert a == {"a__cutaway@0.25": 50, "a__elsewhere@0.25": 50, "a__cutaway": 100, "a__elsewhere": 100,
                 "a__cutaway@0.75": 150, "a__elsewhere@0.75": 150}
    # 45 frames: only cut frames 2..5 qualify, so 0.25 (11.25) -> 5, and 0.5 / 0.75 pick frame 5 again
    assert {c.name: c.cut for c in cases if c.seq == "b"} == {"b__cutaway@0.25": 5, "b__elsewhere@0.25": 5}
    assert skipped == ["b: cut position 0.5 gives frame 5, already cut at 0.25",
                       "b: cut position 0.75 gives frame 5, already cut at 0.25"]
    assert [c.name for c in RC.dataset_cases(ds)[0]] == ["a__cutaway", "a__elsewhere", "b__cutaway", "b__elsewhere"]
    for bad in ((0.5, 0.5), (0.0,), (1.0,), ("x",), ()):
        with pytest.raises(ValueError, match="cut positions"):
            RC.cut_positions(bad)


def test_shared_sequences_give_cases_without_seam_cuts():
    from mixformerv2_benchmarks.datasets import load_dataset

    ds = load_dataset(shared(SEQUENCES))
    cases, skipped = RC.dataset_cases(ds)
    assert len(cases) == 2 * len(ds.sequences) and not skipped
    for c in cases:
        assert c.back - c.cut == RC.GAP and np.isnan(c.gt[c.cut:c.back]).all()
        assert RC.video_of(c.donor) != RC.video_of(c.seq)
        if c.kind == "elsewhere":
            seq = ds.sequences[[s.name for s in ds.sequences].index(c.seq)]
            width = seq.frame_size()[0]
            assert not RC.straddles_seam(seq.gt[c.back:len(c)], c.shift, width).any()
            np.testing.assert_allclose(c.gt[c.back:], RC.roll_gt(seq.gt[c.back:len(c)], c.shift, width))
            assert (c.gt[c.back:, 0] >= 0).all() and (c.gt[c.back:, 0] + c.gt[c.back:, 2] <= width).all()


# ---------------------------------------------------------------- protocol: the eval command end to end
FAKE = '''
import cv2, numpy as np


class Blob:
    """Box of the bright pixels; ok=False when there are none ("lost" then), else "tracking"."""

    def __init__(self, threads=None):
        self.score, self.state = float("nan"), "tracking"

    def init(self, frame, box):
        self.box = tuple(box)

    def update(self, frame):
        pts = cv2.findNonZero((cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) > 150).astype(np.uint8))
        if pts is None:
            self.score, self.state = 0.0, "lost"
            return False, self.box
        self.box, self.score, self.state = cv2.boundingRect(pts), 1.0, "tracking"
        return True, self.box
'''


def test_eval_recovery_protocol_on_fake_tracker(tmp_path, monkeypatch, capsys):
    from mixformerv2_benchmarks import accuracy as A

    (tmp_path / "mods").mkdir()
    (tmp_path / "mods" / "mfv2_blob.py").write_text(FAKE)
    monkeypatch.syspath_prepend(str(tmp_path / "mods"))
    root = tmp_path / "seqs"
    for name, x0, bright in (("a", 10, True), ("b", 20, True), ("c", 15, False)):
        (root / name / "img").mkdir(parents=True)
        boxes = []
        for i in range(60):
            img = np.full((72, 96, 3), 40, np.uint8)
            x = x0 + (i % 20)
            if bright:
                img[20:32, x:x + 16] = 230
            cv2.imwrite(str(root / name / "img" / f"{i + 1:05d}.png"), img)
            boxes.append((x, 20, 16, 12))
        np.savetxt(root / name / "groundtruth.txt", np.array(boxes, float), fmt="%.1f", delimiter=",")
    code = A.main(["--dataset", str(root), "--protocol", "recovery", "--tracker", "blob=mfv2_blob:Blob",
                   "--out", str(tmp_path / "out"), "--no-plots", "--no-progress", "--tuning-sequences", "a",
                   "--sequences", "a,b"])
    out = capsys.readouterr().out
    assert code == 0, out
    s = __import__("json").loads((tmp_path / "out" / "seqs" / "recovery" / "summary.json").read_text())
    g = s["trackers"]["blob"]["groups"]
    # the donors of a and b: b (bright target, so absence is not detected) and c (no target: detected)
    assert g["tuning"]["absence_detection"] == 0.0 and g["held-out"]["absence_detection"] == 1.0
    assert g["all"]["cutaway_reacquired"] == 1.0 and g["all"]["elsewhere_reacquired"] == 1.0
    assert g["all"]["cutaway_median_frames"] == 0.0 and g["all"]["auc"] > 0.5
    assert g["all"]["cutaway_held_cases"] == 2 and g["all"]["cutaway_held_reacquired"] == 1.0
    assert "Recovery protocol, tuning" in out and "| blob |" in out
    lines = (tmp_path / "out" / "seqs" / "recovery" / "blob" / "b__cutaway.txt").read_text().splitlines()
    assert len(lines) == 60 and lines[0].split("\t")[6] == "init" and "lost" in {ln.split("\t")[6] for ln in lines}
    # more cut positions: more cases per sequence, in the same tables
    code = A.main(["--dataset", str(root), "--protocol", "recovery", "--tracker", "blob=mfv2_blob:Blob",
                   "--out", str(tmp_path / "out2"), "--no-plots", "--no-progress", "--sequences", "a",
                   "--cuts", "0.25,0.5"])
    assert code == 0
    s2 = __import__("json").loads((tmp_path / "out2" / "seqs" / "recovery" / "summary.json").read_text())
    assert sorted((c["name"], c["cut"]) for c in s2["cases"]) == [
        ("a__cutaway", 20), ("a__cutaway@0.25", 15), ("a__elsewhere", 20), ("a__elsewhere@0.25", 15)]
    capsys.readouterr()
    assert A.main(["--dataset", str(root), "--protocol", "recovery", "--tracker", "blob=mfv2_blob:Blob",
                   "--out", str(tmp_path / "out3"), "--cuts", "0.5,1.5"]) == 2
    assert "distinct fractions strictly between 0 and 1" in capsys.readouterr().err


# ---------------------------------------------------------------- multi-target with recovery (default model)
def test_multi_target_with_recovery_equals_separate_trackers():
    """Two targets of the bundled clip, 12 blank frames (both get lost and search), the clip again."""
    from conftest import SAMPLES
    from mixformerv2_cpu import MultiTracker

    cap = cv2.VideoCapture(str(SAMPLES / "sample_clip.mp4"))
    clip = [cap.read()[1] for _ in range(40)]
    frames = clip[:20] + [np.zeros_like(clip[0])] * 12 + clip[32:40]
    boxes = [tuple(float(v) for v in (SAMPLES / "sample_clip_gt.txt").read_text().split()[0].split(",")),
             (400.0, 60.0, 60.0, 50.0)]
    kw = dict(backend="onnxruntime", precision="fp32", threads=1)
    multi = MultiTracker(**kw)
    multi.init(frames[0], boxes)
    singles = [Tracker(**kw) for _ in boxes]
    for t, b in zip(singles, boxes):
        t.init(frames[0], b)
    states = []
    for f in frames[1:]:
        res = multi.update(f)
        for (ok, box), t, score, state in zip(res, singles, multi.scores, multi.states):
            ok1, box1 = t.update(f)
            assert ok == ok1 and state == t.state
            assert np.abs(np.subtract(box, box1)).max() < 1e-3 and abs(score - t.score) < 1e-4
        states.append(tuple(multi.states))
    assert ("lost", "lost") in states  # the blank frames really exercise the lost path of both


def test_init_compiles_the_tracking_and_the_lost_batch_before_the_first_frame():
    """OpenVINO compiles one static shape per batch size (0.2-0.7 s): init() does it for the tracking
    batch and a lost frame's crop plan, so neither the first update nor the first lost frame stalls."""
    from conftest import SAMPLES

    cap = cv2.VideoCapture(str(SAMPLES / "sample_clip.mp4"))
    clip = [cap.read()[1] for _ in range(12)]
    box = tuple(float(v) for v in (SAMPLES / "sample_clip_gt.txt").read_text().split()[0].split(","))
    t = Tracker(backend="openvino", precision="fp32", threads=1)
    t.init(clip[0], box)
    graph = t.engine.graphs["search"]
    crops = t.preset.max_crops_per_frame
    assert graph.compiled_batches == {1, crops}
    states = [t.update(f) and t.state for f in clip[1:] + [np.zeros_like(clip[0])] * 14]
    assert states[-1] == "lost" and graph.compiled_batches == {1, crops}
    ref = Tracker(backend="openvino", precision="fp32", threads=1, preset="lasot")  # recovery off: one size
    ref.init(clip[0], box)
    assert ref.engine.graphs["search"].compiled_batches == {1}
    # two targets lost at once share the lost batch (2 - 1 + crops), prepared at init: nothing compiles mid-video
    from mixformerv2_cpu import MultiTracker

    multi = MultiTracker(backend="openvino", precision="fp32", threads=1)
    multi.init(clip[0], [box, (400.0, 60.0, 60.0, 50.0)])
    graph = multi.engine.graphs["search"]
    assert graph.compiled_batches == {2, crops + 1}
    for f in clip[1:] + [np.zeros_like(clip[0])] * 14:
        multi.update(f)
    assert multi.states == ["lost", "lost"] and graph.compiled_batches == {2, crops + 1}


def test_tracker_spec_with_its_own_preset():
    from mixformerv2_benchmarks.accuracy import parse_tracker
    from mixformerv2_benchmarks.peers import preset_arg

    spec = parse_tracker("off=default@recovery=false:2", 1)
    assert (spec.label, spec.target, spec.threads, spec.preset) == ("off", None, 2, "recovery=false")
    spec = parse_tracker("default@lasot", 1)
    assert spec.label == "mixformerv2_lasot" and spec.preset == "lasot"
    assert parse_tracker("nanotrack", 1).preset is None
    assert preset_arg("recovery=false,growth_factors=[1.5, 2]") == {"recovery": False, "growth_factors": [1.5, 2]}
    assert preset_arg("lasot") == "lasot" and preset_arg(None) is None
    with pytest.raises(ValueError, match="JSON"):
        preset_arg("recovery=maybe")


def test_lost_signals_counts_low_and_flat_frames():
    """tools/lost_signals.flagged: % of absent / tracked frames a lost rule would count, by hand."""
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
    from lost_signals import flagged

    rows = [(0.9, 0.5, False, 0.9), (0.9, 0.4, False, 0.9), (0.9, 0.6, False, 0.9),  # typical peak 0.5
            (0.1, 0.4, False, 0.8),   # low score, sharp edges, target tracked
            (0.05, 0.2, True, float("nan")),  # low and flat, target absent
            None, (0.05, 0.9, True, float("nan"))]  # new case: no peak history, every low frame counts
    assert flagged(rows, 0.45, 0.7) == (100.0, 0.0)
    assert flagged(rows, 0.45, 0.0) == (100.0, 25.0)  # the rule off: the score alone
    assert flagged(rows, 0.45, 0.81) == (100.0, 25.0)  # 0.4 < 0.81 x 0.5: flat enough
