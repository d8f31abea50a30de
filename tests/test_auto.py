"""backend="auto" / precision="auto": candidates, the timed trial, its cache; `mixformerv2 verify`."""
from __future__ import annotations

import json
import time
import shutil

import pytest

from mixformerv2_cpu import Tracker, auto, cli
from mixformerv2_cpu.manifest import Manifest


def _manifest(graphs: dict, int8_report: dict | None = None) -> Manifest:
    data = {"graphs": graphs, "files": {}}
    if int8_report is not None:
        data["int8_report"] = int8_report
    return Manifest(auto.Path("/nonexistent/x.manifest.json"), data)


FP32 = {"onnx": {"template": "x.template.onnx", "search": "x.search.onnx"}}
INT8 = {"openvino": {"template": "x.int8.template.xml", "search": "x.int8.search.xml"}}


def test_only_precisions_with_a_passed_accuracy_record_are_candidates():
    plain = _manifest({"fp32": FP32})
    assert auto.verified_precisions(plain) == ["fp32"]
    assert set(auto.candidates(plain, "auto", "auto")) == {("openvino", "fp32"), ("onnxruntime", "fp32")}
    unmeasured = _manifest({"fp32": FP32, "int8": INT8})
    assert auto.verified_precisions(unmeasured) == ["fp32"]  # int8 files, but no accuracy record
    failed = _manifest({"fp32": FP32, "int8": INT8}, {"accepted": False})
    assert auto.verified_precisions(failed) == ["fp32"]
    here = auto.int8_kernels()
    passed = _manifest({"fp32": FP32, "int8": INT8}, {"accepted": True, "int8_kernels": here})
    assert auto.verified_precisions(passed) == ["fp32", "int8"]
    # measured on another class of integer kernels (VNNI's exact int32 sums vs AVX2's saturating
    # int16 pairs), or with no record of it: not verified here
    other = "avx2" if here == "vnni" else "vnni"
    elsewhere = _manifest({"fp32": FP32, "int8": INT8}, {"accepted": True, "int8_kernels": other})
    assert auto.verified_precisions(elsewhere) == ["fp32"]
    assert f"measured on {other} integer kernels, this CPU runs {here}" in auto.int8_refusal(elsewhere)
    assert auto.verified_precisions(_manifest({"fp32": FP32, "int8": INT8}, {"accepted": True})) == ["fp32"]
    # an int8 flavour runs only on the backend it was measured on
    both = _manifest({"fp32": FP32, "int8": {**INT8, "onnx": {"template": "x.int8.template.onnx",
                                                             "search": "x.int8.search.onnx"}}},
                     {"accepted": True, "int8_kernels": here})
    assert set(auto.candidates(both, "auto", "int8")) == {("openvino", "int8"), ("onnxruntime", "int8")}
    ort_only = _manifest({"fp32": FP32, "int8": {"onnx": both.data["graphs"]["int8"]["onnx"]}},
                         {"accepted": True, "int8_kernels": here})
    assert auto.candidates(ort_only, "openvino", "int8") == []  # OpenVINO never runs ORT's int8 ONNX
    # int8 exists as OpenVINO IR only: ONNX Runtime cannot run it
    assert ("onnxruntime", "int8") not in auto.candidates(passed, "auto", "auto")
    assert ("openvino", "int8") in auto.candidates(passed, "auto", "auto")
    assert auto.candidates(passed, "onnxruntime", "auto") == [("onnxruntime", "fp32")]


def test_the_fastest_candidate_wins_and_the_choice_is_cached(export_small, tmp_path, monkeypatch):
    monkeypatch.setenv(auto.ENV_CACHE, str(tmp_path / "cache"))
    calls = []

    def fake_trial(self, options):
        calls.extend(options)
        return {o: {"openvino": 5.0, "onnxruntime": 2.0}[o[0]] for o in options}

    monkeypatch.setattr("mixformerv2_cpu.engine.Engine._trial", fake_trial)
    t = Tracker(export_small, threads=1)
    assert (t.engine.backend, t.engine.precision, t.engine.threads) == ("onnxruntime", "fp32", 1)
    assert sorted(calls) == [("onnxruntime", "fp32", 1), ("openvino", "fp32", 1)]
    assert "onnxruntime/fp32/1t 2.00 ms" in t.engine.description and "fastest" in t.engine.description
    calls.clear()
    again = Tracker(export_small, threads=1)
    assert calls == [] and again.engine.backend == "onnxruntime" and "(cached)" in again.engine.description
    Tracker(export_small, threads=2)  # another thread count is another measurement: 1 and 2 on each backend
    assert sorted(calls) == [(b, "fp32", n) for b in ("onnxruntime", "openvino") for n in (1, 2)]
    entries = json.loads((tmp_path / "cache" / "auto.json").read_text())
    assert len(entries) == 2


