"""Online template policy of the reference tracker (reference facts §3, online size 1)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass
class OnlineTemplatePolicy(Generic[T]):
    """Best-of-interval online template.

    Each frame: ``max_score *= decay``; a frame whose score passes ``gate`` and beats
    ``max_score`` becomes the best candidate. Every ``interval`` frames (frame ids count
    tracked frames from 1) the best candidate becomes the online template and the
    candidate resets to the initial template with ``max_score = -1``.
    """

    initial: T
    interval: int
    gate: float = 0.5
    decay: float = 1.0
    max_score: float = -1.0
    best: T | None = None

    def __post_init__(self) -> None:
        if self.best is None:
            self.best = self.initial

    def wants_candidate(self, score: float) -> bool:
        """Apply the decay and say whether this frame's crop should become the best candidate."""
        self.max_score *= self.decay
        return score > self.gate and score > self.max_score

    def set_candidate(self, candidate: T, score: float) -> None:
        self.best, self.max_score = candidate, score

    def step(self, frame_id: int) -> T | None:
        """At the end of frame ``frame_id``: the new online template if it is due, else None."""
        if frame_id % self.interval:
            return None
        new = self.best
        self.best, self.max_score = self.initial, -1.0
        return new
