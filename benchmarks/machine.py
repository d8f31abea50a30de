"""What the benchmark ran on: CPU model, cores, SIMD/matrix flags, OS, memory, load, library versions.

Everything is best effort: a field that cannot be read is None, never an exception.
"""
from __future__ import annotations

import os
import platform
from importlib import metadata as importlib_metadata

from mixformerv2_cpu.cpu import cpu_flags, cpu_model, isa_cap, usable_cores  # noqa: F401 (re-exported)

LIBRARIES = ("mixformerv2-cpu", "numpy", "opencv-contrib-python-headless", "opencv-contrib-python",
             "opencv-python-headless", "opencv-python", "onnxruntime", "openvino", "psutil", "matplotlib", "tqdm")


def physical_cores() -> int | None:
    try:
        import psutil
        return psutil.cpu_count(logical=False)
    except Exception:  # noqa: BLE001 - psutil missing or unsupported platform
        return None


def memory_total_gb() -> float | None:
    try:
        import psutil
        return round(psutil.virtual_memory().total / 2 ** 30, 1)
    except Exception:  # noqa: BLE001
        return None


def load_average() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def machine_info() -> dict:
    return {
        "cpu_model": cpu_model(),
        "logical_cores": os.cpu_count(),
        "physical_cores": physical_cores(),
        "usable_cores": usable_cores(),
        "flags": cpu_flags(),
        "machine": platform.machine(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "memory_gb": memory_total_gb(),
        "hostname": platform.node(),
    }


def library_versions() -> dict[str, str]:
    """Installed versions of the libraries that decide speed (absent ones are left out)."""
    out: dict[str, str] = {}
    for dist in LIBRARIES:
        try:
            out[dist] = importlib_metadata.version(dist)
        except importlib_metadata.PackageNotFoundError:
            continue
    try:  # the version string cv2 itself reports (the wheel that actually gets imported)
        import cv2
        out["cv2"] = cv2.__version__
    except ImportError:
        pass
    return out


def describe(machine: dict) -> str:
    """One line: CPU model, cores, flags, OS."""
    cores = f"{machine.get('usable_cores')} usable / {machine.get('logical_cores')} logical"
    if machine.get("physical_cores"):
        cores += f" / {machine['physical_cores']} physical"
    flags = ", ".join(machine.get("flags") or []) or "none detected"
    mem = f", {machine['memory_gb']} GB RAM" if machine.get("memory_gb") else ""
    return f"{machine.get('cpu_model') or 'unknown CPU'} ({cores} cores{mem}; flags: {flags}); {machine.get('os')}"
