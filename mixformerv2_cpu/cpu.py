"""What this CPU can do: model name, the SIMD/matrix flags that matter for inference, usable cores.

Best effort: a field that cannot be read is None / empty, never an exception. The CLI (`info`),
the automatic backend choice and the benchmark harness all read this module.
"""
from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

# CPU flags that matter for inference speed (x86 /proc/cpuinfo names; ARM names kept as reported)
INTERESTING_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
                     "avx_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_int8", "amx_bf16",
                     "asimd", "asimddp", "sve", "sve2", "i8mm", "bf16")
ISA_ENV = "ONEDNN_MAX_CPU_ISA"  # oneDNN's (and OpenVINO's oneDNN kernels') instruction-set cap
CPUID_MASK_ENV = "MIXFORMERV2_CPUID_MASK"  # set by tools/avx2-only, which masks CPUID for the whole process
# what tools/avx2-only hides (the flags above that an AVX2 + FMA CPU such as AMD Zen 3 does not have)
CPUID_MASKED_FLAGS = ("avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx_vnni", "avx512_bf16", "avx512_fp16",
                      "amx_tile", "amx_int8", "amx_bf16")


def usable_cores() -> int:
    """CPUs this process may run on (affinity mask), else os.cpu_count()."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _cpuinfo() -> dict[str, str]:
    """First processor block of /proc/cpuinfo (Linux) as a dict; {} elsewhere."""
    out: dict[str, str] = {}
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


def cpu_model() -> str | None:
    info = _cpuinfo()
    for key in ("model name", "hardware", "cpu model", "processor"):
        if info.get(key) and not info[key].isdigit():
            return info[key]
    if sys.platform == "darwin":
        try:
            return subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True,
                                  text=True, timeout=5).stdout.strip() or None
        except (OSError, subprocess.SubprocessError):
            pass
    return platform.processor() or None


def _proc_flags() -> list[str]:
    info = _cpuinfo()
    flags = set((info.get("flags") or info.get("features") or "").split())
    return [f for f in INTERESTING_FLAGS if f in flags]


def cpuid_features() -> dict[str, bool]:
    """numpy's runtime CPU detection (it executes CPUID in this process, so it sees what every
    library here sees, ``tools/avx2-only``'s mask included): e.g. {'AVX2': True, 'AVX512F': False}."""
    try:
        from numpy._core._multiarray_umath import __cpu_features__ as seen
    except ImportError:  # numpy 1.x
        try:
            from numpy.core._multiarray_umath import __cpu_features__ as seen
        except ImportError:
            return {}
    return dict(seen)


def cpuid_mask() -> str | None:
    """'avx2' when this process runs under ``tools/avx2-only`` and the mask took effect (numpy's
    runtime detection, which executes CPUID, reports no AVX-512F), else None. Raises RuntimeError
    when the mask was asked for (MIXFORMERV2_CPUID_MASK set) but CPUID still shows AVX-512 while
    /proc/cpuinfo lists it: a speed figure would otherwise be labelled AVX2 without being it."""
    wanted = os.environ.get(CPUID_MASK_ENV, "").strip().lower()
    if not wanted:
        return None
    if "avx512f" in _proc_flags() and cpuid_features().get("AVX512F", False):
        raise RuntimeError(f"{CPUID_MASK_ENV}={wanted} is set but CPUID still reports AVX-512F: run the command "
                           "through tools/avx2-only (it preloads the CPUID mask), not with the variable alone")
    return wanted


def cpu_flags() -> list[str]:
    """The interesting SIMD / matrix flags this process can use (x86 'flags' or ARM 'features' of
    /proc/cpuinfo, less what ``tools/avx2-only`` hides from CPUID)."""
    hidden = CPUID_MASKED_FLAGS if cpuid_mask() else ()
    return [f for f in _proc_flags() if f not in hidden]


def hidden_flags() -> list[str]:
    """The CPU's flags that ``tools/avx2-only`` hides from this process ([] without the mask)."""
    return [f for f in _proc_flags() if f in CPUID_MASKED_FLAGS] if cpuid_mask() else []


def int8_kernels(flags: list[str] | None = None) -> str:
    """Which integer dot product int8 MatMuls run on here, which decides their rounding, so an int8
    accuracy measurement holds only for CPUs of the same class:

    - ``"vnni"``: AVX512-VNNI / AVX-VNNI / AMX: u8 x s8 products summed exactly into int32;
    - ``"avx2"``: AVX2 (or AVX-512BW) without VNNI: pairs of u8 x s8 products first summed into a
      saturating int16 (VPMADDUBSW), which ONNX Runtime's and oneDNN's kernels use there
      (measured on MixFormerV2-S, ONNX Runtime dynamic int8: box IoU vs fp32 0.90 on VNNI, 0.77
      under ``tools/avx2-only``);
    - otherwise the machine name (``platform.machine()``, e.g. ``"aarch64"``)."""
    flags = cpu_flags() if flags is None else flags
    if {"avx512_vnni", "avx_vnni", "amx_int8"} & set(flags):
        return "vnni"
    if "avx2" in flags:
        return "avx2"
    return platform.machine().lower() or "unknown"


def isa_cap() -> str | None:
    """The instruction-set cap set for oneDNN/OpenVINO in this process (e.g. 'AVX2'), or None."""
    value = os.environ.get(ISA_ENV, "").strip()
    return value.upper() or None


# /proc/stat "cpu" columns that count as busy: user, nice, system, (idle, iowait skipped), irq, softirq,
# steal (a VM's neighbours running on our host CPUs)
_BUSY_COLUMNS = (0, 1, 2, 5, 6, 7)


def busy_from_stat(text: str, ticks_per_second: float) -> float | None:
    """Seconds all CPUs together spent busy, from the text of /proc/stat (its first "cpu" line); None
    when there is no such line."""
    for line in text.splitlines():
        parts = line.split()
        if parts and parts[0] == "cpu":
            values = [float(v) for v in parts[1:]]
            return sum(values[i] for i in _BUSY_COLUMNS if i < len(values)) / ticks_per_second
    return None


def busy_seconds() -> float | None:
    """Seconds all CPUs spent busy since boot (Linux /proc/stat); None where it cannot be read."""
    try:
        return busy_from_stat(Path("/proc/stat").read_text(), float(os.sysconf("SC_CLK_TCK")))
    except (OSError, ValueError, AttributeError):
        return None
