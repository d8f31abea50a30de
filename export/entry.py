"""Entry point of ``mixformerv2-export``: says which extra to install when torch & co. are missing."""
from __future__ import annotations

import sys

from mixformerv2_cpu.extras import run_with_extra


def main(argv: list[str] | None = None) -> int:
    return run_with_extra("mixformerv2_export.cli", "export", "mixformerv2-export", argv)


if __name__ == "__main__":
    sys.exit(main())
