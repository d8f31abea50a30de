"""Reporting of an evaluation summary (the dict of :func:`.accuracy.summarize`): Markdown tables and
success / precision / normalised-precision plots (PNG, matplotlib Agg) comparing every tracker.

Scores in the summary are fractions in [0, 1]; tables and legends show percentages as the
benchmark papers do. Curves: success over IoU thresholds ``linspace(0, 1, 21)``, precision over
0..50 px, normalised precision over 0..0.5.
"""
from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np

from .metrics import CENTER_THRESHOLDS, IOU_THRESHOLDS, NORM_CENTER_THRESHOLDS

log = logging.getLogger(__name__)

COLUMNS = (("auc", "AUC"), ("precision", "P@20px"), ("norm_precision", "NP@0.2"),
           ("ao", "AO"), ("sr50", "SR0.5"), ("sr75", "SR0.75"))


def _f(v: object) -> float:
    """Score as float; None (JSON null) -> NaN."""
    return float("nan") if v is None else float(v)  # type: ignore[arg-type]


def _pct(v: object) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100.0 * float(v):.1f}"


def _num(v: object) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{float(v):.1f}"


def _ranked(summary: dict) -> list[str]:
    """Tracker labels sorted by overall AUC (best first; NaN last)."""
    trk = summary["trackers"]

    def key(name: str) -> float:
        v = _f(trk[name]["overall"].get("auc"))
        return math.inf if math.isnan(v) else -v
    return sorted(trk, key=key)


def markdown_summary(summary: dict, per_sequence: bool = True) -> str:
    """Markdown: overall table (one row per tracker), then per-sequence AUC / FPS tables and notes."""
    n_seq = len(summary["sequences"])
    proto = summary["protocol"]
    lines = [f"## {summary['dataset']} ({summary['format']}, {n_seq} sequences)", "",
             f"Protocol: first frame {proto['first_frame']}, absent-target frames {proto['absent']}"
             f"{', AO boxes clipped to the image' if proto.get('clip_to_image') else ''}. "
             "Scores in %; FPS = tracker update frames per second (frame 1 and decoding excluded, "
             "measured while the parallel workers share the CPU).", "",
             "| Tracker | " + " | ".join(h for _, h in COLUMNS) + " | FPS | Sequences |",
             "|---|" + "---:|" * (len(COLUMNS) + 2)]
    for name in _ranked(summary):
        o = summary["trackers"][name]["overall"]
        lines.append(f"| {name} | " + " | ".join(_pct(o.get(k)) for k, _ in COLUMNS)
                     + f" | {_num(o.get('fps'))} | {o.get('sequences', 0)}/{n_seq} |")
    if per_sequence and summary["trackers"]:
        names = _ranked(summary)
        for key, title, fmt in (("auc", "AUC (%) per sequence", _pct), ("fps", "FPS per sequence", _num)):
            lines += ["", f"### {title}", "", "| Sequence | " + " | ".join(names) + " |",
                      "|---|" + "---:|" * len(names)]
            for seq in summary["sequences"]:
                cells = [fmt(summary["trackers"][t]["sequences"].get(seq, {}).get(key)) for t in names]
                lines.append(f"| {seq} | " + " | ".join(cells) + " |")
    notes = []
    for seq, reason in summary.get("skipped_sequences", {}).items():
        notes.append(f"- skipped sequence `{seq}`: {reason}")
    for name in _ranked(summary):
        t = summary["trackers"][name]
        for seq, err in t.get("failed", {}).items():
            notes.append(f"- `{name}` failed on `{seq}`: {err}")
        if t.get("missing"):
            notes.append(f"- `{name}` has no result for: {', '.join(t['missing'])}")
    if notes:
        lines += ["", "### Notes", ""] + notes
    return "\n".join(lines) + "\n"


def plot_curves(summary: dict, out_dir: Path) -> list[Path]:
    """Write success.png, precision.png, norm_precision.png into ``out_dir``; returns their paths.

    Returns [] (with a warning) when matplotlib is missing or no tracker has curves.
    """
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.warning("matplotlib is not installed: no plots (pip install matplotlib)")
        return []
    names = [n for n in _ranked(summary) if summary["trackers"][n]["curves"].get("success")]
    if not names:
        return []
    specs: dict[str, tuple] = {
        "success": (IOU_THRESHOLDS, "auc", "Overlap threshold (IoU)", "Success rate",
                    "Success plot (legend: AUC)", "upper right"),
        "precision": (CENTER_THRESHOLDS, "precision", "Location error threshold (px)", "Precision",
                      "Precision plot (legend: precision at 20 px)", "lower right"),
        "norm_precision": (NORM_CENTER_THRESHOLDS, "norm_precision", "Normalised location error threshold",
                           "Normalised precision", "Normalised precision plot (legend: at 0.2)", "lower right"),
    }
    paths = []
    for curve, (xs, score, xlabel, ylabel, title, loc) in specs.items():
        fig, ax = plt.subplots(figsize=(6.4, 4.8), dpi=100)
        order = sorted(names, key=lambda n: -np.nan_to_num(_f(summary["trackers"][n]["overall"].get(score)), nan=-1))
        for i, name in enumerate(order):
            t = summary["trackers"][name]
            ax.plot(xs, t["curves"][curve], linewidth=2, linestyle="-" if i < 10 else "--",
                    label=f"{name} [{_pct(t['overall'][score])}]")
        ax.set(xlabel=xlabel, ylabel=ylabel, xlim=(float(xs[0]), float(xs[-1])), ylim=(0, 1.0),
               title=f"{title} - {summary['dataset']}")
        ax.grid(True, alpha=0.4)
        ax.legend(loc=loc, fontsize=8)
        fig.tight_layout()
        path = Path(out_dir) / f"{curve}.png"
        fig.savefig(path)
        plt.close(fig)
        paths.append(path)
    return paths
