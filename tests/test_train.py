"""Training helpers (train/): resolution change of a fine-tune, data stream."""
from __future__ import annotations

import dataclasses
import math
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))
import train  # noqa: E402  (train/train.py)


def test_search_pos_embed_is_resized_to_the_new_grid():
    cfg160 = dataclasses.replace(train.CONFIG, search_size=160)  # 12x12 -> 10x10 tokens
    grid = torch.arange(12, dtype=torch.float32)
    ramp = grid[None, :].expand(12, 12)  # embedding value = column index, every channel
    pos = ramp.reshape(1, 144, 1).expand(1, 144, 4).clone()
    out = train.resize_search_pos_embed({"backbone.pos_embed_s": pos, "other": pos}, cfg160)
    new = out["backbone.pos_embed_s"]
    assert new.shape == (1, 100, 4) and out["other"] is pos
    cols = new.reshape(10, 10, 4)[..., 0]
    # bicubic resampling of a linear ramp: rows identical, columns increasing, end points inside 0..11
    assert torch.allclose(cols, cols[:1].expand(10, 10))
    assert (cols[0, 1:] > cols[0, :-1]).all() and 0 <= cols[0, 0] < 1 and 10 < cols[0, -1] <= 11
    same = train.resize_search_pos_embed({"backbone.pos_embed_s": pos}, train.CONFIG)
    assert same["backbone.pos_embed_s"] is pos  # already the right grid: untouched


def test_batch_stream_depends_on_seed_and_step_only():
    a = train.batch_rng(1, 500).random(4)
    assert np.array_equal(a, train.batch_rng(1, 500).random(4))
    assert not np.array_equal(a, train.batch_rng(0, 500).random(4))
    assert not np.array_equal(a, train.batch_rng(1, 501).random(4))


def test_box_distill_loss_is_the_edge_kl_summed_over_edges():
    teacher = torch.zeros(2, 4, 3)  # uniform over 3 bins on every edge
    assert float(train.box_distill_loss(teacher.clone(), teacher)) == pytest.approx(0.0, abs=1e-7)
    student = teacher.clone()
    student[0, 1] = torch.log(torch.tensor([0.5, 0.25, 0.25]))  # one edge of one sample moved
    # KL(uniform || (1/2, 1/4, 1/4)) = 1/3 (ln(2/3) + 2 ln(4/3)); the batch mean halves it
    expected = (np.log(2 / 3) + 2 * np.log(4 / 3)) / 3 / 2
    assert float(train.box_distill_loss(student, teacher)) == pytest.approx(expected, rel=1e-5)


def test_distill_boxes_needs_a_starting_model(tmp_path, capsys):
    with pytest.raises(SystemExit):
        train.main(["--out", str(tmp_path), "--steps", "10", "--distill-boxes", "1"])
    assert "--distill-boxes needs --finetune" in capsys.readouterr().err


def test_distill_score_trains_synthetic_samples_towards_the_teacher():
    import copy

    import torch.nn.functional as F

    cfg = dataclasses.replace(train.CONFIG, search_size=64, template_size=32)
    torch.manual_seed(0)
    model = train.MixFormerV2(cfg).eval()
    aux, tapped = train.AuxHead(cfg.embed_dim), train.tap_search_tokens(model)
    teacher = copy.deepcopy(model)
    with torch.no_grad():  # make the teacher's scores differ from the student's
        teacher.score_head.layers[-1].bias += 2.0
    rng = np.random.default_rng(0)
    t, o = (rng.standard_normal((2, 3, 32, 32)).astype(np.float32) for _ in range(2))
    s = rng.standard_normal((2, 3, 64, 64)).astype(np.float32)
    ltrb = np.tile(np.float32([0.4, 0.4, 0.6, 0.6]), (2, 1))
    ones, label, real = np.ones(2, np.float32), np.float32([1, 0]), np.float32([1, 0])
    batch = [t, o, s, ltrb, ones, label, real]
    with torch.no_grad():
        _, score = model(*(torch.from_numpy(x) for x in (t, o, s)))
        _, t_score = teacher(*(torch.from_numpy(x) for x in (t, o, s)))
        _, parts = train.losses(model, aux, tapped, batch, teacher, 1.0, distill_score=True)
    target = torch.tensor([1.0, float(torch.sigmoid(t_score[1, 0]))])  # real: its label; synthetic: teacher
    assert parts["score"] == pytest.approx(float(F.binary_cross_entropy_with_logits(score[:, 0], target)), rel=1e-5)
    with torch.no_grad():
        _, plain = train.losses(model, aux, tapped, batch, teacher, 1.0)
    assert plain["score"] == pytest.approx(
        float(F.binary_cross_entropy_with_logits(score[:, 0], torch.from_numpy(label))), rel=1e-5)



