"""Tracking presets as validated data (``presets/*.json``).

A preset file holds the keys of :class:`Preset` (except ``name``) plus an optional
``description``. A value is a number, or a table per model variant
``{"small": ..., "base": ..., "other": ...}`` ("other" = any variant not listed, e.g. the
project's own default model). Unknown keys, variants and bad values are errors.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, fields
from importlib import resources
from pathlib import Path
from typing import Any
from collections.abc import Mapping

from .errors import PresetError

VARIANT_KEYS = ("small", "base", "other")


def _is_number(v: object) -> bool:
    """An int or float, not a bool (JSON true/false would pass isinstance(v, int))."""
    return not isinstance(v, bool) and isinstance(v, (int, float))


@dataclass(frozen=True)
class Preset:
    """Rules of the tracker for one benchmark / use.

    search_factor: search crop side = ceil(sqrt(w*h) * search_factor) around the last box.
    template_factor: the same for the (static and online) template crops.
    update_interval: frames between online-template updates (frame ids count from 1).
    update_gate: a frame may become the online template only with score above this.
    score_decay: the best score of the interval is multiplied by this every frame.
    lost_threshold: ``update()`` reports ok=False when the score falls under this
        (with recovery off the box keeps following the reference rule either way).
    lost_ratio: a frame is *low* when its score is under max(lost_threshold, lost_ratio x the
        target's typical score: median of its recent scores that were not low); 0 = absolute only.
    lost_peak_ratio: a low frame counts towards "lost" only when its edge distributions are also
        flat: the mean of the four edges' peak probabilities is under lost_peak_ratio x the target's
        typical peak (median over its recent frames that were not low); 0 = every low frame counts.
        A target that is there but scored low keeps sharp edges; on an absent target they spread out.
        The frame is still reported ok=False with recovery on.
    lost_frames: when this many of the last 2 x lost_frames frames were low the state is "lost"
        (with recovery off only a label; the box still follows the reference rule).
    recovery: lost-target recovery (:mod:`.recovery`): while lost, keep the last box that was
        not low (ok=False), stop updating the online template and search wider; also ok=False on
        low frames. Off in the reference presets (reference-exact), on in ``default``.
    candidate_threshold: a wider-search crop (grown or tile) scoring this nominates a candidate,
        verified on the next frame with a crop centred on it.
    reacquire_threshold, reacquire_ratio: a centred crop (at the last box or on a candidate)
        scoring max(reacquire_threshold, reacquire_ratio x typical score) re-acquires the target.
    max_crops_per_frame: search crops evaluated per lost frame and target (one batched inference):
        the crop at the last box, the verify crops, then the next ones of the candidate cycle.
    growth_factors: search-factor multipliers of the grown crops around the last box that start
        the candidate cycle (empty: none).
    tile_stride: distance of the whole-frame tiles, in crop sides (crops at the target's scale).
    tile_min_fraction: smallest side of a whole-frame tile, as a fraction of the frame's shorter
        side (0 = tiles always at the target's scale). For a small target the tiles at its own scale
        are many (a 15 px target in a 640x360 frame: about 100 tiles, 20 lost frames per pass);
        larger tiles cover the frame in a few frames, and a candidate they nominate is still
        verified with a crop at the target's scale.
    min_box_side: smallest box side (px) a prediction is clipped to, and how much of the box stays
        inside the frame (the reference ``clip_box`` margin: 10).
    """

    name: str = "custom"
    search_factor: float = 4.5
    template_factor: float = 2.0
    update_interval: int = 25
    update_gate: float = 0.5
    score_decay: float = 1.0
    lost_threshold: float = 0.3
    lost_ratio: float = 0.0
    lost_peak_ratio: float = 0.0
    lost_frames: int = 3
    recovery: bool = False
    candidate_threshold: float = 0.5
    reacquire_threshold: float = 0.6
    reacquire_ratio: float = 0.0
    max_crops_per_frame: int = 6
    growth_factors: tuple[float, ...] = (1.5,)
    tile_stride: float = 0.5
    tile_min_fraction: float = 0.0
    min_box_side: float = 10.0

    def __post_init__(self) -> None:
        def bad(key: str, expected: str) -> PresetError:
            return PresetError(f"preset {self.name!r}: {key} must be {expected}, got {getattr(self, key)!r}")

        for key in ("search_factor", "template_factor"):
            v = getattr(self, key)
            if not _is_number(v) or not math.isfinite(v) or v <= 0:
                raise bad(key, "a finite number > 0")
        if isinstance(self.update_interval, bool) or not isinstance(self.update_interval, int) or self.update_interval < 1:
            raise bad("update_interval", "an integer >= 1")
        for key, lo_open in (("update_gate", False), ("lost_threshold", False), ("score_decay", True)):
            v = getattr(self, key)
            if not _is_number(v) or not (0 <= v <= 1) or (lo_open and v == 0):
                raise bad(key, "a number in (0, 1]" if lo_open else "a number in [0, 1]")
        if not isinstance(self.recovery, bool):
            raise bad("recovery", "true or false")
        for key in ("lost_frames", "max_crops_per_frame"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise bad(key, "an integer >= 1")
        for key in ("lost_ratio", "lost_peak_ratio", "candidate_threshold", "reacquire_threshold", "reacquire_ratio"):
            v = getattr(self, key)
            if not _is_number(v) or not (0 <= v <= 1):
                raise bad(key, "a number in [0, 1]")
        v = self.min_box_side
        if not _is_number(v) or not (1 <= v <= 10):
            raise bad("min_box_side", "a number of pixels in [1, 10]")
        v = self.tile_stride
        if not _is_number(v) or not (0 < v <= 1):
            raise bad("tile_stride", "a number in (0, 1] (crop sides)")
        v = self.tile_min_fraction
        if not _is_number(v) or not (0 <= v <= 1):
            raise bad("tile_min_fraction", "a number in [0, 1] (of the frame's shorter side)")
        g = self.growth_factors
        if isinstance(g, (str, bytes)) or not isinstance(g, (list, tuple)) or not all(
                _is_number(f) and math.isfinite(f) and f >= 1 for f in g):
            raise bad("growth_factors", "a list of numbers >= 1 (may be empty)")
        object.__setattr__(self, "growth_factors", tuple(float(f) for f in g))


_KEYS = tuple(f.name for f in fields(Preset) if f.name != "name")


def available_presets() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files(__package__).joinpath("presets").iterdir()
                  if p.name.endswith(".json"))


def _pick(name: str, key: str, value: Any, variant: str) -> Any:
    if not isinstance(value, Mapping):
        return value
    unknown = set(value) - set(VARIANT_KEYS)
    if unknown:
        raise PresetError(f"preset {name!r}: {key} has unknown variant(s) {sorted(unknown)}; valid: {VARIANT_KEYS}")
    if variant in value:
        return value[variant]
    if "other" in value:
        return value["other"]
    raise PresetError(f"preset {name!r}: {key} has no value for variant {variant!r} and no 'other' entry")


def preset_from_dict(params: Mapping[str, Any], variant: str, name: str = "custom") -> Preset:
    """Build a Preset from a mapping; unknown keys are an error naming them and the valid ones."""
    unknown = set(params) - set(_KEYS) - {"description", "name"}
    if unknown:
        raise PresetError(f"preset {name!r}: unknown key(s) {sorted(unknown)}; valid keys: {', '.join(_KEYS)}")
    values = {k: _pick(name, k, v, variant) for k, v in params.items() if k in _KEYS}
    return Preset(name=str(params.get("name", name)), **values)


def load_preset(preset: str | Path | Mapping[str, Any] | Preset | None, variant: str) -> Preset:
    """A preset by registered name, JSON file path, mapping of values, or Preset; None = 'default'.

    A mapping starts from the 'default' preset and overrides the keys it gives.
    """
    if isinstance(preset, Preset):
        return preset
    if preset is None:
        preset = "default"
    if isinstance(preset, Mapping):
        base = _read_named("default")
        return preset_from_dict({**base, **preset, "name": preset.get("name", "custom")}, variant)
    path = Path(preset)
    if path.suffix == ".json" and path.is_file():
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise PresetError(f"cannot read preset file {path}: {exc}") from exc
        return preset_from_dict(data, variant, name=path.stem)
    return preset_from_dict(_read_named(str(preset)), variant, name=str(preset))


def _read_named(name: str) -> dict:
    names = available_presets()
    if name not in names:
        raise PresetError(f"unknown preset {name!r}; valid: {', '.join(names)} (or a .json file / dict of values)")
    return json.loads(resources.files(__package__).joinpath("presets", f"{name}.json").read_text())
