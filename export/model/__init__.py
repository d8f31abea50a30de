"""PyTorch MixFormerV2: configuration, network and heads."""
from .config import CONFIGS, ModelConfig
from .heads import decode_ltrb
from .mixformerv2 import MixFormerV2

__all__ = ["CONFIGS", "ModelConfig", "MixFormerV2", "decode_ltrb"]
