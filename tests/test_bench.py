"""mixformerv2-bench in --quick mode on a tiny model and a tiny synthetic source: structure and sanity of
what it writes (every requested row present or marked unavailable, positive times), bad input.
No assertion on absolute speed."""
from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from mixformerv2_benchmarks import fps, report, runner
from mixformerv2_benchmarks.machine import usable_cores
from mixformerv2_benchmarks.runner import (BenchError, FrameLoop, load_source, measure, measure_paired, multi_boxes,
                                           paired_stats, stats)

PEERS_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "peers"
W, H, N = 160, 120, 6
TIMING = ["--warmup", "1", "--min-time", "0", "--min-iters", "3"]


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A tiny custom MixFormerV2 export (speed does not depend on weights; small keeps the test fast)."""
    torch = pytest.importorskip("torch")
    from mixformerv2_export.exporter import export_model
    from mixformerv2_export.network import MixFormerV2, ModelConfig

    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("tiny_export")
    cfg = ModelConfig(embed_dim=64, depth=2, num_heads=1, mlp_ratio=1.0, template_size=32, search_size=64, bins=16)
    export_model(MixFormerV2(cfg).eval(), "custom", out, "tiny")
    return out


@pytest.fixture(scope="session")
def tiny_source(tmp_path_factory) -> Path:
    """A sequence folder: N frames 160x120 (a bright square moving on noise) + groundtruth.txt."""
    root = tmp_path_factory.mktemp("seq") / "square"
    (root / "img").mkdir(parents=True)
    rng = np.random.default_rng(0)
    lines = []
    for i in range(N):
        img = rng.integers(0, 80, (H, W, 3), dtype=np.uint8)
        x, y = 40 + 4 * i, 30 + 2 * i
        img[y:y + 30, x:x + 24] = (40, 200, 240)
        cv2.imwrite(str(root / "img" / f"{i + 1:05d}.jpg"), img)
        lines.append(f"{x},{y},24,30")
    (root / "groundtruth.txt").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture(scope="session")
def peers_dir(tmp_path_factory) -> Path:
    """VitTrack from ../shared/data/peers when present; NanoTrack deliberately missing."""
    d = tmp_path_factory.mktemp("peers")
    vit = PEERS_DIR / "vittrack" / "vitTracker.onnx"
    if vit.is_file():
        (d / "vittrack").mkdir()
        os.symlink(vit, d / "vittrack" / "vitTracker.onnx")
    return d


def _check_stats(s: dict, min_iters: int) -> None:
    assert s["iters"] >= min_iters
    assert 0 < s["median_ms"] <= s["p90_ms"]
    assert s["mean_ms"] > 0 and s["fps"] > 0
    assert abs(s["fps"] - 1000.0 / s["mean_ms"]) < 1e-6 * s["fps"]


# ------------------------------------------------------------------------------------- the full run
@pytest.fixture(scope="module")
def quick_run(tiny_model, tiny_source, peers_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench_out")
    readme = out / "README.md"
    readme.write_text("# Project\n\nintro\n")
    argv = ["--quick", "--source", str(tiny_source), "--model", f"tiny={tiny_model}", "--threads", "1",
            "--targets", "1,2", "--peers", "kcf,mil,nanotrack,vittrack", "--peers-dir", str(peers_dir),
            "--out", str(out), "--readme", str(readme), "--no-progress", *TIMING]
    rc = fps.main(argv)
    return rc, out, readme


def test_quick_run_writes_every_row(quick_run, capsys):
    rc, out, _ = quick_run
    assert rc == 0
    data = json.loads((out / "fps.json").read_text())
    assert data["schema"] == fps.SCHEMA and data["quick"] is True
    m = data["machine"]
    assert m["logical_cores"] >= 1 and m["usable_cores"] >= 1 and isinstance(m["flags"], list) and m["os"]
    assert {"numpy", "onnxruntime", "openvino", "cv2"} <= set(data["versions"])
    assert data["source"]["frames_used"] == N and data["source"]["frame_size"] == [W, H]
    assert data["settings"]["rss_method"].startswith("peak RSS")

    rows = {r["key"]: r for r in data["rows"]}
    expected = set()
    for b in fps.BACKENDS:
        for p in fps.PRECISIONS:
            expected.add(f"single|tiny|{b}|{p}|t1|n1")
    for b in ("openvino", "onnxruntime"):
        for p in fps.PRECISIONS:
            for n in (1, 2):
                expected.add(f"multi|tiny|{b}|{p}|t1|n{n}")
    for peer in ("kcf", "mil", "nanotrack", "vittrack"):
        expected.add(f"peer|{peer}|opencv|-|t1|n1")
    assert set(rows) == expected
    assert len(rows) == len(data["rows"])

    for key, r in rows.items():
        assert r["status"] in ("ok", "unavailable"), (key, r.get("reason"))
        if r["status"] == "unavailable":
            assert r["reason"].strip()
            continue
        _check_stats(r["end_to_end"], 3)
        assert r["load_s"] > 0 and r["first_s"] > 0
        assert r["rss_mb"] > 0 and r["rss_delta_mb"] is not None
        if r["kind"] != "single":
            assert "paired" not in r
        if r["kind"] == "peer":
            assert r["model_only"] is None
        else:
            _check_stats(r["model_only"], 3)
        if r["kind"] == "single":
            q = r["paired"]  # the update()-over-network phase, timed in alternating blocks
            assert q["iters"] >= 3 and q["iters"] % runner.PAIRED_BLOCK == 0
            assert q["update_p90_ms"] >= q["update_median_ms"] > 0 and q["network_median_ms"] > 0
            assert q["overhead_pct"] == pytest.approx(100 * (q["update_median_ms"] / q["network_median_ms"] - 1))
    # fp32 always runs; the tiny export has no int8 graphs, so int8 rows say so
    for key, r in rows.items():
        if "|fp32|" in key:
            assert r["status"] == "ok", key
        if "|int8|" in key:
            assert r["status"] == "unavailable" and "not exported" in r["reason"], key
    assert rows["peer|kcf|opencv|-|t1|n1"]["status"] == "ok"
    assert rows["peer|mil|opencv|-|t1|n1"]["status"] == "ok"
    nano = rows["peer|nanotrack|opencv|-|t1|n1"]
    assert nano["status"] == "unavailable" and "nanotrack" in nano["reason"] and "missing" in nano["reason"]
    if (PEERS_DIR / "vittrack" / "vitTracker.onnx").is_file():
        assert rows["peer|vittrack|opencv|-|t1|n1"]["status"] == "ok"

    # machine limit measured in the same run; every model row says how close it gets
    assert float(data["gemm_gflops"]["1"]) > 0
    macs = data["macs"]["tiny"]
    assert macs["search"] > 0 and macs["full"] > macs["search"]
    for key, r in rows.items():
        if r["kind"] != "peer" and r["status"] == "ok":
            role = "full" if r["backend"] == "baseline" else "search"
            want = 2 * macs[role] * r["targets"] / (r["model_only"]["median_ms"] / 1e3) / 1e9
            assert r["gflops"] == pytest.approx(want) and r["gemm_share"] > 0, key
    ratios = {(q["backend"], q["precision"]): q for q in data["ratios"]}
    # one speed-up row per cached (backend, precision) that ran: fp32 on both, bf16 where the CPU has it
    ran = {(r["backend"], r["precision"]) for r in rows.values()
           if r["kind"] == "single" and r["backend"] != "baseline" and r["status"] == "ok"}
    assert {("openvino", "fp32"), ("onnxruntime", "fp32")} <= ran
    assert set(ratios) == ran
    bf16 = rows["single|tiny|openvino|bf16|t1|n1"]
    assert bf16["status"] == "ok" if _cpu_has_bf16() else "this CPU has no AVX512-BF16/AMX" in bf16["reason"]
    assert "bf16 runs on OpenVINO only" in rows["single|tiny|onnxruntime|bf16|t1|n1"]["reason"]
    for q in ratios.values():
        assert q["end_to_end_ratio"] > 0 and q["model_only_ratio"] > 0 and q["threads"] == 1


def _cpu_has_bf16() -> bool:
    import openvino as ov

    return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def test_quick_run_markdown_png_readme(quick_run):
    _, out, readme = quick_run
    md = (out / "fps.md").read_text()
    assert "### Single target" in md and "### Batched multi-target" in md
    assert "### Speed-up over the public-port baseline" in md
    assert "KCF (cv2.TrackerKCF)" in md and "MIL (cv2.TrackerMIL)" in md
    assert "not available: NanoTrack v2 (cv2.TrackerNano)" in md
    assert "not exported" in md
    table = [ln for ln in md.splitlines() if ln.startswith("| tiny |")]
    # 3 fp32 single rows (openvino, onnxruntime, baseline) + 2x2 batched fp32 rows + 2 speed-up rows,
    # and where the CPU has bf16: 1 single + 2 batched OpenVINO bf16 rows + 1 speed-up row
    assert len(table) == 3 + 4 + 2 + (4 if _cpu_has_bf16() else 0)
    png = (out / "fps.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 1000
    text = readme.read_text()
    assert text.startswith("# Project\n\nintro\n")
    assert text.count(report.README_START) == 1 and "### Single target" in text


def test_in_process_oversubscribed_threads(tiny_model, tiny_source, tmp_path, capsys):
    too_many = usable_cores() + 1
    rc = fps.main(["--quick", "--source", str(tiny_source), "--model", str(tiny_model), "--backend", "onnxruntime",
                   "--precision", "fp32", "--threads", str(too_many), "--targets", "0", "--peers", "kcf",
                   "--no-isolate", "--no-plot", "--no-progress", "--out", str(tmp_path), *TIMING])
    captured = capsys.readouterr()
    assert rc == 0
    assert f"threads={too_many} is above" in captured.err
    data = json.loads((tmp_path / "fps.json").read_text())
    assert [r["kind"] for r in data["rows"]] == ["single", "peer"]
    assert all(r["oversubscribed"] and r["status"] == "ok" for r in data["rows"])
    assert data["settings"]["rss_method"].startswith("RSS after the row")
    assert f"| {too_many}* |" in captured.out
    assert data["rows"][0]["label"] == "tiny/custom"  # label from the manifest: name/variant
    assert not (tmp_path / "fps.png").exists()


# ----------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("args, message", [
    (["--backend", "tensorrt"], "valid: openvino, onnxruntime, baseline"),
    (["--precision", "fp16"], "valid: fp32, int8"),
    (["--peers", "kcf,goturn"], "valid: nanotrack, vittrack, csrt, kcf, mil"),
    (["--multi-backend", "cuda"], "valid: openvino, onnxruntime, baseline"),
    (["--threads", "0"], "positive integers"),
])
def test_unknown_names_list_choices(args, message, tiny_source, tiny_model, tmp_path, capsys):
    rc = fps.main(["--source", str(tiny_source), "--model", str(tiny_model), "--out", str(tmp_path), *args])
    assert rc == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "fps.json").exists()


def test_unknown_model(tiny_source, tmp_path, capsys):
    assert fps.main(["--source", str(tiny_source), "--model", "no_such_model", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "no_such_model" in err and "registered name" in err


def test_empty_and_unreadable_sources(tmp_path, tiny_model, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    broken = tmp_path / "broken" / "img"
    broken.mkdir(parents=True)
    for i in range(3):
        (broken / f"{i + 1:05d}.jpg").write_bytes(b"not a jpeg")
    (broken.parent / "groundtruth.txt").write_text("1,1,5,5\n" * 3)
    video = tmp_path / "bad.mp4"
    video.write_bytes(b"\x00" * 100)
    for src, msg in ((empty, "no image files"), (broken.parent, "unreadable frame"), (video, "bad.mp4"),
                     (tmp_path / "missing", "not found")):
        assert fps.main(["--source", str(src), "--model", str(tiny_model), "--out", str(tmp_path / "o")]) == 2
        assert msg in capsys.readouterr().err


def test_source_without_box(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(3):
        cv2.imwrite(str(folder / f"{i}.png"), np.zeros((20, 30, 3), np.uint8))
    with pytest.raises(BenchError, match="--box"):
        load_source(folder)
    src = load_source(folder, box="1,2,5,6")
    assert src.frames.shape == (3, 20, 30, 3) and src.box == (1.0, 2.0, 5.0, 6.0)


# ------------------------------------------------------------------------------------------ helpers
def test_multi_boxes_inside_frame():
    for n in (1, 2, 4, 8, 13):
        boxes = multi_boxes((150, 100, 20, 30), n, W, H)
        assert len(boxes) == n and boxes[0] == (140.0, 90.0, 20.0, 30.0)  # clipped into the 160x120 frame
        for x, y, w, h in boxes:
            assert 0 <= x and x + w <= W and 0 <= y and y + h <= H and (w, h) == (20, 30)


def test_measure_and_stats():
    calls = []
    ms = measure(lambda: calls.append(1), warmup=2, min_time=0.0, min_iters=5)
    assert len(calls) == 7 and ms.size == 5 and (ms >= 0).all()
    calls.clear()
    measure(lambda: calls.append(1), warmup=100, min_time=0.0, min_iters=2, warmup_time=0.0)
    assert len(calls) == 1 + 2  # the warm-up stops after one call once warmup_time has passed
    s = stats(np.array([1.0, 2.0, 3.0, 10.0]))
    assert s["median_ms"] == 2.5 and s["mean_ms"] == 4.0 and s["fps"] == 250.0 and s["p90_ms"] > 3


def test_paired_phase_alternates_blocks_with_one_untimed_call_each():
    calls = []
    net, upd = measure_paired(lambda: calls.append("n"), lambda: calls.append("u"), lambda: calls.append("p"),
                              min_time=0.0, min_iters=15, block=4)
    # 4 blocks of each until 15 updates are timed; every block starts with one untimed call, every update
    # is prepared (the next frame) untimed
    assert net.size == upd.size == 16
    assert "".join(calls) == ("n" * 5 + "pu" * 5) * 4
    q = paired_stats(np.array([2.0, 2.0, 3.0]), np.array([2.0, 2.5, 2.5, 4.0]))
    assert q["network_median_ms"] == 2.0 and q["update_median_ms"] == 2.5 and q["overhead_pct"] == 25.0
    assert q["p90_over_median"] == pytest.approx(np.percentile([2.0, 2.5, 2.5, 4.0], 90) / 2.5) and q["iters"] == 4


def test_frame_loop_hands_each_frame_in_one_reused_buffer():
    frames = np.arange(4 * 2 * 3 * 3, dtype=np.uint8).reshape(4, 2, 3, 3)
    inits, seen = [], []
    loop = FrameLoop(frames, lambda f: inits.append(f.copy()), lambda f: seen.append((f, f.copy())))
    measure(loop.step, warmup=0, min_time=0.0, min_iters=5, prepare=loop.prepare)
    assert len(inits) == 2 and (inits[0] == frames[0]).all() and loop.reinits == 1
    assert [int(copy[0, 0, 0]) for _, copy in seen] == [int(frames[i, 0, 0, 0]) for i in (1, 2, 3, 1, 2)]
    assert all(f is loop.buffer for f, _ in seen) and not np.shares_memory(loop.buffer, frames)


def test_readme_section_is_replaced(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"# X\n\n{report.README_START}\nold\n{report.README_END}\n\n## After\n")
    report.update_readme(readme, "new table\n")
    text = readme.read_text()
    assert "old" not in text and "new table" in text and text.endswith("## After\n")
    assert text.count(report.README_START) == 1


def test_the_isa_cap_reaches_openvino_and_the_header_says_so():
    """ONEDNN_MAX_CPU_ISA=AVX2 (the AVX2-only approximation) must change the kernels OpenVINO compiles,
    and the bench header must name the cap; read in fresh processes (oneDNN reads it once)."""
    import subprocess
    import sys

    code = ("import json; from mixformerv2_benchmarks.machine import machine_info, describe_isa; "
            "m = machine_info(); print(json.dumps([m['openvino_kernels'], describe_isa(m)]))")
    env = {k: v for k, v in os.environ.items() if k not in ("ONEDNN_MAX_CPU_ISA", "OPENCV_CPU_DISABLE")}
    free, free_line = json.loads(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                                                text=True, check=True).stdout)
    capped, capped_line = json.loads(subprocess.run([sys.executable, "-c", code],
                                                    env={**env, "ONEDNN_MAX_CPU_ISA": "AVX2"},
                                                    capture_output=True, text=True, check=True).stdout)
    assert capped.get("avx2", 0) > 0 and "amx" not in capped
    assert capped.get("avx512", 0) < free.get("avx512", 0) or free.get("avx512", 0) == 0
    assert capped_line.startswith("caps: ONEDNN_MAX_CPU_ISA=AVX2") and free_line.startswith("no cap")


def test_the_opencv_cap_reaches_opencv_and_the_header_says_so():
    """OPENCV_CPU_DISABLE switches off OpenCV's dispatched AVX-512 kernels (NanoTrack/VitTrack run on
    OpenCV's DNN); the header names the switch and shows OpenCV's own dispatch line."""
    import subprocess
    import sys

    code = ("import json, cv2; from mixformerv2_benchmarks.machine import machine_info, describe_isa; "
            "m = machine_info(); print(json.dumps([cv2.getCPUFeaturesLine(), describe_isa(m)]))")
    env = {k: v for k, v in os.environ.items() if k not in ("ONEDNN_MAX_CPU_ISA", "OPENCV_CPU_DISABLE")}
    free, free_line = json.loads(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                                                text=True, check=True).stdout)
    capped, capped_line = json.loads(subprocess.run(
        [sys.executable, "-c", code], env={**env, "OPENCV_CPU_DISABLE": "AVX512-SKX"},
        capture_output=True, text=True, check=True).stdout)
    assert capped_line.startswith("caps: OPENCV_CPU_DISABLE=AVX512-SKX") and "OpenCV dispatch" in capped_line
    assert "OpenCV dispatch" not in free_line
    if "*AVX512-SKX" in free.split():  # a CPU (and OpenCV build) that dispatches AVX-512: now switched off
        assert "*AVX512-SKX?" in capped.split() and capped.split() != free.split()


# ------------------------------------------------------------------------------------------- rounds
def test_round_order_alternates_direction():
    assert fps.round_order(3, 4) == [[0, 1, 2], [2, 1, 0], [0, 1, 2], [2, 1, 0]]
    assert fps.round_order(2, 1) == [[0, 1]]


def _round(mean_ms: float, status: str = "ok") -> dict:
    return {"status": status, "end_to_end": {"mean_ms": mean_ms, "fps": 1000 / mean_ms},
            "model_only": {"fps": 2000 / mean_ms}}


def test_median_round_keeps_the_middle_round_and_lists_all():
    chosen = fps.median_round([_round(5.0), _round(4.0), _round(8.0)])
    assert chosen["end_to_end"]["mean_ms"] == 5.0
    assert [r["end_to_end_fps"] for r in chosen["rounds"]] == [200.0, 250.0, 125.0]  # run order
    assert fps.median_round([_round(5.0), _round(4.0)])["end_to_end"]["mean_ms"] == 4.0  # lower middle
    failed = fps.median_round([_round(5.0), {"status": "failed", "reason": "boom"}])
    assert failed["status"] == "failed" and "rounds" not in failed


def test_rounds_run_every_row_that_many_times(tiny_model, tiny_source, tmp_path, capsys):
    rc = fps.main(["--quick", "--source", str(tiny_source), "--model", str(tiny_model), "--backend", "onnxruntime",
                   "--precision", "fp32,int8", "--threads", "1", "--targets", "0", "--peers", "kcf", "--rounds", "3",
                   "--no-isolate", "--no-plot", "--no-progress", "--out", str(tmp_path), *TIMING])
    out = capsys.readouterr().out
    assert rc == 0
    data = json.loads((tmp_path / "fps.json").read_text())
    assert data["settings"]["rounds"] == 3
    ok = [r for r in data["rows"] if r["status"] == "ok"]
    assert [r["kind"] for r in ok] == ["single", "peer"]
    for r in ok:
        per_round = sorted(x["end_to_end_fps"] for x in r["rounds"])
        assert len(per_round) == 3 and r["end_to_end"]["fps"] == per_round[1]  # the median round is reported
    unavailable = [r for r in data["rows"] if r["status"] == "unavailable"]
    assert unavailable and all("rounds" not in r for r in unavailable)  # int8 not exported: recorded once
    assert "### Rounds (end-to-end FPS of each round, in run order)" in out
    assert "- Rounds: the whole matrix ran 3 times" in out


def test_rounds_must_be_positive(tiny_source, tiny_model, tmp_path, capsys):
    assert fps.main(["--source", str(tiny_source), "--model", str(tiny_model), "--rounds", "0",
                     "--out", str(tmp_path)]) == 2
    assert "--rounds must be >= 1, got 0" in capsys.readouterr().err


def test_ab_update_alternates_blocks_and_flips_the_order():
    """tools/ab_update.lockstep: both trackers see every frame in order, in alternating blocks whose first
    tracker changes every block and every rep; every update after the untimed warm-up is timed."""
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
    from ab_update import lockstep

    calls = []

    class Fake:
        def __init__(self, name):
            self.name = name

        def init(self, frame, box):
            calls.append((self.name, "init", int(frame[0, 0, 0])))

        def update(self, frame):
            calls.append((self.name, "update", int(frame[0, 0, 0])))

    frames = [np.full((2, 2, 3), i, np.uint8) for i in range(6)]  # frame 0 + 5 updates: blocks of 2, 2, 1
    spent = lockstep({"a": Fake("a"), "b": Fake("b")}, frames, (0, 0, 1, 1), reps=2, block=2)
    assert len(spent["a"]) == len(spent["b"]) == 10
    warmup = [("a", "init", 0)] + [("a", "update", f) for f in range(1, 6)] + \
             [("b", "init", 0)] + [("b", "update", f) for f in range(1, 6)]  # WARMUP_UPDATES (10) > 5 frames
    assert calls[:len(warmup)] == warmup
    del calls[:len(warmup)]
    updates = [(n, f) for n, kind, f in calls if kind == "update"]
    rep1 = [("a", 1), ("a", 2), ("b", 1), ("b", 2), ("b", 3), ("b", 4), ("a", 3), ("a", 4), ("a", 5), ("b", 5)]
    rep2 = [("b", 1), ("b", 2), ("a", 1), ("a", 2), ("a", 3), ("a", 4), ("b", 3), ("b", 4), ("b", 5), ("a", 5)]
    assert updates == rep1 + rep2
    assert [c for c in calls if c[1] == "init"] == [("a", "init", 0), ("b", "init", 0)] * 2
