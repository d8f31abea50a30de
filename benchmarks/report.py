"""Output of mixformerv2-bench: Markdown table, JSON, PNG bar chart, README section.

Everything works on the result dict built by :func:`.fps.main` (the same dict that is written as JSON).
"""
from __future__ import annotations

import json
import logging
import math
from pathlib import Path

from .machine import describe, describe_isa

log = logging.getLogger(__name__)

README_START = "<!-- mixformerv2-bench:start -->"
README_END = "<!-- mixformerv2-bench:end -->"
BACKEND_SHORT = {"openvino": "OpenVINO", "onnxruntime": "ONNX Runtime", "baseline": "baseline (ORT full graph)",
                 "opencv": "OpenCV"}
CHART_SHORT = {"openvino": "OpenVINO", "onnxruntime": "ORT", "baseline": "baseline"}
PEER_LABELS = {"nanotrack": "NanoTrack v2 (cv2.TrackerNano)", "vittrack": "VitTrack (cv2.TrackerVit)",
               "csrt": "CSRT (cv2.TrackerCSRT)", "kcf": "KCF (cv2.TrackerKCF)", "mil": "MIL (cv2.TrackerMIL)",
               "nanotrack_v3": "NanoTrack v3 (own loop, ORT)", "fear_xs": "FEAR-XS (own loop, ORT)"}


def _f(v: float | None, digits: int = 1) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "—"
    return f"{v:.{digits}f}"


def _ms3(s: dict | None) -> str:
    if not s:
        return "—"
    return f"{_f(s['median_ms'], 2)} / {_f(s['p90_ms'], 2)} / {_f(s['mean_ms'], 2)}"


def _paired(row: dict) -> str:
    """The paired phase's overhead: update() median over the network median, and update()'s p90 / median."""
    q = row.get("paired")
    if not q:
        return "—"
    return f"{q['overhead_pct']:+.1f} % (p90 {q['p90_over_median']:.2f}x)"


def _gflops(row: dict) -> str:
    if row.get("gflops") is None:
        return "—"
    return f"{row['gflops']:.1f} ({100 * row['gemm_share']:.0f} %)"


def _threads(row: dict) -> str:
    text = f"{row['threads']}*" if row.get("oversubscribed") else str(row["threads"])
    used = row.get("threads_used")
    return text + (f" ({used} used)" if used is not None and used != row["threads"] else "")


def _tracker(row: dict) -> str:
    return PEER_LABELS.get(row["label"], row["label"]) if row["kind"] == "peer" else row["label"]


def row_name(row: dict) -> str:
    """Short one-line name of a row (chart labels)."""
    if row["kind"] == "peer":
        return f"{row['label']} t{row['threads']}"
    n = f" x{row['targets']}" if row["kind"] == "multi" else ""
    return f"{row['label']} {CHART_SHORT.get(row['backend'], row['backend'])} {row['precision']} t{row['threads']}{n}"


# -------------------------------------------------------------------------------------------- ratios
def baseline_ratios(rows: list[dict]) -> list[dict]:
    """Our single-target rows vs the public-port baseline (fp32) of the same model and thread count."""
    base: dict[tuple[str, int], dict] = {(r["label"], r["threads"]): r for r in rows
                                         if r["kind"] == "single" and r["backend"] == "baseline"
                                         and r["precision"] == "fp32" and r["status"] == "ok"}
    out = []
    for r in rows:
        b = base.get((r["label"], r["threads"]))
        if r["kind"] != "single" or r["backend"] == "baseline" or r["status"] != "ok" or b is None:
            continue
        mo = (r["model_only"]["fps"] / b["model_only"]["fps"]) if r.get("model_only") and b.get("model_only") else None
        out.append({"model": r["label"], "backend": r["backend"], "precision": r["precision"],
                    "threads": r["threads"], "end_to_end_fps": r["end_to_end"]["fps"],
                    "baseline_end_to_end_fps": b["end_to_end"]["fps"],
                    "end_to_end_ratio": r["end_to_end"]["fps"] / b["end_to_end"]["fps"],
                    "model_only_ratio": mo})
    return out