def test_more_threads_are_never_slower_than_one(export_small, tmp_path, monkeypatch):
    """threads=N is the most an engine may use: when 1 thread is faster (thread pool overhead on a small
    graph), 1 is used, and the description says so."""
    monkeypatch.setenv(auto.ENV_CACHE, str(tmp_path))
    monkeypatch.setattr("mixformerv2_cpu.engine.Engine._trial",
                        lambda self, opts: {o: {1: 2.88, 2: 3.06}[o[2]] for o in opts})  # v1 on ORT, measured
    t = Tracker(export_small, backend="onnxruntime", precision="fp32", threads=2)
    assert t.engine.threads == 1 and t.engine.threads_allowed == 2
    assert "onnxruntime fp32, 1 thread (2 allowed)" in t.engine.description
    monkeypatch.setenv(auto.ENV_CACHE, str(tmp_path / "other"))
    monkeypatch.setattr("mixformerv2_cpu.engine.Engine._trial", lambda self, opts: {o: {1: 28.9, 2: 17.0}[o[2]] for o in opts})
    assert Tracker(export_small, backend="onnxruntime", precision="fp32", threads=2).engine.threads == 2


def test_a_fixed_backend_and_precision_skip_the_trial(export_small, monkeypatch):
    monkeypatch.setattr("mixformerv2_cpu.engine.Engine._trial", lambda *a: pytest.fail("no trial expected"))
    t = Tracker(export_small, backend="openvino", precision="fp32", threads=1)
    assert t.engine.choice is None and t.engine.description.startswith("openvino fp32")
    t = Tracker(export_small, backend="onnxruntime")  # precision auto: fp32 is the only verified one
    assert t.engine.precision == "fp32" and "only verified option" in t.engine.description


def test_real_trial_measures_both_backends(export_small, tmp_path, monkeypatch):
    monkeypatch.setenv(auto.ENV_CACHE, str(tmp_path))
    t = Tracker(export_small, threads=1)
    assert set(t.engine.choice.trial_ms) == {"openvino/fp32/1t", "onnxruntime/fp32/1t"}
    assert all(v > 0 for v in t.engine.choice.trial_ms.values())
    assert t.engine.choice.trial_ms[f"{t.engine.backend}/fp32/1t"] == min(t.engine.choice.trial_ms.values())


def test_the_engine_runs_the_graphs_its_trial_loaded(export_small, tmp_path, monkeypatch):
    """The trial loads (and OpenVINO compiles) every option's graphs; the chosen option's are kept,
    not loaded a second time."""
    import mixformerv2_cpu.engine as engine_module

    monkeypatch.setenv(auto.ENV_CACHE, str(tmp_path))
    loaded = []

    def counting(*args, **kwargs):
        loaded.append(real(*args, **kwargs))
        return loaded[-1]

    real = engine_module.load_graph
    monkeypatch.setattr(engine_module, "load_graph", counting)
    t = Tracker(export_small, threads=1)
    assert len(t.engine.choice.trial_ms) == 2 and len(loaded) == 4  # two options x (template, search), once each
    assert all(any(g is x for x in loaded) for g in t.engine.graphs.values())
    assert t.engine._tried == {}  # the other option's graphs are released
    loaded.clear()
    again = Tracker(export_small, threads=1)  # cached choice: no trial, one load (a trial that other
    # processes disturbed is not settled and runs again: then once per option, as above)
    assert len(loaded) == (2 if "(cached)" in again.engine.choice.reason else 4)


def test_verify_command(export_small, tmp_path, capsys):
    assert cli.main(["verify", str(export_small)]) == 0
    out = capsys.readouterr().out
    assert "4 files match their size and sha256" in out  # 3 graphs + the shared weights
    assert out.count("loads on openvino") == 3 and out.count("loads on onnxruntime") == 3
    copy = tmp_path / "exp"
    shutil.copytree(export_small, copy)
    victim = copy / "mixformerv2_small.full.onnx"
    data = bytearray(victim.read_bytes())
    data[-10] ^= 0xFF
    victim.write_bytes(bytes(data))
    assert cli.main(["verify", str(copy)]) == 2
    assert "mixformerv2_small.full.onnx does not match the sha256" in capsys.readouterr().err


def test_interleaved_timing_is_not_fooled_by_a_burst_of_load(monkeypatch):
    """A burst of outside load during one round slows whichever candidate runs then; the lowest round
    median still ranks the candidates by their own speed. Simulated clock: "a" costs 2 ms, "b" 3 ms,
    and every call of the first round costs 10 ms more (the burst)."""
    clock = {"t": 0.0, "calls": 0}
    monkeypatch.setattr(auto, "_frame_work", lambda ms: None)
    monkeypatch.setattr(auto.time, "perf_counter", lambda: clock["t"])
    per_round = 2 * (auto.CALLS_PER_ROUND + 1)  # both candidates, one untimed call each

    def call(cost_ms):
        def run():
            clock["calls"] += 1
            timed = clock["calls"] - 2 * auto.WARMUP_CALLS
            burst = 10.0 if 0 < timed <= per_round else 0.0
            clock["t"] += (cost_ms + burst) / 1e3
        return run

    got = auto.time_interleaved({"a": call(2.0), "b": call(3.0)})
    assert got == pytest.approx({"a": 2.0, "b": 3.0})


