"""What the benchmark ran on: CPU model, cores, SIMD/matrix flags, OS, memory, load, library versions.

Everything is best effort: a field that cannot be read is None, never an exception.
"""
from __future__ import annotations

import os
import platform
import sys
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Dict, List, Optional

# CPU flags that matter for inference speed (x86 /proc/cpuinfo names; ARM names kept as reported).
INTERESTING_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
                     "avx_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_int8", "amx_bf16",
                     "asimd", "asimddp", "sve", "sve2", "i8mm", "bf16")
LIBRARIES = ("mixformerv2-cpu", "numpy", "opencv-contrib-python-headless", "opencv-contrib-python",
             "opencv-python-headless", "opencv-python", "onnxruntime", "openvino", "psutil", "matplotlib", "tqdm")


def usable_cores() -> int:
    """CPUs this process may run on (affinity mask), else os.cpu_count()."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _cpuinfo() -> Dict[str, str]:
    """First processor block of /proc/cpuinfo (Linux) as a dict; {} elsewhere."""
    out: Dict[str, str] = {}
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return out
    for line in text.splitlines():
        if not line.strip():
            if out:
                break
            continue
        key, _, value = line.partition(":")
        out.setdefault(key.strip().lower(), value.strip())
    return out


def cpu_model() -> Optional[str]:
    info = _cpuinfo()
    for key in ("model name", "hardware", "cpu model", "processor"):
        if info.get(key) and not info[key].isdigit():
            return info[key]
    if sys.platform == "darwin":
        try:
            import subprocess
            return subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True,
                                  text=True, timeout=5).stdout.strip() or None
        except (OSError, subprocess.SubprocessError):
            pass
    return platform.processor() or None


def cpu_flags() -> List[str]:
    """The interesting SIMD / matrix flags this CPU reports (x86 'flags' or ARM 'features')."""
    info = _cpuinfo()
    flags = set((info.get("flags") or info.get("features") or "").split())
    return [f for f in INTERESTING_FLAGS if f in flags]


def physical_cores() -> Optional[int]:
    try:
        import psutil
        return psutil.cpu_count(logical=False)
    except Exception:  # noqa: BLE001 - psutil missing or unsupported platform
        return None


def memory_total_gb() -> Optional[float]:
    try:
        import psutil
        return round(psutil.virtual_memory().total / 2 ** 30, 1)
    except Exception:  # noqa: BLE001
        return None


def load_average() -> Optional[List[float]]:
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


def library_versions() -> Dict[str, str]:
    """Installed versions of the libraries that decide speed (absent ones are left out)."""
    out: Dict[str, str] = {}
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
