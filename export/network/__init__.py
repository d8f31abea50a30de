"""PyTorch MixFormerV2: configuration, network and heads."""
from .config import CONFIGS, INPUT_MEAN, INPUT_STD, ModelConfig
from .heads import decode_ltrb
from .mixformerv2 import MixFormerV2

__all__ = ["CONFIGS", "INPUT_MEAN", "INPUT_STD", "ModelConfig", "MixFormerV2", "decode_ltrb"]