def test_a_fewer_threads_choice_is_measured_again_until_it_settles(export_small, tmp_path, monkeypatch):
    """A trial disturbed by a busy core picks 1 thread; later loads measure again (best time per option
    over the trials) until 2 threads win or SETTLE_TRIALS trials agree."""
    monkeypatch.setenv(auto.ENV_CACHE, str(tmp_path))
    runs = iter([{1: 3.0, 2: 4.0}, {1: 3.1, 2: 1.6}])  # first trial disturbed, second one not
    trials = []

    def fake_trial(self, opts):
        times = next(runs)
        trials.append(times)
        return {o: times[o[2]] for o in opts}

    monkeypatch.setattr("mixformerv2_cpu.engine.Engine._trial", fake_trial)
    kw = dict(backend="onnxruntime", precision="fp32", threads=2)
    assert Tracker(export_small, **kw).engine.threads == 1
    second = Tracker(export_small, **kw)
    assert second.engine.threads == 2 and "best of 2 trials" in second.engine.description
    assert second.engine.choice.trial_ms == {"onnxruntime/fp32/1t": 3.0, "onnxruntime/fp32/2t": 1.6}
    third = Tracker(export_small, **kw)  # 2 threads won: settled, no further trial
    assert len(trials) == 2 and third.engine.threads == 2 and "(cached)" in third.engine.description
    # 1 thread that keeps winning settles after SETTLE_TRIALS trials
    monkeypatch.setenv(auto.ENV_CACHE, str(tmp_path / "other"))
    trials.clear()
    runs = iter([{1: 2.9, 2: 3.1}] * auto.SETTLE_TRIALS)
    for _ in range(auto.SETTLE_TRIALS + 2):
        assert Tracker(export_small, **kw).engine.threads == 1
    assert len(trials) == auto.SETTLE_TRIALS


def test_a_cached_fewer_threads_choice_without_trial_count_is_measured_again(export_small, tmp_path, monkeypatch):
    """Cache entries written before trials were counted (no "settled" field): a 1-thread choice is
    measured again (seen: an old disturbed trial kept OpenVINO at 1 thread, 2.3 ms instead of 1.4),
    a choice of the most threads allowed is kept."""
    monkeypatch.setenv(auto.ENV_CACHE, str(tmp_path))
    trials = []

    def fake_trial(self, opts):
        trials.append(opts)
        return {o: {1: 2.3, 2: 1.4}[o[2]] for o in opts}

    monkeypatch.setattr("mixformerv2_cpu.engine.Engine._trial", fake_trial)
    kw = dict(backend="openvino", precision="fp32", threads=2)
    assert Tracker(export_small, **kw).engine.threads == 2
    path = tmp_path / "auto.json"
    entries = json.loads(path.read_text())
    (key, entry), = entries.items()
    legacy = {k: v for k, v in entry.items() if k not in ("trials", "settled")}
    path.write_text(json.dumps({key: {**legacy, "threads": 1, "trial_ms": {"openvino/fp32/1t": 2.6,
                                                                            "openvino/fp32/2t": 2.7}}}))
    trials.clear()
    again = Tracker(export_small, **kw)
    assert len(trials) == 1 and again.engine.threads == 2 and "(cached)" not in again.engine.description
    path.write_text(json.dumps({key: legacy}))  # legacy entry that chose 2 threads: kept
    trials.clear()
    kept = Tracker(export_small, **kw)
    assert trials == [] and kept.engine.threads == 2 and "(cached)" in kept.engine.description


def test_int8_validity_is_per_flavour():
    """A flavour records the kernel classes its measurement holds for (``valid_on``): ONNX Runtime's 7-bit
    int8 holds on VNNI and AVX2 alike, OpenVINO's NNCF int8 only where it was measured."""
    here = auto.int8_kernels()
    other = "avx2" if here == "vnni" else "vnni"
    ort = {"onnx": {"template": "x.int8.template.onnx", "search": "x.int8.search.onnx"}}
    graphs = {"fp32": FP32, "int8": {**INT8, **ort}}
    report = {"accepted": True, "int8_kernels": other, "onnx": {"valid_on": [other, here]},
              "openvino": {"valid_on": [other]}}
    m = _manifest(graphs, report)
    assert auto.verified_precisions(m) == ["fp32", "int8"]
    assert auto.int8_refusal(m, "onnxruntime") is None
    assert f"measured on {other} integer kernels, this CPU runs {here}" in auto.int8_refusal(m, "openvino")
    assert set(auto.candidates(m, "auto", "auto")) == {("openvino", "fp32"), ("onnxruntime", "fp32"),
                                                      ("onnxruntime", "int8")}
    assert ("openvino", "int8") in auto.candidates(m, "openvino", "int8")  # asked for by name: allowed
    none_here = _manifest(graphs, {**report, "onnx": {"valid_on": [other]}})
    assert auto.verified_precisions(none_here) == ["fp32"]