# ------------------------------------------------------------------------------------------ markdown
def markdown(result: dict) -> str:
    m, s, src = result["machine"], result["settings"], result["source"]
    versions = ", ".join(f"{k} {v}" for k, v in result["versions"].items())
    la = m.get("load_average_start"), m.get("load_average_end")
    lines = [f"## CPU speed ({result['created'][:10]}{', --quick smoke run' if result.get('quick') else ''})", "",
             f"- Machine: {describe(m)}",
             f"- Instruction sets: {describe_isa(m)}",
             f"- Load average (1/5/15 min) at start {la[0]}, at end {la[1]}" if la[0] else "- Load average: n/a",
             f"- Versions: {versions}",
             f"- Source: `{src['name']}`, {src['frames_used']} of {src['frames_total']} frames "
             f"({src['frame_size'][0]}x{src['frame_size'][1]}), decoded once before timing and each copied into one "
             "reused buffer before its update (untimed, as a decoder writes it); init box "
             f"{', '.join(_f(v, 1) for v in src['init_box'])}",
             f"- Per phase: {s['warmup']} warm-up iterations (at most {s.get('warmup_time')} s), then at least "
             f"{s['min_iters']} iterations and "
             f"{s['min_time']} s. Times are ms median / p90 / mean; FPS = 1000 / mean ms. Model-only = one "
             "search step on fixed inputs (for the baseline: the full graph with template, online template and "
             "search); end-to-end = `update()` on the real frames (crop, preprocess, inference, decode, template "
             "update). Load = wall time of constructing the tracker; first use = init + first update (OpenVINO "
             "compiles its graphs here). OpenCV threads = row threads.",
             "- update() over network, paired: a third phase alternating blocks of 10 back-to-back search steps "
             "(fixed inputs) and 10 `update()` calls, so the VM's drift hits both alike; the median `update()` "
             "over the median search step (the crop, normalisation, decoding, template update and the thread "
             "pool's wake-up after the frame's other work), and `update()`'s p90 over its median.",
             f"- RSS: {s['rss_method']}.",
             "- Threads: the most a row may use; an engine tries that many and 1 on first use and keeps the "
             "faster (`(1 used)`), so more threads are never slower than fewer.",
             "- Backends: " + "; ".join(f"`{k}` = {v}" for k, v in s["backends"].items()) if s["backends"] else
             "- Backends: none"]
    if result.get("gemm_gflops"):
        lines.append("- Machine limit, measured in this run: a plain fp32 GEMM (1024x1024 @ 1024x1024, OpenVINO) "
                     "reaches " + ", ".join(f"{v} GFLOP/s at {t} thread{'s' if t != '1' else ''}"
                                            for t, v in result["gemm_gflops"].items())
                     + "; network GFLOP/s = 2 x multiply-accumulates of the graph / model-only median.")
    if s.get("rounds", 1) > 1:
        lines.append(f"- Rounds: the whole matrix ran {s['rounds']} times, interleaved (every other round in reverse "
                     "order); each row shows its median round by end-to-end mean time; every round's FPS is under "
                     "\"Rounds\" below.")
    if any(r.get("oversubscribed") for r in result["rows"]):
        lines.append("- `*` threads above the usable core count (oversubscribed).")
    for w in result.get("warnings", []):
        lines.append(f"- Warning: {w}")

    single = [r for r in result["rows"] if r["kind"] in ("single", "peer") and r["status"] == "ok"]
    if single:
        lines += ["", "### Single target", "",
                  "| Tracker | Backend | Precision | Threads | Model-only ms | Model-only FPS | Network GFLOP/s "
                  "(% of GEMM) | End-to-end ms | End-to-end FPS | update() over network, paired | Load s | First use s "
                  "| Peak RSS MB | ΔRSS MB |",
                  "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in single:
            mo = r.get("model_only")
            lines.append(f"| {_tracker(r)} | {BACKEND_SHORT.get(r['backend'], r['backend'])} | "
                         f"{r['precision'] if r['precision'] != '-' else '—'} | {_threads(r)} | {_ms3(mo)} | "
                         f"{_f(mo['fps']) if mo else '—'} | {_gflops(r)} | {_ms3(r['end_to_end'])} | "
                         f"**{_f(r['end_to_end']['fps'])}** | {_paired(r)} | "
                         f"{_f(r['load_s'], 2)} | {_f(r['first_s'], 2)} | {_f(r.get('rss_mb'), 0)} | "
                         f"{_f(r.get('rss_delta_mb'), 0)} |")
    multi = [r for r in result["rows"] if r["kind"] == "multi" and r["status"] == "ok"]
    if multi:
        lines += ["", "### Batched multi-target (one batched inference per frame for all targets)", "",
                  "| Model | Backend | Precision | Threads | Targets | Model-only ms | End-to-end ms | Frames/s "
                  "| Target updates/s | Load s | Peak RSS MB |",
                  "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in multi:
            e = r["end_to_end"]
            lines.append(f"| {r['label']} | {BACKEND_SHORT[r['backend']]} | {r['precision']} | {_threads(r)} | "
                         f"{r['targets']} | {_f(r['model_only']['median_ms'], 2)} | {_ms3(e)} | {_f(e['fps'])} | "
                         f"**{_f(e['fps'] * r['targets'])}** | {_f(r['load_s'], 2)} | {_f(r.get('rss_mb'), 0)} |")
    with_rounds = [r for r in result["rows"] if r.get("rounds")]
    if with_rounds:
        lines += ["", "### Rounds (end-to-end FPS of each round, in run order)", "",
                  "| Tracker | Backend | Precision | Threads | End-to-end FPS per round | Min - max |",
                  "|---|---|---|---:|---|---:|"]
        for r in with_rounds:
            fps = [x["end_to_end_fps"] for x in r["rounds"]]
            lines.append(f"| {_tracker(r)} | {BACKEND_SHORT.get(r['backend'], r['backend'])} | "
                         f"{r['precision'] if r['precision'] != '-' else '—'} | {_threads(r)} | "
                         f"{', '.join(_f(v) for v in fps)} | {_f(min(fps))} - {_f(max(fps))} |")
    ratios = result.get("ratios") or []
    if ratios:
        lines += ["", "### Speed-up over the public-port baseline (same run, same model and threads)", "",
                  "| Model | Ours | Threads | Ours end-to-end FPS | Baseline end-to-end FPS | End-to-end speed-up "
                  "| Model-only speed-up |", "|---|---|---:|---:|---:|---:|---:|"]
        for q in ratios:
            lines.append(f"| {q['model']} | {BACKEND_SHORT[q['backend']]} {q['precision']} | {q['threads']} | "
                         f"{_f(q['end_to_end_fps'])} | {_f(q['baseline_end_to_end_fps'])} | "
                         f"**{_f(q['end_to_end_ratio'], 2)}x** | "
                         f"{_f(q['model_only_ratio'], 2) + 'x' if q['model_only_ratio'] else '—'} |")
    notes = _unavailable_notes(result["rows"])
    if notes:
        lines += ["", "### Not available / failed", ""] + notes
    return "\n".join(lines) + "\n"


def _unavailable_notes(rows: list[dict]) -> list[str]:
    """One line per (tracker, backend, precision, single/batched, reason); thread and target counts merged."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        if r["status"] == "ok":
            continue
        what = _tracker(r) if r["kind"] == "peer" else \
            f"{r['label']} {BACKEND_SHORT.get(r['backend'], r['backend'])} {r['precision']}" + \
            (" batched" if r["kind"] == "multi" else "")
        groups.setdefault((r["status"], what, r.get("reason", "")), []).append(r)
    out = []
    for (st, what, reason), rs in groups.items():
        where = "threads " + ", ".join(dict.fromkeys(_threads(r) for r in rs))
        if rs[0]["kind"] == "multi":
            where += "; targets " + ", ".join(dict.fromkeys(str(r["targets"]) for r in rs))
        out.append(f"- {'FAILED' if st == 'failed' else 'not available'}: {what} ({where}): {reason}")
    return out


# --------------------------------------------------------------------------------------------- files
def write_outputs(result: dict, out_dir: Path, plot: bool = True) -> list[Path]:
    """fps.md, fps.json and (unless plot=False or matplotlib is missing) fps.png in ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    md, js = out_dir / "fps.md", out_dir / "fps.json"
    md.write_text(markdown(result))
    js.write_text(json.dumps(result, indent=2, default=_json_default) + "\n")
    paths = [md, js]
    if plot:
        png = plot_png(result, out_dir / "fps.png")
        if png:
            paths.append(png)
    return paths


def _json_default(o: object) -> object:
    if hasattr(o, "tolist"):
        return o.tolist()
    return str(o)


def plot_png(result: dict, path: Path) -> Path | None:
    """Bar chart: end-to-end and model-only FPS of every single-target row (log scale), plus the batched
    rows' target updates/s. Returns None when matplotlib is missing or nothing ran."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.warning("matplotlib is not installed: no chart (pip install matplotlib)")
        return None
    single = [r for r in result["rows"] if r["kind"] in ("single", "peer") and r["status"] == "ok"]
    multi = [r for r in result["rows"] if r["kind"] == "multi" and r["status"] == "ok"]
    if not single and not multi:
        return None
    h1 = 0.6 + 0.32 * len(single)
    h2 = 3.2 if multi else 0.0
    fig, axes = plt.subplots(2 if (single and multi) else 1, 1, figsize=(9, h1 + h2 + 0.8),
                             gridspec_kw={"height_ratios": [h1, h2]} if single and multi else None, squeeze=False)
    axes = list(axes[:, 0])
    if single:
        ax = axes.pop(0)
        names = [row_name(r) for r in single]
        y = list(range(len(single)))[::-1]
        colors = ["#1f77b4" if r["kind"] == "single" and r["backend"] != "baseline" else
                  "#7f7f7f" if r["kind"] == "single" else "#ff7f0e" for r in single]
        e2e = [r["end_to_end"]["fps"] for r in single]
        ax.barh([v + 0.18 for v in y], e2e, height=0.36, color=colors, label="end-to-end")
        mo = [r["model_only"]["fps"] if r.get("model_only") else 0 for r in single]
        ax.barh([v - 0.18 for v in y], mo, height=0.36, color=colors, alpha=0.4, label="model-only")
        for v, fps in zip(y, e2e):
            ax.text(fps, v + 0.18, f" {fps:.1f}", va="center", fontsize=7)
        ax.set_yticks(y, names, fontsize=7)
        ax.set_xscale("log")
        ax.set_xlabel("FPS (log scale; dark = end-to-end, light = model-only; blue ours, grey public-port "
                      "baseline, orange peers)", fontsize=8)
        ax.grid(True, axis="x", alpha=0.3)
        ax.set_title(f"Single target, {result['source']['name']} - {result['machine'].get('cpu_model')} "
                     f"({result['created'][:10]})", fontsize=9)
    if multi:
        ax = axes.pop(0)
        series: dict[str, list[tuple]] = {}
        for r in multi:
            key = f"{r['label']} {BACKEND_SHORT[r['backend']]} {r['precision']} t{r['threads']}"
            series.setdefault(key, []).append((r["targets"], r["end_to_end"]["fps"] * r["targets"]))
        width = 0.8 / max(1, len(series))
        targets = sorted({r["targets"] for r in multi})
        for i, (key, pts) in enumerate(series.items()):
            d = dict(pts)
            xs = [targets.index(t) + (i - (len(series) - 1) / 2) * width for t in targets if t in d]
            ax.bar(xs, [d[t] for t in targets if t in d], width=width, label=key)
        ax.set_xticks(range(len(targets)), [str(t) for t in targets])
        ax.set_xlabel("targets (one batched inference per frame)", fontsize=8)
        ax.set_ylabel("target updates / s", fontsize=8)
        ax.legend(fontsize=7)
        ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def update_readme(readme: Path, md: str) -> None:
    """Replace the text between the benchmark markers of ``readme`` with ``md`` (the markers and a
    heading are appended at the end when missing)."""
    readme = Path(readme)
    text = readme.read_text() if readme.is_file() else ""
    block = f"{README_START}\n{md.rstrip()}\n{README_END}"
    if README_START in text and README_END in text:
        head, _, rest = text.partition(README_START)
        _, _, tail = rest.partition(README_END)
        text = head + block + tail
    else:
        text = text.rstrip() + ("\n\n" if text else "") + block + "\n"
    readme.write_text(text)
