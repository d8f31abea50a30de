"""What the benchmark ran on: CPU model, cores, SIMD/matrix flags, OS, memory, load, library versions.

Everything is best effort: a field that cannot be read is None, never an exception.
"""
from __future__ import annotations

import os
import platform
from importlib import metadata as importlib_metadata

from mixformerv2_cpu.cpu import cpu_flags, cpu_model, cpuid_features, cpuid_mask, hidden_flags, isa_cap, usable_cores  # noqa: F401

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


ISA_TOKENS = ("amx", "avx512", "avx2", "sse41", "uni", "ref")


def openvino_kernel_isas(model: str | None = None) -> dict[str, int] | None:
    """Instruction sets of the kernels OpenVINO compiles for a model's search step here: count of
    executed primitives per ISA token of their type (e.g. ``brgconv_avx2_1x1_f32`` -> avx2), which
    shows whether an instruction-set cap (``ONEDNN_MAX_CPU_ISA``) took effect. None if unavailable."""
    try:
        import openvino as ov

        from mixformerv2_cpu.registry import resolve_model

        path = resolve_model(model).graph_path("fp32", ("onnx", "openvino"), "search")
        core = ov.Core()
        compiled = core.compile_model(core.read_model(str(path)), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
        counts: dict[str, int] = {}
        for op in compiled.get_runtime_model().get_ops():
            rt = op.get_rt_info()
            kind = rt["primitiveType"].astype(str) if "primitiveType" in rt else ""
            token = next((t for t in ISA_TOKENS if t in kind), None)
            if token:
                counts[token] = counts.get(token, 0) + 1
        return counts
    except Exception:  # noqa: BLE001 - best effort: no OpenVINO, no default model
        return None


OPENCV_DISABLE_ENV = "OPENCV_CPU_DISABLE"  # OpenCV's runtime switch-off of dispatched instruction sets


def opencv_cpu_features() -> str | None:
    """OpenCV's dispatch line (``cv2.getCPUFeaturesLine()``: ``*`` = dispatched, ``?`` = switched off
    by OPENCV_CPU_DISABLE), or None without OpenCV."""
    try:
        import cv2
        return cv2.getCPUFeaturesLine()
    except Exception:  # noqa: BLE001 - best effort
        return None


def describe_isa(machine: dict) -> str:
    """One line: the instruction-set caps and what they produced (OpenVINO kernels, OpenCV dispatch)."""
    cap = machine.get("isa_cap")
    kernels = machine.get("openvino_kernels")
    seen = ", ".join(f"{k} x{v}" for k, v in sorted((kernels or {}).items(), key=lambda kv: -kv[1])) or "n/a"
    cv_off = machine.get("opencv_cpu_disable")
    caps = ([f"ONEDNN_MAX_CPU_ISA={cap} (OpenVINO's oneDNN kernels)"] if cap else []) + \
        ([f"{OPENCV_DISABLE_ENV}={cv_off} (OpenCV, incl. its DNN: NanoTrack, VitTrack)"] if cv_off else [])
    if machine.get("cpuid_mask"):
        caps.insert(0, f"CPUID masked to {machine['cpuid_mask'].upper()} + FMA by tools/avx2-only for every library "
                       f"(ONNX Runtime, OpenVINO, OpenCV, numpy; numpy's CPUID detection: AVX512F "
                       f"{'yes' if machine.get('numpy_avx512f') else 'no'}), hidden: "
                       f"{', '.join(machine.get('hidden_flags') or []) or 'none (the CPU has none of them)'}")
    head = ("caps: " + "; ".join(caps) + ("" if machine.get("cpuid_mask") else
                                          "; ONNX Runtime is not capped (MLAS dispatches on CPUID)") if caps
            else "no cap (every backend uses all of the CPU's instruction sets)")
    cv_line = machine.get("opencv_cpu_features")
    return (f"{head}; OpenVINO kernels compiled for the default model's search step, by ISA: {seen}"
            + (f"; OpenCV dispatch (`?` = switched off): {cv_line}" if cv_line and cv_off else ""))


def machine_info() -> dict:
    return {
        "cpuid_mask": cpuid_mask(),
        "hidden_flags": hidden_flags(),
        "numpy_avx512f": cpuid_features().get("AVX512F"),
        "isa_cap": isa_cap(),
        "openvino_kernels": openvino_kernel_isas(),
        "opencv_cpu_disable": os.environ.get(OPENCV_DISABLE_ENV, "").strip() or None,
        "opencv_cpu_features": opencv_cpu_features(),
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
    if machine.get("hidden_flags"):
        flags += f"; hidden from this run by the CPUID mask: {', '.join(machine['hidden_flags'])}"
    mem = f", {machine['memory_gb']} GB RAM" if machine.get("memory_gb") else ""
    return f"{machine.get('cpu_model') or 'unknown CPU'} ({cores} cores{mem}; flags: {flags}); {machine.get('os')}"