def test_teacher_sees_the_student_crop_at_its_own_search_size():
    s = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).reshape(2, 3, 4, 4)
    assert train.teacher_view(s, 4) is s  # same size: the very tensor
    up = train.teacher_view(s, 8)  # 4 px -> 8 px: each source pixel becomes 2x2, bilinear in between
    assert up.shape == (2, 3, 8, 8)
    # bilinear, half-pixel centres: output pixel 0 samples source x = -0.25 (clamped to 0), pixel 1 x = 0.25
    assert float(up[0, 0, 0, 0]) == pytest.approx(0.0)
    assert float(up[0, 0, 0, 1]) == pytest.approx(0.25 * 1.0)  # row 0 of the source is 0, 1, 2, 3
    assert float(up[1, 2, 7, 7]) == pytest.approx(float(s[1, 2, 3, 3]))
    flat = torch.full((1, 3, 160, 160), 0.5)
    assert torch.allclose(train.teacher_view(flat, 192), torch.full((1, 3, 192, 192), 0.5))


def test_producer_stops_when_its_trainer_is_gone(monkeypatch):
    import queue
    from types import SimpleNamespace

    q = queue.Queue(maxsize=1)
    alive = {"value": True}
    monkeypatch.setattr(train.mp, "parent_process", lambda: SimpleNamespace(is_alive=lambda: alive["value"]))
    assert train.put_while_parent_lives(q, "first", poll=0.01) is True and q.get_nowait() == "first"
    q.put("unread")  # full: the trainer stopped reading
    alive["value"] = False  # ... and is gone
    assert train.put_while_parent_lives(q, "second", poll=0.01) is False


def test_trainer_stops_when_its_producer_is_gone():
    import queue
    from types import SimpleNamespace

    q = queue.Queue()
    worker = SimpleNamespace(is_alive=lambda: True, exitcode=None)
    q.put((0, "batch"))
    assert train.get_while_producer_lives(q, worker, poll=0.01) == (0, "batch")
    dead = SimpleNamespace(is_alive=lambda: False, exitcode=1)
    q.put((1, "queued before it died"))  # what the producer sent is still read
    assert train.get_while_producer_lives(q, dead, poll=0.01) == (1, "queued before it died")
    with pytest.raises(RuntimeError, match="exit code 1"):
        train.get_while_producer_lives(q, dead, poll=0.01)


