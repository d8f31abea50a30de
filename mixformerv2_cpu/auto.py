"""``backend="auto"`` / ``precision="auto"`` / ``threads``: the fastest verified engine for this CPU and model.

Candidates are the backends that import here times the precisions whose accuracy was measured
for this model: fp32 always (every export is parity-checked against PyTorch), int8 only when the
export's manifest holds an int8 accuracy report that passed its gate (``int8_report.accepted``) on
this CPU's class of integer kernels (``int8_report.int8_kernels``, see ``cpu.int8_kernels``),
bf16 never automatically (no accuracy record). When more than one candidate is left, all are
loaded and timed on the per-frame search step (fixed inputs), interleaved: ``ROUNDS`` rounds in
which every candidate runs ``CALLS_PER_ROUND`` calls; a candidate's time is the lowest of its round
medians, and the fastest wins. Other processes' load only ever slows a round down, and with
interleaving a burst of it hits every candidate instead of deciding against the one that was
being timed (measured: a trial run while a training job shared the 2 cores had cached
"ONNX Runtime at 1 thread" for a model that is 1.5x faster at 2). ``threads=N`` (N > 1) is the most threads an engine
may use: N and 1 are both tried, because for a small graph the thread pool can cost more than it
gives (the default model on ONNX Runtime: 3.06 ms at 2 threads, 2.88 ms at 1), so asking for more
threads is never slower than asking for fewer. A trial during which other processes kept more than
``BUSY_SHARE`` of the CPUs busy (read from /proc/stat; under sustained load the backends slow down
unequally: a trial run beside a test suite chose ONNX Runtime at 3.88 ms over OpenVINO at 5.03, which
is the faster of the two on the idle machine) is likewise measured again on the next loads. The
choice is cached per machine and model (CPU model, flags, instruction-set cap, threads, library
versions, manifest sha256) in
``$MIXFORMERV2_CACHE_DIR`` (default ``~/.cache/mixformerv2-cpu``), so only the first use pays.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from collections.abc import Callable
from typing import TypeVar

import numpy as np

from .backends import available_backends
from .cpu import busy_seconds, cpu_flags, cpu_model, int8_kernels, isa_cap
from .formats import file_precision, readable_formats
from .manifest import Manifest, sha256_of

K = TypeVar("K")
AUTO = "auto"
ENV_CACHE = "MIXFORMERV2_CACHE_DIR"
WARMUP_CALLS, ROUNDS, CALLS_PER_ROUND = 10, 5, 8
TRIAL_VERSION = 3  # part of the cache key: choices made by an older trial are measured again
SETTLE_TRIALS = 3  # a choice of fewer threads than allowed is measured again on later loads, up to this many trials
GAP_MS = 0.5  # per-frame work between two search calls in a tracking loop (crop, normalise, decode)
BUSY_SHARE = 0.25  # a trial during which other processes used more of the CPUs than this is measured again
MIN_BUSY_WALL_S = 0.25  # /proc/stat and os.times() count in clock ticks (10 ms): shorter windows are not read
QUIET_POLL_S, QUIET_MAX_POLLS = 0.005, 50  # waiting for the last candidate's threads: poll step, at most 0.25 s
QUIET_SHARE = 0.1  # "quiet": this process used under this share of one core during a poll step


@dataclass(frozen=True)
class Choice:
    """The engine picked, and why: ``trial_ms`` maps "backend/precision/threads" to its median search-step ms."""

    backend: str
    precision: str
    reason: str
    trial_ms: dict[str, float]
    threads: int | None = None

    def describe(self) -> str:
        if not self.trial_ms:
            return f"auto: {self.reason}"
        times = ", ".join(f"{k} {v:.2f} ms" for k, v in sorted(self.trial_ms.items(), key=lambda kv: kv[1]))
        return f"auto: {self.reason} (search step: {times})"


def _label(option: tuple[str, str, int | None]) -> str:
    b, p, t = option
    return f"{b}/{p}" + (f"/{t}t" if t else "")


def verified_precisions(manifest: Manifest) -> list[str]:
    """Precisions whose accuracy was measured for this model, on this CPU's kind of kernels, and passed."""
    out = ["fp32"] if "fp32" in manifest.data["graphs"] else []
    if "int8" in manifest.data["graphs"] and int8_refusal(manifest) is None:
        out.append("int8")
    return out


def int8_valid_on(report: dict, fmt: str) -> list[str]:
    """The classes of integer kernels (``cpu.int8_kernels``) on which the int8 flavour ``fmt``'s accuracy
    measurement holds: its own record (``valid_on``: e.g. both "vnni" and "avx2" for weights that
    cannot saturate AVX2's int16 pair sums), else the class it was measured on."""
    entry = report.get(fmt)
    if isinstance(entry, dict) and isinstance(entry.get("valid_on"), list):
        return [str(k) for k in entry["valid_on"]]
    return [str(report["int8_kernels"])] if report.get("int8_kernels") else []


