"""Exception types of the runtime. Every message says what was expected and what came."""


class TrackerError(Exception):
    """Base class of every error raised by mixformerv2_cpu."""


class InvalidFrameError(TrackerError, ValueError):
    """A frame of the wrong type, dtype, shape, channel count or size."""


class InvalidBoxError(TrackerError, ValueError):
    """A box that is NaN, of zero or negative size, or outside the frame."""


class ModelFileError(TrackerError, OSError):
    """A model file or folder that is missing, corrupt, or lacks the metadata."""


class NotInitializedError(TrackerError, RuntimeError):
    """``update()`` called before ``init()``."""


class PresetError(TrackerError, ValueError):
    """An unknown preset name, an unknown key, or an invalid value."""


class BackendError(TrackerError, ValueError):
    """An unknown or unavailable backend."""


class UsageError(TrackerError):
    """A command-line usage problem (bad option value, missing --init, unwritable output)."""


class SettingError(TrackerError, ValueError):
    """An invalid tracker setting (threads, graphs)."""
