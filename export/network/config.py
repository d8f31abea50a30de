"""Hyper-parameters of a MixFormerV2 network (reference facts §1)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

# input normalisation of every model this package exports (ImageNet mean/std, RGB 0..1); written
# into the model files' metadata, which the runtime's preprocessing reads
INPUT_MEAN = (0.485, 0.456, 0.406)
INPUT_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ModelConfig:
    """Shape of one MixFormerV2 variant.

    ``template_size`` and ``search_size`` are crop sides in pixels; both must be
    multiples of ``patch_size``. ``bins`` is the number of positions of each
    edge distribution (``FEAT_SZ`` in the reference).
    """

    embed_dim: int = 768
    depth: int = 4
    num_heads: int = 12
    mlp_ratio: float = 1.0
    patch_size: int = 16
    template_size: int = 112
    search_size: int = 224
    bins: int = 96
    num_pred_tokens: int = 4
    in_chans: int = 3
    # "patch": the reference conv patch embedding; "mnv3s" / "mnv3s96": MobileNetV3-Small stems with
    # NanoTrack v2 / v3 layouts (stem.py)
    stem: str = "patch"
    # search-token pruning, not in the reference (0 = off): after block ``prune_after`` only the
    # ``keep_search_tokens`` search tokens the prediction tokens attend to most go on to later blocks
    keep_search_tokens: int = 0
    prune_after: int = 0

    def __post_init__(self) -> None:
        if self.embed_dim % self.num_heads:
            raise ValueError(f"embed_dim {self.embed_dim} is not divisible by num_heads {self.num_heads}")
        for name in ("template_size", "search_size"):
            if getattr(self, name) % self.patch_size:
                raise ValueError(f"{name} {getattr(self, name)} is not a multiple of patch_size {self.patch_size}")
        if self.stem not in ("patch", "mnv3s", "mnv3s96"):
            raise ValueError(f"stem must be 'patch', 'mnv3s' or 'mnv3s96', got {self.stem!r}")
        if self.stem != "patch" and self.patch_size != 16:
            raise ValueError(f"the {self.stem} stem has stride 16: patch_size must be 16")
        if self.depth < 1:
            raise ValueError(f"depth must be >= 1, got {self.depth}")
        if self.keep_search_tokens:
            if not 0 < self.keep_search_tokens < self.search_tokens:
                raise ValueError(f"keep_search_tokens must be in 1..{self.search_tokens - 1} (0: no pruning), "
                                 f"got {self.keep_search_tokens}")
            if not 0 <= self.prune_after <= self.depth - 2:
                raise ValueError(f"prune_after must be a block before the last, 0..{self.depth - 2}, "
                                 f"got {self.prune_after}")
        elif self.prune_after:
            raise ValueError(f"prune_after {self.prune_after} given without keep_search_tokens")

    @property
    def unpruned(self) -> "ModelConfig":
        """The same network without search-token pruning (what its weights and variant are)."""
        return dataclasses.replace(self, keep_search_tokens=0, prune_after=0)

    @property
    def head_dim(self) -> int:
        return self.embed_dim // self.num_heads

    @property
    def mlp_hidden(self) -> int:
        return int(self.embed_dim * self.mlp_ratio)

    @property
    def template_tokens(self) -> int:
        return (self.template_size // self.patch_size) ** 2

    @property
    def search_tokens(self) -> int:
        return (self.search_size // self.patch_size) ** 2


CONFIGS: dict[str, ModelConfig] = {
    # MixFormerV2-S, "224_depth4_mlp1_score"
    "small": ModelConfig(depth=4, mlp_ratio=1.0, template_size=112, search_size=224),
    # MixFormerV2-B, "288_depth8_score"
    "base": ModelConfig(depth=8, mlp_ratio=4.0, template_size=128, search_size=288),
}
