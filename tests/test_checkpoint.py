"""Strict, safe loading of official-layout checkpoints."""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from mixformerv2_export.checkpoint import CheckpointError, load_model, read_checkpoint


class TrainerSettings:
    """Stands in for the reference trainer's pickled ``settings`` object."""

    def __init__(self) -> None:
        self.script_name = "mixformer2_vit_online"


class Exploit:
    """Unpickling this creates a marker folder: proves whether pickled code ran."""

    marker: Path

    def __reduce__(self):
        import os

        return (os.makedirs, (str(self.marker),))


def _net(path: Path) -> dict:
    return torch.load(path, weights_only=True)["net"]


def test_trainer_checkpoint_with_custom_objects_loads_without_running_code(ckpt_small, tmp_path):
    exploit = Exploit()
    exploit.marker = tmp_path / "pwned"
    path = tmp_path / "MixFormer_ep0500.pth.tar"
    torch.save({"net": _net(ckpt_small), "settings": TrainerSettings(), "stats": exploit, "epoch": 500}, path)
    with pytest.raises(pickle.UnpicklingError):  # the weights-only loader refuses this file
        torch.load(path, weights_only=True)
    model, variant = load_model(path, variant="small")
    assert variant == "small" and not exploit.marker.exists()
    ref, _ = load_model(ckpt_small)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), ref.state_dict().values()))


def test_unsafe_pickle_only_on_request(ckpt_small, tmp_path):
    exploit = Exploit()
    exploit.marker = tmp_path / "ran"
    path = tmp_path / "trainer.pth.tar"
    torch.save({"net": _net(ckpt_small), "stats": exploit}, path)
    read_checkpoint(path)
    assert not exploit.marker.exists()
    read_checkpoint(path, allow_unsafe_pickle=True)
    assert exploit.marker.exists()  # the flag really does run pickled code, as its help says


@pytest.mark.parametrize("edit, message", [
    (lambda sd: sd.pop("backbone.blocks.2.attn.proj.bias"), "missing key 'backbone.blocks.2.attn.proj.bias'"),
    (lambda sd: sd.__setitem__("backbone.extra.weight", torch.zeros(3)), "unexpected key 'backbone.extra.weight'"),
    (lambda sd: sd.__setitem__("box_head.layers.0.1.bias", torch.zeros(5)),
     "key 'box_head.layers.0.1.bias' has shape (5,), expected (768,)"),
])
def test_strict_keys_are_named(ckpt_small, tmp_path, edit, message):
    sd = _net(ckpt_small)
    edit(sd)
    path = tmp_path / "edited.pth.tar"
    torch.save({"net": sd}, path)
    with pytest.raises(CheckpointError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_model(path)


def test_variant_mismatch_is_an_error(ckpt_small):
    with pytest.raises(CheckpointError, match="--variant base given, but the file holds a small model"):
        load_model(ckpt_small, variant="base")


@pytest.mark.parametrize("content, message", [
    (b"", "not a PyTorch checkpoint or truncated"),
    (b"hello, not a checkpoint", "not a PyTorch checkpoint or truncated"),
])
def test_unreadable_files(tmp_path, content, message):
    path = tmp_path / "bad.pth.tar"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=message):
        load_model(path)


def test_truncated_checkpoint(ckpt_small, tmp_path):
    path = tmp_path / "truncated.pth.tar"
    path.write_bytes(ckpt_small.read_bytes()[: ckpt_small.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        load_model(path)


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        load_model(tmp_path / "nope.pth.tar")


def test_state_dict_of_another_model(tmp_path):
    path = tmp_path / "resnet.pth.tar"
    torch.save({"net": torch.nn.Linear(4, 2).state_dict()}, path)
    with pytest.raises(CheckpointError, match="not a MixFormerV2 state_dict, missing key 'backbone.pos_embed_t'"):
        load_model(path)


def test_bare_state_dict_and_missing_net(ckpt_small, tmp_path):
    bare = tmp_path / "bare.pth"
    torch.save(_net(ckpt_small), bare)
    assert load_model(bare)[1] == "small"
    other = tmp_path / "other.pth"
    torch.save({"model": 1}, other)
    with pytest.raises(CheckpointError, match="no 'net' entry"):
        load_model(other)


def test_own_checkpoint_with_config_and_mobilenet_stem(tmp_path):
    import dataclasses

    from conftest import PEERS, shared
    from mixformerv2_export.network import MixFormerV2, ModelConfig
    from mixformerv2_export.checkpoint import load_nanotrack_features

    stem_file = shared(PEERS / "nanotrack_v2/nanotrackv2.pth")

    cfg = ModelConfig(embed_dim=64, depth=2, num_heads=2, mlp_ratio=1.0, template_size=64, search_size=128, bins=32,
                      stem="mnv3s")
    model = MixFormerV2(cfg)
    loaded = load_nanotrack_features(model.backbone.patch_embed, stem_file)
    assert loaded == 168  # conv/BN/SE tensors of MobileNetV3-Small features 0..8
    assert model.backbone.patch_embed(torch.zeros(2, 3, 128, 128)).shape == (2, 64, 64)
    path = tmp_path / "own.pth.tar"
    torch.save({"net": model.state_dict(), "config": dataclasses.asdict(cfg)}, path)
    again, variant = load_model(path)
    assert variant == "custom" and again.cfg == cfg
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
    bad = tmp_path / "bad.pth.tar"
    torch.save({"net": model.state_dict(), "config": {**dataclasses.asdict(cfg), "stem": "resnet"}}, bad)
    with pytest.raises(CheckpointError, match="invalid 'config' entry: stem must be 'patch', 'mnv3s' or 'mnv3s96'"):
        load_model(bad)


def test_nanotrack_v3_stem_equals_the_peer_backbone():
    """The mnv3s96 stem with NanoTrack v3's weights computes what NanoTrack v3's own ONNX backbone does."""
    import onnxruntime as ort

    from conftest import PEERS, shared
    from mixformerv2_export.checkpoint import load_nanotrack_features
    from mixformerv2_export.network.stem import MobileNetStem

    stem = MobileNetStem(32, "mnv3s96")
    assert load_nanotrack_features(stem, shared(PEERS / "nanotrack_v3/nanotrackv3.pth")) == 190
    x = np.random.default_rng(0).uniform(0, 255, (1, 3, 255, 255)).astype(np.float32)  # raw BGR, as NanoTrack
    with torch.no_grad():
        ours = stem.eval().features(torch.from_numpy(x)).numpy()
    sess = ort.InferenceSession(str(shared(PEERS / "nanotrack_v3/nanotrack_backbone.onnx")),
                                providers=["CPUExecutionProvider"])
    theirs = sess.run(None, {"input": x})[0]
    assert ours.shape == theirs.shape == (1, 96, 16, 16)
    assert np.abs(ours - theirs).max() < 1e-3 * np.abs(theirs).max()


def test_own_generator_matches_the_shared_one(tmp_path):
    """tests/reference_ckpt.py writes the very checkpoint ../shared/reference/make_ckpt.py writes."""
    import subprocess
    import sys

    from conftest import REFERENCE, SEED, shared
    from reference_ckpt import random_state_dict

    script = shared(REFERENCE / "make_ckpt.py")
    out = tmp_path / "theirs.pth.tar"
    run = subprocess.run([sys.executable, str(script), "small", str(out), str(SEED)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    theirs = torch.load(out, weights_only=True)["net"]
    ours = random_state_dict("small", SEED)
    assert list(theirs) == list(ours)
    assert all(np.array_equal(theirs[k].numpy(), ours[k]) for k in ours)
