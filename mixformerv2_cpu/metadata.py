"""Model metadata that travels inside every exported file.

ONNX stores it in ``metadata_props``, OpenVINO IR in ``rt_info['mixformerv2']`` (formats.py); both hold
strings. This module is the single definition of the keys, their types and their checks.
"""
from __future__ import annotations

import json
from dataclasses import MISSING, asdict, dataclass, fields
from collections.abc import Mapping

from .errors import ModelFileError
from .formats import ROLES

FORMAT = "mixformerv2-cpu"
FORMAT_VERSION = 2  # 2: ``input_format`` (files with the reference input layout still say 1)
BOX_SCALE_RANGE = (0.5, 2.0)  # a calibration, not a different box convention


# What the image inputs of a graph hold (preprocess.py makes them from a BGR uint8 crop):
# "rgb_nchw": the reference, RGB (B,3,S,S) normalised with the metadata's mean / std;
# "bgr_nhwc_raw": the crop's own pixels, BGR (B,S,S,3) float 0..255 (the project's convolutional stems,
# whose weights were trained on raw BGR: the normalisation and the layout change happen nowhere).
INPUT_FORMATS = ("rgb_nchw", "bgr_nhwc_raw")
REFERENCE_INPUT, RAW_INPUT = INPUT_FORMATS


def box_scale_problem(value: float) -> str | None:
    """Why ``value`` cannot be a model's ``box_scale`` (outside BOX_SCALE_RANGE, or NaN), else None."""
    low, high = BOX_SCALE_RANGE
    return None if low <= value <= high else f"box_scale must be in [{low}, {high}], got {value!r}"


@dataclass(frozen=True)
class ModelMetadata:
    """What the runtime needs to know about a graph; never guessed from file names.

    ``template_kv`` layout (template graph output, search graph input):
    (batch, depth, 2 [keys, values], heads, 2 * template tokens, head_dim).

    ``box_scale``: the model's box-size calibration, chosen after training (``mixformerv2-export
    --box-scale``): the boxes the tracker *reports* have their width and height multiplied by it about
    the centre (the tracker itself keeps following the network's boxes). 1.0 (the reference
    behaviour) when absent, as in every export of the official weights.

    ``keep_search_tokens`` / ``prune_after``: the search graph's token pruning (0: none, the reference):
    after block ``prune_after`` only that many search tokens go on. Informational: the runtime feeds and
    reads the graphs the same way; written only when pruning is on.

    ``input_format``: the layout of the image inputs (``INPUT_FORMATS``); ``mean`` / ``std`` apply to
    "rgb_nchw" (the reference, and the meaning when absent). A file with another format says
    ``format_version`` 2, so a runtime that predates the key refuses it instead of feeding it the
    reference layout.
    """

    role: str
    variant: str
    template_size: int
    search_size: int
    bins: int
    embed_dim: int
    depth: int
    num_heads: int
    template_tokens: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    precision: str = "fp32"
    box_scale: float = 1.0
    input_format: str = REFERENCE_INPUT
    keep_search_tokens: int = 0
    prune_after: int = 0
    format: str = FORMAT
    format_version: int = FORMAT_VERSION

    def to_strings(self) -> dict[str, str]:
        """The metadata as strings; a file with the reference input format says format_version 1 and has
        no ``input_format`` key (readable by every runtime, as before the key existed)."""
        out = {}
        for k, v in asdict(self).items():
            out[k] = json.dumps(list(v)) if isinstance(v, (tuple, list)) else str(v)
        if not self.keep_search_tokens:
            del out["keep_search_tokens"], out["prune_after"]
        if self.input_format == REFERENCE_INPUT:
            del out["input_format"]
            out["format_version"] = "1"
        else:
            out["format_version"] = "2"
        return out

    @classmethod
    def from_strings(cls, props: Mapping[str, str], source: str) -> "ModelMetadata":
        if props.get("format") != FORMAT:
            raise ModelFileError(f"{source}: no {FORMAT} metadata (expected key 'format'={FORMAT!r}, "
                                 f"got {props.get('format')!r}); export the model with mixformerv2-export")
        try:
            version = int(props["format_version"])
        except (KeyError, ValueError) as exc:
            raise ModelFileError(f"{source}: metadata has no valid 'format_version'") from exc
        if version > FORMAT_VERSION:
            raise ModelFileError(f"{source}: metadata format_version {version} is newer than this runtime "
                                 f"supports ({FORMAT_VERSION}); upgrade mixformerv2-cpu")
        values = {}
        for f in fields(cls):
            if f.name not in props:
                if f.default is not MISSING:
                    continue
                raise ModelFileError(f"{source}: metadata key {f.name!r} is missing")
            raw = props[f.name]
            try:
                if f.name in ("mean", "std"):
                    val = tuple(float(x) for x in json.loads(raw))
                    if len(val) != 3:
                        raise ValueError("need 3 values")
                elif f.type == "int":
                    val = int(raw)
                elif f.type == "float":
                    val = float(raw)
                else:
                    val = raw
            except ValueError as exc:
                raise ModelFileError(f"{source}: metadata key {f.name!r} has invalid value {raw!r}") from exc
            values[f.name] = val
        meta = cls(**values)
        problem = box_scale_problem(meta.box_scale)
        if problem:
            raise ModelFileError(f"{source}: metadata {problem}")
        if meta.role not in ROLES:
            raise ModelFileError(f"{source}: metadata role {meta.role!r} is not one of {ROLES}")
        if meta.input_format not in INPUT_FORMATS:
            raise ModelFileError(f"{source}: metadata input_format {meta.input_format!r} is not one of {INPUT_FORMATS}")
        return meta