def test_real_video_mean_labels_average_detector_and_teacher_boxes(tmp_path):
    """labels="mean": per frame the mean of the cached track box and the teacher's box (teacher started
    on the track's first box); the teacher runs once, its boxes are cached beside the tracks."""
    import json

    from real_video import load_tracks

    folder = tmp_path / "vtest"
    folder.mkdir()
    np.save(folder / "frames.npy", np.zeros((5, 8, 8, 3), np.uint8))
    track = [[10.0, 20.0, 4.0, 8.0], [12.0, 20.0, 4.0, 8.0], [14.0, 21.0, 4.0, 8.0]]
    (folder / "tracks.json").write_text(json.dumps({"detections": [[]] * 5, "tracks": [[1, track]]}))

    class Teacher:  # reports the previous box moved 3 px right and 1 px taller
        def init(self, frame, box):
            self.box = np.array(box, np.float64)

        def update(self, frame):
            self.box = self.box + [3.0, 0.0, 0.0, 1.0]
            return True, tuple(self.box)

    calls = []
    data = load_tracks(tmp_path, teacher_factory=lambda: calls.append(1) or Teacher(), labels="mean")
    start, boxes = data.tracks[0]
    assert start == 1 and len(calls) == 1
    taught = np.array([[10, 20, 4, 8], [13, 20, 4, 9], [16, 20, 4, 10]], np.float64)
    np.testing.assert_allclose(boxes, 0.5 * (np.array(track) + taught))
    again = load_tracks(tmp_path, teacher_factory=lambda: pytest.fail("teacher run again"), labels="mean")
    np.testing.assert_allclose(again.tracks[0][1], boxes)
    np.testing.assert_allclose(load_tracks(tmp_path, labels="detections").tracks[0][1], track)
    with pytest.raises(ValueError, match="labels must be one of"):
        load_tracks(tmp_path, labels="teacher")


def _one_person_video():
    """A 12-frame noise clip with one track (12 x 24 px, walking right 2 px a frame), no detections."""
    from real_video import Tracks
    frames = np.random.default_rng(0).integers(0, 255, (12, 96, 128, 3), np.uint8)
    track = np.array([[40.0 + 2 * k, 30.0, 12.0, 24.0] for k in range(12)])
    return Tracks(frames, [np.zeros((0, 4))] * 12, [(0, track)]), track


def test_real_sample_score_label_comes_from_the_score_teacher():
    """With a score teacher the real sample's score label is the teacher's confidence for the sample's
    own template (frame, box) and search centre, clipped to [0, 1]; the box-valid flag stays 1 / 0."""
    from sampling import render_real_sample

    data, track = _one_person_video()

    class Teacher:
        def __init__(self, value):
            self.value, self.seen = value, []

        def init(self, frame, box):
            self.seen.append(("init", frame.shape, tuple(box)))

        def score_at(self, frame, box, within):
            self.seen.append(("score_at", frame.shape, tuple(box), within))
            return self.value

    plain = render_real_sample(data, np.random.default_rng(3), 32, 64, 0.0)
    teacher = Teacher(0.37)
    taught = render_real_sample(data, np.random.default_rng(3), 32, 64, 0.0, teacher)
    assert plain[5] == 1.0 and plain[4] == 1.0  # a positive: label 1, box valid
    assert taught[4] == 1.0 and taught[5] == pytest.approx(0.37)
    for a, b in zip(plain[:4], taught[:4]):  # same crops and box: only the score label changed
        np.testing.assert_array_equal(a, b)
    (k1, s1, template_box), (k2, s2, centre, within) = teacher.seen
    assert (k1, k2) == ("init", "score_at") and s1 == s2 == (96, 128, 3)
    assert template_box in {tuple(b) for b in track}
    import sampling
    assert within == math.ceil(math.sqrt(centre[2] * centre[3]) * sampling.SEARCH_FACTOR)  # our search crop only
    assert render_real_sample(data, np.random.default_rng(3), 32, 64, 0.0, Teacher(1.7))[5] == 1.0  # clipped


def test_score_teacher_needs_real_video(tmp_path, capsys):
    with pytest.raises(SystemExit):
        train.main(["--out", str(tmp_path), "--steps", "10", "--score-teacher", "fear_xs"])
    assert "--score-teacher labels real-video samples" in capsys.readouterr().err


