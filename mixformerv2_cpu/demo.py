"""Webcam demo: ``python -m mixformerv2_cpu.demo [options]`` is exactly ``mixformerv2 track --source 0
[options]`` (same parser, same session code in ``session.py``); any option of ``track`` may be added,
including another ``--source``."""
from __future__ import annotations

import sys

from . import cli


def main(argv: list[str] | None = None) -> int:
    """Webcam demo: ``mixformerv2 track --source 0`` plus whatever options are given."""
    args = list(sys.argv[1:] if argv is None else argv)
    return cli.main(["track", "--source", "0", *args])


if __name__ == "__main__":
    raise SystemExit(main())
