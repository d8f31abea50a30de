"""What a loader returns: :class:`Sequence`, :class:`Dataset`, and the errors a dataset raises."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


class DatasetError(ValueError):
    """A sequence that cannot be evaluated (raised in strict mode)."""


class DatasetLayoutError(DatasetError, FileNotFoundError):
    """The folder does not have the layout of the requested format; the message names the missing path."""


@dataclass
class Sequence:
    """One sequence.

    frames: absolute paths, in time order, length N.
    gt: float64 (N, 4) ``x, y, w, h`` with NaN rows for absent targets; (1, 4) when ``full_gt`` is False.
    image_size: (width, height) when the dataset states it (GOT-10k meta_info.ini), else None.
    problems: reasons why the sequence cannot be evaluated (empty when it is fine).
    """

    name: str
    frames: list[Path]
    gt: np.ndarray
    full_gt: bool = True
    image_size: tuple[int, int] | None = None
    problems: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def init_box(self) -> tuple[float, float, float, float]:
        """First-frame box ``(x, y, w, h)``."""
        return tuple(float(v) for v in self.gt[0])  # type: ignore[return-value]

    def frame_size(self) -> tuple[int, int]:
        """(width, height): ``image_size`` if known, else read from the first frame."""
        if self.image_size is None:
            import cv2
            img = cv2.imread(str(self.frames[0]), cv2.IMREAD_UNCHANGED)
            if img is None:
                raise DatasetError(f"{self.name}: cannot read {self.frames[0]}")
            self.image_size = (int(img.shape[1]), int(img.shape[0]))
        return self.image_size


@dataclass
class Dataset:
    """A loaded dataset: ``sequences`` are the valid ones, ``skipped`` maps skipped names to reasons."""

    name: str
    format: str
    root: Path
    sequences: list[Sequence]
    skipped: dict[str, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.sequences)

    @property
    def num_frames(self) -> int:
        return sum(len(s) for s in self.sequences)