def test_busy_seconds_reads_the_first_cpu_line():
    from mixformerv2_cpu.cpu import busy_from_stat

    stat = ("cpu  100 20 30 5000 70 8 2 40 0 0\ncpu0 50 10 15 2500 35 4 1 20 0 0\nintr 123\n")
    # user 100 + nice 20 + system 30 + irq 8 + softirq 2 + steal 40 = 200 ticks (idle and iowait not busy)
    assert busy_from_stat(stat, 100.0) == 2.0
    assert busy_from_stat("intr 1\n", 100.0) is None


def test_the_busy_share_is_not_read_from_a_window_shorter_than_the_clock_ticks():
    """Both counters move in 10 ms ticks: one tick of another process in a 1 ms trial would read as the
    CPUs being full (a CI run cached nothing because of it)."""
    assert auto.others_share_during(lambda: 7) == (7, None)
    result, share = auto.others_share_during(lambda: time.sleep(auto.MIN_BUSY_WALL_S + 0.05) or 8)
    assert result == 8 and (share is None or 0.0 <= share <= 1.0)


def test_a_trial_while_others_keep_the_cpus_busy_is_measured_again(export_small, tmp_path, monkeypatch):
    """Other processes' load slows the backends unequally: a choice made while they used more than
    BUSY_SHARE of the CPUs is measured again on the next load (best time per option over the trials)."""
    monkeypatch.setenv(auto.ENV_CACHE, str(tmp_path))
    runs = iter([({"openvino": 5.0, "onnxruntime": 3.9}, 0.6), ({"openvino": 2.6, "onnxruntime": 3.0}, 0.02)])
    trials = []

    def fake_trial(self, opts):
        return {o: current[o[0]] for o in opts}

    def measured(call):
        nonlocal current
        current, share = next(runs)
        trials.append(share)
        return call(), share

    current = {}
    monkeypatch.setattr(auto, "others_share_during", measured)
    monkeypatch.setattr("mixformerv2_cpu.engine.Engine._trial", fake_trial)
    kw = dict(precision="fp32", threads=1)
    first = Tracker(export_small, **kw)
    assert first.engine.backend == "onnxruntime"
    assert "other processes used 60 % of the CPUs during it: measured again on the next load" in first.engine.description
    second = Tracker(export_small, **kw)
    assert second.engine.backend == "openvino" and "best of 2 trials" in second.engine.description
    assert "other processes" not in second.engine.description
    third = Tracker(export_small, **kw)  # a quiet trial settles it
    assert len(trials) == 2 and third.engine.backend == "openvino" and "(cached)" in third.engine.description


def test_the_trial_waits_until_the_last_candidates_threads_are_quiet(monkeypatch):
    """ONNX Runtime's pool busy-waits ~40 ms after a call; the next candidate is timed only once this
    process stops using the CPU (else it runs on one core fewer and loses the trial)."""
    clock = {"cpu": 0.0, "busy_polls": 3}

    def sleep(s):
        if clock["busy_polls"] > 0:  # a spinning pool thread burns the whole step
            clock["busy_polls"] -= 1
            clock["cpu"] += s
    monkeypatch.setattr(auto.time, "sleep", sleep)
    monkeypatch.setattr(auto.time, "process_time", lambda: clock["cpu"])
    assert auto.wait_for_quiet_threads() == 4  # three busy steps, then one quiet
    assert auto.wait_for_quiet_threads() == 1  # already quiet: one step
    clock["busy_polls"] = 10 ** 6
    assert auto.wait_for_quiet_threads() == auto.QUIET_MAX_POLLS  # bounded
    order = []
    monkeypatch.setattr(auto, "wait_for_quiet_threads", lambda: order.append("wait"))
    monkeypatch.setattr(auto, "_frame_work", lambda ms: None)
    auto.time_interleaved({"a": lambda: order.append("a"), "b": lambda: order.append("b")})
    first_round = order[2 * auto.WARMUP_CALLS:][: 2 * (auto.CALLS_PER_ROUND + 2)]
    assert first_round == (["wait"] + ["a"] * (auto.CALLS_PER_ROUND + 1) + ["wait"] + ["b"] * (auto.CALLS_PER_ROUND + 1))