def test_search_factor_sets_the_crop_of_every_sample(monkeypatch):
    """--search-factor reaches the sampling (the producer sets sampling.SEARCH_FACTOR): the real
    sample's search crop side is ceil(sqrt(w*h) * factor) of its centre box and the target's edges
    are normalised to that side; the teacher's window follows."""
    import sampling

    data, _ = _one_person_video()

    class Teacher:
        def init(self, frame, box):
            pass

        def score_at(self, frame, box, within):
            self.centre, self.within = box, within
            return 1.0

    widths = {}
    for factor in (4.5, 3.0):
        monkeypatch.setattr(sampling, "SEARCH_FACTOR", factor)
        teacher = Teacher()
        sample = sampling.render_real_sample(data, np.random.default_rng(3), 32, 64, 0.0, teacher)
        side = math.ceil(math.sqrt(teacher.centre[2] * teacher.centre[3]) * factor)
        assert teacher.within == side
        ltrb = sample[3]
        widths[factor] = (ltrb[2] - ltrb[0]) * side  # the target's width in image px, either way
    assert widths[4.5] == pytest.approx(widths[3.0], abs=1e-3)


def test_search_factor_cannot_be_distilled_from_a_teacher_of_another_factor(tmp_path, capsys):
    """The teacher's factor comes from its run record; a record without one is a run from before the
    option (factor 4.5)."""
    import json

    import torch
    old = tmp_path / "old.pt"
    torch.save({"net": {}, "step": 1, "run": json.dumps({"steps": 1})}, old)
    new = tmp_path / "new.pt"
    torch.save({"net": {}, "step": 1, "run": json.dumps({"steps": 1, "search_factor": 3.5})}, new)
    assert train.trained_search_factor(old) == 4.5 and train.trained_search_factor(new) == 3.5
    with pytest.raises(SystemExit):
        train.main(["--out", str(tmp_path / "o"), "--steps", "10", "--finetune", str(old),
                    "--distill-boxes", "0.5", "--search-factor", "3.5"])
    assert "trained on crops of factor 4.5; it cannot label crops of --search-factor 3.5" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        train.main(["--out", str(tmp_path / "o"), "--steps", "10", "--finetune", str(tmp_path / "missing.pt")])
    assert "--finetune: no file" in capsys.readouterr().err


def test_run_record_inside_a_release_or_beside_a_checkpoint(tmp_path):
    """A fine-tune records its parent's run: from inside a weights release, or from run.json beside a
    run's own checkpoint (last.pth.tar, snapshots hold no record); None when there is neither."""
    import json

    import torch
    rel = tmp_path / "rel.pt"
    torch.save({"net": {}, "step": 1, "run": json.dumps({"seed": 3})}, rel)
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"seed": 23, "search_factor": 3.0}))
    torch.save({"net": {}, "step": 2000}, run / "last.pth.tar")
    bare = tmp_path / "bare"
    bare.mkdir()
    torch.save({"net": {}, "step": 5}, bare / "last.pth.tar")
    assert train.run_record(rel) == {"seed": 3}
    assert train.run_record(run / "last.pth.tar") == {"seed": 23, "search_factor": 3.0}
    assert train.trained_search_factor(run / "last.pth.tar") == 3.0
    assert train.run_record(bare / "last.pth.tar") is None


def test_release_of_a_snapshot_keeps_the_run_record_and_says_what_it_holds(tmp_path):
    """A weights release of a snapshot: steps and seed from the run record when the snapshot lacks
    them (snapshots before session 9 held the network only), no auxiliary head invented."""
    import json

    import torch

    import release
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"steps": 3000, "seed": 17, "search_factor": 3.5}))
    torch.save({"net": {"w": torch.ones(2)}, "config": {"a": 1}, "step": 2000}, run / "step_2000.pth.tar")
    assert release.main([str(run / "step_2000.pth.tar"), str(tmp_path / "rel.pt")]) == 0
    rel = torch.load(tmp_path / "rel.pt", weights_only=True)
    assert (rel["step"], rel["total_steps"], rel["seed"]) == (2000, 3000, 17) and "aux" not in rel
    assert json.loads(rel["run"])["search_factor"] == 3.5 and train.trained_search_factor(tmp_path / "rel.pt") == 3.5