def int8_refusal(manifest: Manifest, backend: str | None = None) -> str | None:
    """Why the model's int8 graphs (those ``backend`` runs, or any) are not an automatic candidate here
    (None: they are, or there are none)."""
    graphs = manifest.data["graphs"].get("int8")
    if not graphs:
        return None
    report = manifest.data.get("int8_report", {})
    if report.get("accepted") is not True:
        return "int8 not verified: its accuracy record is missing or failed"
    here = int8_kernels()
    fmts = [f for f in graphs if backend is None or f in readable_formats(backend, "int8")]
    valid = {f: int8_valid_on(report, f) for f in fmts}
    if not fmts or any(here in v for v in valid.values()):
        return None
    where = " / ".join(sorted({", ".join(v) or "unrecorded" for v in valid.values()}))
    return (f"int8 not verified for this CPU: its accuracy was measured on {where} integer kernels, this CPU "
            f"runs {here} ones (re-export with --int8 on such a CPU)")


def candidates(manifest: Manifest, backend: str, precision: str) -> list[tuple[str, str]]:
    """(backend, precision) pairs allowed by the request ("auto" or a fixed value) and the model files."""
    backends = [b for b, reason in available_backends().items() if reason is None] if backend == AUTO else [backend]
    precisions = verified_precisions(manifest) if precision == AUTO else [precision]
    out = []
    for b in backends:
        for p in precisions:
            if p == "bf16" and b != "openvino":  # bfloat16 arithmetic is an OpenVINO option
                continue
            per_fmt = manifest.data["graphs"].get(file_precision(p), {})
            if precision == AUTO and p == "int8" and int8_refusal(manifest, b) is not None:
                continue  # this backend's int8 flavour was not verified for this CPU's kernels
            if any(f in per_fmt for f in readable_formats(b, p)):
                out.append((b, p))
    return out


def cache_path() -> Path:
    root = os.environ.get(ENV_CACHE) or os.path.join(os.path.expanduser("~"), ".cache", "mixformerv2-cpu")
    return Path(root) / "auto.json"


def cache_key(manifest: Manifest, threads: int | None, options: list[tuple[str, str]]) -> str:
    from importlib import metadata

    versions = []
    for dist in ("openvino", "onnxruntime"):
        try:
            versions.append(metadata.version(dist))
        except metadata.PackageNotFoundError:
            versions.append("-")
    key = [TRIAL_VERSION, cpu_model(), cpu_flags(), isa_cap(), threads, versions, sha256_of(manifest.path),
           sorted(map(str, options))]
    return hashlib.sha256(json.dumps(key, default=str).encode()).hexdigest()[:24]


def _read_cache() -> dict:
    try:
        return json.loads(cache_path().read_text())
    except (OSError, ValueError):
        return {}


def _write_cache(key: str, choice: Choice, trials: int = 1, settled: bool = True) -> None:
    path = cache_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        data = _read_cache()
        data[key] = {**asdict(choice), "trials": trials, "settled": settled}
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=1))
        tmp.replace(path)
    except OSError:
        pass  # an unwritable cache only means the trial runs again next time


def _frame_work(ms: float) -> None:
    """About ``ms`` of single-threaded CPU work, as a tracking loop does between two search steps: a
    thread pool that idles between calls pays its wake-up again, as it would in ``update()``."""
    end = time.perf_counter() + ms / 1e3
    while time.perf_counter() < end:
        pass


def wait_for_quiet_threads() -> int:
    """Sleep until this process's threads stop using the CPU, in steps of QUIET_POLL_S (at most
    QUIET_MAX_POLLS); returns the steps slept. A backend's thread pool busy-waits for work after a
    call (ONNX Runtime's search step: ~40 ms of a core on a 2-core EPYC), and a candidate timed
    meanwhile runs on one core fewer: OpenVINO's 2.1 ms search step measured 3.3 ms when its round
    followed ONNX Runtime's, and the trial chose ONNX Runtime (2.7 ms). In a tracking loop only one
    backend runs, so the trial times each candidate with the others quiet."""
    for polls in range(1, QUIET_MAX_POLLS + 1):
        cpu = time.process_time()
        time.sleep(QUIET_POLL_S)
        if time.process_time() - cpu < QUIET_SHARE * QUIET_POLL_S:
            return polls
    return QUIET_MAX_POLLS


