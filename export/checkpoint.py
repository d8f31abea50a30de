"""Loading of official MixFormerV2 checkpoints (reference facts §1), strict and safe.

A ``.pth.tar`` file is a pickle. By default it is read with ``torch.load(weights_only=True)``;
trainer checkpoints whose extra entries (``settings``, ``stats``) are custom objects fall back
to a restricted unpickler that builds tensors only and replaces every other global by an inert
stub, so no code from the file runs. Full unpickling is only done with ``allow_unsafe_pickle``.
"""
from __future__ import annotations

import logging
import pickle
import re
from pathlib import Path
from typing import Any

import torch

from .network import CONFIGS, MixFormerV2, ModelConfig
from .network.stem import MobileNetStem

log = logging.getLogger(__name__)

HEAD_DIM = 64  # every released variant; heads are not recoverable from tensor shapes


class CheckpointError(ValueError):
    """The file is not a usable MixFormerV2 checkpoint; the message says why."""


class _Inert:
    """Stand-in for any non-tensor global in a trainer checkpoint: accepts and ignores everything."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass

    def __call__(self, *args: Any, **kwargs: Any) -> "_Inert":
        return _Inert()


def _allowed_global(module: str, name: str) -> Any | None:
    if module == "collections" and name == "OrderedDict":
        import collections

        return collections.OrderedDict
    if module == "torch._utils" and name in {"_rebuild_tensor_v2", "_rebuild_parameter", "_rebuild_parameter_with_state"}:
        import torch._utils

        return getattr(torch._utils, name)
    if module == "torch" and (name.endswith("Storage") or isinstance(getattr(torch, name, None), torch.dtype)):
        return getattr(torch, name)
    if module == "torch" and name == "Size":
        return torch.Size
    return None


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:  # noqa: D401 - pickle hook
        obj = _allowed_global(module, name)
        if obj is None:
            log.debug("checkpoint global %s.%s replaced by an inert stub", module, name)
            return _Inert
        return obj


class _restricted_pickle:  # module-like object for torch.load(pickle_module=...)
    Unpickler = _RestrictedUnpickler
    load = staticmethod(pickle.load)
    __name__ = "restricted_pickle"


def read_checkpoint(path: str | Path, allow_unsafe_pickle: bool = False) -> dict:
    """Read a checkpoint file and return its top-level dict (only ``net`` is guaranteed usable)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if allow_unsafe_pickle:
            log.warning("loading %s with full unpickling (--allow-unsafe-pickle): code in the file may run", path)
            obj = torch.load(path, map_location="cpu", weights_only=False)
        else:
            log.info("%s holds non-tensor objects (%s); reading it with the restricted unpickler", path,
                     str(exc).splitlines()[0][:120])
            try:
                obj = torch.load(path, map_location="cpu", weights_only=False, pickle_module=_restricted_pickle)
            except Exception as exc2:  # noqa: BLE001 - any failure means an unreadable file
                raise CheckpointError(f"cannot read checkpoint {path}: {exc2}") from exc2
    except Exception as exc:  # noqa: BLE001 - truncated zip, not a pickle, ...
        raise CheckpointError(f"cannot read checkpoint {path}: not a PyTorch checkpoint or truncated "
                              f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from exc
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: expected a dict with key 'net', got {type(obj).__name__}")
    return obj


def state_dict_of(ckpt: dict, path: str | Path = "checkpoint") -> dict[str, torch.Tensor]:
    """The ``net`` state_dict of a checkpoint dict (a bare state_dict is accepted too)."""
    if "net" in ckpt:
        sd = ckpt["net"]
    elif any(isinstance(k, str) and k.startswith("backbone.") for k in ckpt):
        sd = ckpt
    else:
        keys = ", ".join(sorted(map(str, ckpt))[:8])
        raise CheckpointError(f"{path}: no 'net' entry and no MixFormerV2 keys (top-level keys: {keys})")
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise CheckpointError(f"{path}: 'net' is not a dict of tensors")
    return sd


def _need(sd: dict, key: str, ndim: int, path: Any) -> torch.Size:
    if key not in sd:
        raise CheckpointError(f"{path}: not a MixFormerV2 state_dict, missing key {key!r}")
    shape = sd[key].shape
    if len(shape) != ndim:
        raise CheckpointError(f"{path}: key {key!r} has shape {tuple(shape)}, expected {ndim} dims")
    return shape


def infer_config(sd: dict, path: Any = "checkpoint", num_heads: int | None = None) -> ModelConfig:
    """Model configuration from tensor shapes (heads from ``num_heads`` or head dim 64)."""
    _, nt, d = _need(sd, "backbone.pos_embed_t", 3, path)
    _, ns, _ = _need(sd, "backbone.pos_embed_s", 3, path)
    _, p, _ = _need(sd, "backbone.reg_tokens", 3, path)
    patch = _need(sd, "backbone.patch_embed.proj.weight", 4, path)[-1]
    hidden = _need(sd, "backbone.blocks.0.mlp.fc1.weight", 2, path)[0]
    bins = _need(sd, "box_head.layers.1.0.weight", 2, path)[0]
    depth = 1 + max(int(m.group(1)) for k in sd if (m := re.match(r"backbone\.blocks\.(\d+)\.", k)))
    tg, sg = round(nt ** 0.5), round(ns ** 0.5)
    if tg * tg != nt or sg * sg != ns:
        raise CheckpointError(f"{path}: position embeddings ({nt}, {ns} tokens) are not square grids")
    return ModelConfig(embed_dim=d, depth=depth, num_heads=num_heads or d // HEAD_DIM, mlp_ratio=hidden / d,
                       patch_size=patch, template_size=tg * patch, search_size=sg * patch, bins=bins,
                       num_pred_tokens=p, in_chans=_need(sd, "backbone.patch_embed.proj.weight", 4, path)[1])


def variant_name(cfg: ModelConfig) -> str:
    """'small' / 'base' for the released shapes (with or without search-token pruning, which changes
    no weight), 'custom' otherwise."""
    for name, ref in CONFIGS.items():
        if cfg.unpruned == ref:
            return name
    return "custom"


def load_strict(model: MixFormerV2, sd: dict, path: Any = "checkpoint") -> None:
    """Copy sd into model; any missing, unexpected or mis-shaped key is an error naming it."""
    own = model.state_dict()
    missing = sorted(set(own) - set(sd))
    unexpected = sorted(set(sd) - set(own))
    if missing:
        raise CheckpointError(f"{path}: missing key {missing[0]!r}" + (f" (+{len(missing) - 1} more)" if len(missing) > 1 else ""))
    if unexpected:
        raise CheckpointError(f"{path}: unexpected key {unexpected[0]!r}" + (f" (+{len(unexpected) - 1} more)" if len(unexpected) > 1 else ""))
    for k, v in own.items():
        if tuple(sd[k].shape) != tuple(v.shape):
            raise CheckpointError(f"{path}: key {k!r} has shape {tuple(sd[k].shape)}, expected {tuple(v.shape)}")
    model.load_state_dict({k: t.float() for k, t in sd.items()}, strict=True)


def load_model(path: str | Path, variant: str | None = None, allow_unsafe_pickle: bool = False) -> tuple[MixFormerV2, str]:
    """Load a checkpoint into a fresh eval-mode model. Returns (model, variant name).

    ``variant`` ('small'/'base'), when given, must agree with the variant detected from the shapes.
    A checkpoint may carry a ``config`` dict (our own trained models: the full ModelConfig).
    """
    if variant is not None and variant not in CONFIGS:
        raise CheckpointError(f"unknown variant {variant!r}; valid: {', '.join(CONFIGS)}")
    ckpt = read_checkpoint(path, allow_unsafe_pickle)
    sd = state_dict_of(ckpt, path)
    extra = ckpt.get("config") if isinstance(ckpt.get("config"), dict) else None
    if extra:  # our own models carry their full configuration; the strict load checks it
        try:
            cfg = ModelConfig(**extra)
        except (TypeError, ValueError) as exc:
            raise CheckpointError(f"{path}: invalid 'config' entry: {exc}") from exc
    else:
        cfg = infer_config(sd, path)
    detected = variant_name(cfg)
    if variant is not None and detected != variant:
        raise CheckpointError(f"{path}: --variant {variant} given, but the file holds a {detected} model "
                              f"(depth {cfg.depth}, MLP {cfg.mlp_hidden}, template {cfg.template_size}, "
                              f"search {cfg.search_size})")
    model = MixFormerV2(cfg)
    load_strict(model, sd, path)
    return model.eval(), detected


def load_nanotrack_features(stem: MobileNetStem, checkpoint: str | Path) -> int:
    """Copy ``backbone.features.*`` of a NanoTrack training checkpoint into ``stem`` (v2 for ``mnv3s``,
    v3 for ``mnv3s96``); returns the number of tensors copied."""
    sd = read_checkpoint(checkpoint)  # restricted unpickler: the file also holds numpy scalars
    sd = sd.get("state_dict", sd)
    own = stem.features.state_dict()
    picked = {k[len("backbone.features."):]: v for k, v in sd.items() if k.startswith("backbone.features.")}
    picked = {k: v for k, v in picked.items() if k in own}
    missing = set(own) - set(picked)
    if missing:
        raise KeyError(f"{checkpoint}: no weights for stem keys {sorted(missing)[:5]}")
    stem.features.load_state_dict(picked, strict=True)
    return len(picked)
