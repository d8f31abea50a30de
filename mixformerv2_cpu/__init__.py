"""mixformerv2_cpu: real-time MixFormerV2 single-object tracking on the CPU (no torch)."""
from ._version import __version__
from .errors import (BackendError, InvalidBoxError, InvalidFrameError, ModelFileError, NotInitializedError,
                     PresetError, SettingError, TrackerError, UsageError)
from .registry import list_models
from .presets import Preset, available_presets, load_preset
from .tracker import MultiTracker, Prediction, Tracker

__all__ = ["__version__", "Tracker", "MultiTracker", "Prediction", "Preset", "load_preset", "available_presets",
           "list_models", "TrackerError", "InvalidFrameError", "InvalidBoxError", "ModelFileError",
           "NotInitializedError", "PresetError", "BackendError", "SettingError", "UsageError"]