def time_interleaved(calls: dict[K, Callable[[], object]]) -> dict[K, float]:
    """ms per call of each ``calls[k]()``: WARMUP_CALLS warm-up calls each, then ROUNDS rounds of
    CALLS_PER_ROUND calls per candidate (after the other candidates' threads are quiet, one untimed
    call, then each call preceded by GAP_MS of other work, as in a tracking loop); the lowest of a
    candidate's round medians."""
    for search in calls.values():
        for _ in range(WARMUP_CALLS):
            search()
    rounds: dict[K, list[float]] = {k: [] for k in calls}
    for _ in range(ROUNDS):
        for k, search in calls.items():
            wait_for_quiet_threads()  # the last candidate's pool may still be busy-waiting
            search()
            times = []
            for _ in range(CALLS_PER_ROUND):
                _frame_work(GAP_MS)
                t0 = time.perf_counter()
                search()
                times.append(time.perf_counter() - t0)
            rounds[k].append(float(np.median(times)) * 1e3)
    return {k: min(v) for k, v in rounds.items()}


def others_share_during(call: Callable[[], K]) -> tuple[K, float | None]:
    """``call()``'s result and the share (0..1) of all CPUs' time during it that went to other processes
    (the machine's busy time from /proc/stat minus this process's CPU time; a VM's steal time counts as
    other); None where the machine's busy time cannot be read or ``call()`` took less than
    ``MIN_BUSY_WALL_S`` (both counters move in clock ticks of 10 ms: one tick of another process in a
    1 ms window would read as the CPUs being full)."""
    wall0, own0, busy0 = time.perf_counter(), sum(os.times()[:2]), busy_seconds()
    result = call()
    wall, own, busy = time.perf_counter() - wall0, sum(os.times()[:2]) - own0, busy_seconds()
    if busy0 is None or busy is None or wall < MIN_BUSY_WALL_S:
        return result, None
    others = (busy - busy0) - own
    return result, min(1.0, max(0.0, others / (wall * (os.cpu_count() or 1))))


def choose(manifest: Manifest, backend: str, precision: str, threads: int | None,
           trial: Callable[[list[tuple[str, str, int | None]]], dict[tuple[str, str, int | None], float]]) -> Choice:
    """Resolve "auto" in ``backend``/``precision`` and the thread count (1 or ``threads``).
    ``trial(options)``: (backend, precision, threads) options -> search-step ms of each."""
    pairs = candidates(manifest, backend, precision)
    counts = sorted({1, threads}) if threads and threads > 1 else [threads]
    options = [(b, p, t) for b, p in pairs for t in counts]
    if not options:
        from .errors import BackendError

        raise BackendError(f"{manifest.path}: no graphs for backend={backend!r}, precision={precision!r} "
                           f"(verified precisions: {verified_precisions(manifest)}, backends: "
                           f"{[b for b, r in available_backends().items() if r is None]})")
    why_not_int8 = int8_refusal(manifest) if precision == AUTO else None
    refusal = f"; {why_not_int8}" if why_not_int8 else ""
    if len(options) == 1:
        b, p, t = options[0]
        return Choice(b, p, f"{b} {p}: the only verified option here{refusal}", {}, t)
    key = cache_key(manifest, threads, options)
    cached = _read_cache().get(key)
    # an entry written before trials were counted has no "settled": trust it only if it chose the most
    # threads allowed (a 1-thread choice of that time may come from a disturbed trial: measure again)
    if cached and cached.get("settled", cached.get("threads") == max(counts)):
        fields = {k: v for k, v in cached.items() if k not in ("trials", "settled")}
        return Choice(**{**fields, "reason": fields["reason"] + " (cached)"})
    # A trial while another process (or a slow core of a VM) holds a core makes the multi-threaded
    # options look slow, and other processes slow the backends unequally; a choice of fewer threads than
    # allowed, or one made while others used more than BUSY_SHARE of the CPUs, is therefore unsettled:
    # the next loads measure again, each option keeping its best time over the trials, until SETTLE_TRIALS.
    measured, busy = others_share_during(lambda: trial(options))
    timings = {_label(o): ms for o, ms in measured.items()}
    trials = 1
    if cached:
        trials += int(cached.get("trials", 1))
        timings = {k: min(v, cached["trial_ms"].get(k, v)) for k, v in timings.items()}
    b, p, t = min(options, key=lambda o: timings[_label(o)])
    what = f"{b} {p}" + (f" at {t} thread{'s' if t > 1 else ''} of {threads} allowed" if threads and threads > 1 else "")
    best_of = f" (best of {trials} trials)" if trials > 1 else ""
    disturbed = busy is not None and busy > BUSY_SHARE
    settled = trials >= SETTLE_TRIALS or (t == max(counts) and not disturbed)
    again = (f"; other processes used {100 * busy:.0f} % of the CPUs during it: measured again on the next load"
             if disturbed and not settled else "")
    choice = Choice(b, p, f"{what}: fastest in a timed trial{best_of}{again}{refusal}", timings, t)
    _write_cache(key, choice, trials, settled=settled)
    return choice
