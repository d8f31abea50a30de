from __future__ import annotations

import json

import pytest

from mixformerv2_cpu import PresetError, available_presets, load_preset


def test_shipped_presets_and_per_variant_values():
    assert set(available_presets()) == {"default", "got10k", "lasot", "trackingnet", "vot20", "uav", "otb"}
    got_s, got_b = load_preset("got10k", "small"), load_preset("got10k", "base")
    assert (got_s.search_factor, got_s.update_interval) == (4.55, 15)
    assert (got_b.search_factor, got_b.update_interval) == (5.0, 10)
    assert load_preset("lasot", "small").search_factor == 4.4 and load_preset("lasot", "base").search_factor == 5.0
    # default: the released S / B keep the reference factor, the project's own models (variant "custom")
    # use the factor the default model is trained at
    assert [load_preset("default", v).search_factor for v in ("small", "base", "custom")] == [4.5, 4.5, 3.0]
    assert [load_preset("default", v).tile_min_fraction for v in ("small", "base", "custom")] == [0.0, 0.0, 0.4]
    assert [load_preset("default", v).growth_factors for v in ("small", "base", "custom")] == [(1.5,), (1.5,), (1.5, 3.0)]
    for name in available_presets():  # online size 1 everywhere, every preset valid for every variant
        for variant in ("small", "base", "custom"):
            p = load_preset(name, variant)
            assert p.update_gate == 0.5 and p.template_factor == 2.0 and 0 <= p.lost_threshold <= 1


def test_unknown_name_and_keys_are_errors(tmp_path):
    with pytest.raises(PresetError, match="unknown preset 'nope'; valid: default"):
        load_preset("nope", "small")
    with pytest.raises(PresetError, match=r"unknown key\(s\) \['online_size'\]"):
        load_preset({"online_size": 3}, "small")
    f = tmp_path / "mine.json"
    f.write_text(json.dumps({"search_factor": {"small": 4.0, "tiny": 3.0}}))
    with pytest.raises(PresetError, match="unknown variant"):
        load_preset(f, "small")


@pytest.mark.parametrize("params", [{"search_factor": 0}, {"search_factor": float("nan")}, {"update_interval": 0},
                                    {"update_interval": 2.5}, {"update_gate": 1.5}, {"score_decay": 0},
                                    {"lost_threshold": -0.1}, {"search_factor": "4"}])
def test_invalid_values(params):
    with pytest.raises(PresetError):
        load_preset(params, "small")


def test_dict_overrides_default():
    p = load_preset({"update_interval": 7}, "small")
    assert p.update_interval == 7 and p.search_factor == load_preset("default", "small").search_factor