def test_keep_blocks_prunes_and_renumbers_the_transformer_blocks(tmp_path, capsys):
    """Depth pruning: blocks 0, 1 and 3 of a depth-4 model become blocks 0, 1, 2 of a depth-3 one, the
    same tensors; the pruned model loads them and computes what the kept blocks compute."""
    deep = train.MixFormerV2(dataclasses.replace(train.CONFIG, search_size=160))
    state = deep.state_dict()
    out = train.keep_blocks(state, [0, 1, 3])
    assert out["backbone.blocks.2.attn.qkv.weight"] is state["backbone.blocks.3.attn.qkv.weight"]
    assert out["backbone.blocks.1.mlp.fc1.bias"] is state["backbone.blocks.1.mlp.fc1.bias"]
    assert not any(k.startswith("backbone.blocks.3.") for k in out)
    assert out["backbone.pos_embed_s"] is state["backbone.pos_embed_s"]
    shallow = train.MixFormerV2(dataclasses.replace(train.CONFIG, search_size=160, depth=3))
    shallow.load_state_dict(out)  # strict: every key matches
    x = torch.randn(1, 5, 192)
    assert torch.equal(shallow.backbone.blocks[2].norm1(x), deep.backbone.blocks[3].norm1(x))
    for bad in ([0, 4], [1, 0], []):
        with pytest.raises(ValueError, match="increasing block indices in 0..3"):
            train.keep_blocks(state, bad)
    with pytest.raises(SystemExit):
        train.main(["--out", str(tmp_path), "--steps", "10", "--keep-blocks", "0,1,3"])
    assert "--keep-blocks needs --finetune" in capsys.readouterr().err


