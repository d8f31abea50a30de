"""tools/avx2-only: CPUID masked for a whole process, so every library dispatches as on an AVX2-only CPU.

Run in fresh processes (each library reads CPUID once). Needs Linux x86-64 with CPUID faulting and gcc.
"""
from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mixformerv2_cpu.cpu import CPUID_MASK_ENV, CPUID_MASKED_FLAGS, _proc_flags

WRAPPER = Path(__file__).resolve().parents[1] / "tools" / "avx2-only"


def _cpuid_fault() -> bool:
    try:
        return "cpuid_fault" in Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False


needs_mask = pytest.mark.skipif(
    platform.machine() != "x86_64" or shutil.which("gcc") is None or not _cpuid_fault(),
    reason="needs x86-64 Linux with CPUID faulting ('cpuid_fault' in /proc/cpuinfo) and gcc")

PROBE = ("import json; from mixformerv2_cpu.cpu import cpu_flags, hidden_flags, cpuid_features, cpuid_mask; "
         "from mixformerv2_benchmarks.machine import openvino_kernel_isas; f = cpuid_features(); "
         "print(json.dumps([cpuid_mask(), cpu_flags(), hidden_flags(), f.get('AVX2'), f.get('AVX512F'), "
         "openvino_kernel_isas()]))")


def _clean_env(tmp_path) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("LD_PRELOAD", CPUID_MASK_ENV, "ONEDNN_MAX_CPU_ISA", "GLIBC_TUNABLES")}
    return {**env, "XDG_CACHE_HOME": str(tmp_path)}


@needs_mask
def test_the_mask_hides_avx512_and_amx_from_every_library(tmp_path):
    env = _clean_env(tmp_path)
    free = json.loads(subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True,
                                     check=True).stdout)
    masked = json.loads(subprocess.run([str(WRAPPER), sys.executable, "-c", PROBE], env=env, capture_output=True,
                                       text=True, check=True).stdout)
    mask, flags, hidden, avx2, avx512f, kernels = masked
    assert mask == "avx2" and free[0] is None
    assert avx2 is True and avx512f is False            # what CPUID now answers, read by numpy
    assert not set(flags) & set(CPUID_MASKED_FLAGS) and "avx2" in flags
    assert hidden == [f for f in _proc_flags() if f in CPUID_MASKED_FLAGS]
    assert set(flags) | set(hidden) == set(free[1])     # nothing else lost or invented
    if kernels is not None:                             # oneDNN / OpenVINO compiled AVX2 kernels only
        assert kernels.get("avx2", 0) > 0 and "avx512" not in kernels and "amx" not in kernels
    assert (tmp_path / "mixformerv2-cpu" / "cpuid_mask.so").is_file()


@needs_mask
def test_a_real_segfault_under_the_mask_still_kills_the_process(tmp_path):
    code = "import ctypes; ctypes.string_at(0)"
    done = subprocess.run([str(WRAPPER), sys.executable, "-c", code], env=_clean_env(tmp_path),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == -11, (done.returncode, done.stderr[-500:])


def test_the_variable_alone_is_refused_where_cpuid_shows_avx512(tmp_path):
    """MIXFORMERV2_CPUID_MASK without the preloaded mask must not label a run AVX2-only."""
    code = "from mixformerv2_cpu.cpu import cpuid_mask; print(cpuid_mask())"
    done = subprocess.run([sys.executable, "-c", code], env={**_clean_env(tmp_path), CPUID_MASK_ENV: "avx2"},
                          capture_output=True, text=True)
    if "avx512f" in _proc_flags():
        assert done.returncode != 0 and "tools/avx2-only" in done.stderr
    else:  # an AVX2-only CPU: nothing to hide, the label is true
        assert done.returncode == 0 and done.stdout.strip() == "avx2"
