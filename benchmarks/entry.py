"""Entry points of ``mixformerv2-bench`` / ``mixformerv2-eval``: say which extra to install when missing."""
from __future__ import annotations

from mixformerv2_cpu.extras import run_with_extra


def bench(argv: list[str] | None = None) -> int:
    return run_with_extra("mixformerv2_benchmarks.fps", "bench", "mixformerv2-bench", argv)


def evaluate(argv: list[str] | None = None) -> int:
    return run_with_extra("mixformerv2_benchmarks.accuracy", "bench", "mixformerv2-eval", argv)