def test_prune_mlp_keeps_the_most_important_hidden_units(tmp_path, capsys):
    """Width pruning: every MLP keeps the H units with the largest |fc1 row| * |fc2 column|, in order,
    with their biases; a model of that width loads the result, and where the dropped units carried
    nothing (zero weights) it computes exactly what the wide model computes."""
    wide = train.MixFormerV2(dataclasses.replace(train.CONFIG, search_size=160))
    state = {k: v.clone() for k, v in wide.state_dict().items()}
    fc1, fc2 = "backbone.blocks.1.mlp.fc1.", "backbone.blocks.1.mlp.fc2.weight"
    hidden = state[fc1 + "weight"].shape[0]
    dead = torch.arange(hidden) % 2 == 1  # every odd unit carries nothing
    for k in [k for k in state if k.endswith("mlp.fc1.weight")]:
        state[k][dead] = 0.0
    wide.load_state_dict(state)
    out = train.prune_mlp(state, hidden // 2)
    torch.testing.assert_close(out[fc1 + "weight"], state[fc1 + "weight"][~dead])
    torch.testing.assert_close(out[fc1 + "bias"], state[fc1 + "bias"][~dead])
    torch.testing.assert_close(out[fc2], state[fc2][:, ~dead])
    assert out["backbone.blocks.1.mlp.fc2.bias"] is state["backbone.blocks.1.mlp.fc2.bias"]
    narrow = train.MixFormerV2(dataclasses.replace(train.CONFIG, search_size=160,
                                                   mlp_ratio=hidden // 2 / train.CONFIG.embed_dim))
    narrow.load_state_dict(out)  # strict: every key and shape matches
    x = torch.randn(1, 7, train.CONFIG.embed_dim)
    dead_bias = torch.nn.functional.gelu(state[fc1 + "bias"][dead]) @ state[fc2][:, dead].T  # gelu(b) of a dead unit
    torch.testing.assert_close(narrow.backbone.blocks[1].mlp(x) + dead_bias, wide.backbone.blocks[1].mlp(x))
    for bad in (0, hidden + 1):
        with pytest.raises(ValueError, match=f"expected 1..{hidden}"):
            train.prune_mlp(state, bad)
    with pytest.raises(SystemExit):
        train.main(["--out", str(tmp_path), "--steps", "10", "--mlp-hidden", "192"])
    assert "--mlp-hidden needs --finetune" in capsys.readouterr().err


def test_a_fine_tune_starts_from_the_configuration_of_its_weights():
    """A student (depth 3, MLP 192) fine-tuned again without pruning flags keeps its shape; pruning
    flags apply on top; a continued run keeps its own configuration; a file without one is CONFIG."""
    student = dataclasses.asdict(dataclasses.replace(train.CONFIG, search_size=160, depth=3, mlp_ratio=1.0))
    cfg = train.run_config(student, 160)
    assert (cfg.depth, cfg.mlp_hidden, cfg.search_size) == (3, 192, 160)
    cfg = train.run_config(student, 144, keep=[0, 2], mlp_hidden=96)
    assert (cfg.depth, cfg.mlp_hidden, cfg.search_size) == (2, 96, 144)
    assert train.run_config(student, 144, continued=True) == train.ModelConfig(**student)
    assert train.run_config(None, 160) == dataclasses.replace(train.CONFIG, search_size=160)
    assert train.run_config(None, 160, mlp_hidden=288).mlp_hidden == 288


def _toy_assets():
    """Two noise backgrounds and three opaque sprites: enough for ``sampling.render_sample``."""
    from assets import Assets

    rng = np.random.default_rng(0)
    backgrounds = [rng.integers(0, 255, (360, 480, 3), dtype=np.uint8) for _ in range(2)]
    sprites = []
    for c in range(3):
        s = np.zeros((24, 20, 4), np.uint8)
        s[..., :3], s[..., 3] = 50 + 60 * c, 255
        sprites.append(s)
    return Assets(backgrounds, sprites, [[0], [1], [2]])


def test_tiny_rate_renders_4_to_12_px_targets_and_leaves_the_stream_alone_at_0(monkeypatch):
    """--tiny-rate reaches the sampling (sampling.TINY_RATE): at 1 every synthetic target is 4-12 px
    (the template box, sqrt(w*h), within the paste's rounding); at 0 no extra number is drawn (a rate
    that draws but never fires gives other samples), so runs without the option keep their data stream."""
    import sampling

    assets, sizes = _toy_assets(), {}
    real_sample_target = sampling.sample_target

    def spy(image, box, factor, size, **kw):
        seen.append(math.sqrt(box[2] * box[3]))
        return real_sample_target(image, box, factor, size, **kw)

    monkeypatch.setattr(sampling, "sample_target", spy)
    for rate in (0.0, 1.0):
        monkeypatch.setattr(sampling, "TINY_RATE", rate)
        sizes[rate] = []
        for seed in range(24):
            seen = []
            sampling.render_sample(assets, np.random.default_rng(seed), 32, 64)
            sizes[rate].append(seen[0])  # the template crop: frame 0's true box
    assert max(sizes[1.0]) <= 13.0 and min(sizes[1.0]) >= 3.0
    assert sum(s > 13.0 for s in sizes[0.0]) >= 12  # log-uniform 5..80 px: most are larger
    monkeypatch.setattr(sampling, "TINY_RATE", 0.0)
    a = sampling.render_sample(assets, np.random.default_rng(5), 32, 64)
    monkeypatch.setattr(sampling, "TINY_RATE", 1e-300)  # draws the extra number, never fires
    b = sampling.render_sample(assets, np.random.default_rng(5), 32, 64)
    assert not all(np.array_equal(x, y) for x, y in zip(a, b))  # one draw more shifts every later one


def test_tiny_rate_must_be_a_share(tmp_path, capsys):
    with pytest.raises(SystemExit):
        train.main(["--out", str(tmp_path / "run"), "--steps", "1", "--tiny-rate", "1.5"])
    assert "--tiny-rate must be a share in [0, 1], got 1.5" in capsys.readouterr().err
