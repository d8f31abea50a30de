"""Console scripts whose optional dependencies (pip extras) may be missing.

``run_with_extra("mixformerv2_export.cli", "export", argv)`` imports the script's module and runs its
``main``; when an import fails because a package of the extra is not installed, it prints the pip
command that installs it instead of a traceback and returns exit code 2.
"""
from __future__ import annotations

import importlib
import sys
from collections.abc import Callable

# extra -> the top-level modules it provides (setup.cfg [options.extras_require])
EXTRA_MODULES = {
    "export": ("torch", "onnx", "onnxsim", "nncf"),
    "bench": ("matplotlib", "tqdm", "psutil"),
}
INSTALL_HINT = {
    "export": 'pip install torch==2.13.0 && pip install "mixformerv2-cpu[export]"   (the CPU build of torch first)',
    "bench": 'pip install "mixformerv2-cpu[bench]"',
}


def run_with_extra(module: str, extra: str, prog: str, argv: list[str] | None = None) -> int:
    try:
        main: Callable[..., int] = importlib.import_module(module).main
    except ImportError as exc:
        missing = (exc.name or "").split(".")[0]
        if missing not in EXTRA_MODULES[extra]:
            raise
        print(f"error: {prog} needs the '{extra}' extra ({missing} is not installed):\n  {INSTALL_HINT[extra]}",
              file=sys.stderr)
        return 2
    return main(argv)
