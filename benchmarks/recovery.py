"""The recovery protocol of ``mixformerv2-eval --protocol recovery``: absent-and-reappear cases
(:mod:`.recovery_cases`) tracked one-pass, scored for absence detection and re-acquisition.

Per case (N frames, absent frames cut .. back-1, target back from frame ``back``):

* **absence detection**: share of the absent frames on which the tracker reports ok=False
  (pooled over the cases of a group);
* **re-acquisition**: a case is re-acquired when, within ``WINDOW`` (10) frames from ``back``
  (frames back .. back+9), a frame has ok=True and IoU > 0.5 with the ground truth; **frames to
  re-acquire** counts from ``back`` to that frame (0 = found on the first frame back), infinite when
  it never happens before the case ends; the reported median is over all cases of a group
  (infinite, shown as "never", when half or more never re-acquire);
* **held at the cut**: whether the tracker was on the target on the last frame before the cut (ok
  and IoU > 0.5 there). A case it had already lost before the target went away tests tracking, not
  recovery; the re-acquisition of the held cases is reported beside the rate over all cases (a
  diagnostic column, not a second protocol: the goals stay on all cases);
* **FPS lost / tracking**: update frames per second on the frames where the tracker's ``state`` is
  "lost" / "tracking" (trackers without a ``state``: n/a).

The AUC on the unmodified sequences comes from the ordinary one-pass run of the same trackers
(written beside, under ``<out>/<dataset>/``). Per-case files, under ``<out>/<dataset>/recovery/``::

    <tracker>/<case>.txt      one line per frame: x<TAB>y<TAB>w<TAB>h<TAB>ok<TAB>score<TAB>state<TAB>seconds
                              (ok 1/0; state "init", "tracking", "lost", or "-" without a state)
    cases.json                the cases: sequence, kind, cut, back, shift, donor, frames
    summary.json, summary.md  the tables
"""
from __future__ import annotations

import json
import logging
import math
import traceback
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Sequence

import numpy as np

from .distributed import Job, JobResult, TrackerSpec, execute_dask, execute_local, job_tracker, track_frames
from .metrics import box_iou
from .ope import Progress, _atomic_write, _json_safe, evaluate
from .recovery_cases import GAP, KINDS, WINDOW, FrameRef, RecoveryCase, dataset_cases, first_hit, load_frame

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RecoveryJob(Job):
    """One tracker on one case (``seq_name`` = case name, as the local/Dask executors expect); the
    frames are FrameRefs (a frame of the sequence, of the donor, or rolled) instead of paths."""

    frames: tuple[FrameRef, ...]


@dataclass
class RecoveryResult(JobResult):
    """JobResult plus ok (N,) bool and states (N,) str ("init" on frame 1, "-" without a state)."""

    ok: np.ndarray | None = None
    states: list[str] | None = None


def run_recovery_job(job: RecoveryJob) -> JobResult:
    """Track one case (in a worker process); only the tracker calls are timed."""
    try:
        t = track_frames(job_tracker(job), job.frames, job.init_box, load_frame)
        return RecoveryResult(job.spec.label, job.seq_name, t.boxes, t.times, t.scores, ok=t.ok, states=t.states)
    except Exception:  # noqa: BLE001 - one failing case must not stop the others
        return JobResult(job.spec.label, job.seq_name, error=traceback.format_exc())


# ------------------------------------------------------------------------------------ result files
class RecoveryStore:
    """Per-case result files under ``<out>/<dataset>/recovery/`` (layout in the module docstring)."""

    def __init__(self, out_dir: Path, dataset: str) -> None:
        self.root = Path(out_dir) / dataset / "recovery"

    def file(self, tracker: str, case: str) -> Path:
        return self.root / tracker / f"{case}.txt"

    def error_file(self, tracker: str, case: str) -> Path:
        return self.root / tracker / f"{case}.error.txt"

    def write(self, res: JobResult) -> None:
        path = self.file(res.tracker, res.seq_name)
        path.parent.mkdir(parents=True, exist_ok=True)
        err = self.error_file(res.tracker, res.seq_name)
        if res.error is not None or not isinstance(res, RecoveryResult):
            err.write_text(f"host: {res.host}\n{res.error}")
            return
        lines = ["%.2f\t%.2f\t%.2f\t%.2f\t%d\t%.6f\t%s\t%.8f\n" % (*b, o, s, st, t)
                 for b, o, s, st, t in zip(res.boxes, res.ok, res.scores, res.states, res.times)]
        _atomic_write(path, "".join(lines))
        if err.exists():
            err.unlink()

    def load(self, tracker: str, case: str) -> dict | None:
        """{"boxes" (N,4), "ok" (N,) bool, "scores", "states" (N,) str, "times"} or None when missing."""
        path = self.file(tracker, case)
        if not path.is_file():
            return None
        rows = [ln.split("\t") for ln in path.read_text().splitlines() if ln.strip()]
        if not rows or any(len(r) != 8 for r in rows):
            return None
        return {"boxes": np.array([[float(v) for v in r[:4]] for r in rows]),
                "ok": np.array([r[4] == "1" for r in rows]), "scores": np.array([float(r[5]) for r in rows]),
                "states": [r[6] for r in rows], "times": np.array([float(r[7]) for r in rows])}

    def is_done(self, tracker: str, case: RecoveryCase) -> bool:
        res = self.load(tracker, case.name)
        return res is not None and len(res["ok"]) == len(case)


# ------------------------------------------------------------------------------------------ metrics
def case_metrics(case: RecoveryCase, res: dict, window: int = WINDOW) -> dict:
    """One case's numbers: absent frames, of them with ok=False, frames to re-acquire (inf: never),
    re-acquired within ``window``, whether the target was held (ok, IoU > 0.5) on the frame before the
    cut, and per-state update frame counts and seconds."""
    absent = slice(case.cut, case.back)
    iou = box_iou(res["boxes"], case.gt)
    k = first_hit(res["ok"], iou, case.back)
    states = np.array(res["states"])
    t = res["times"]
    before = case.cut - 1
    out = {"absent_frames": case.back - case.cut, "absent_not_ok": int((~res["ok"][absent]).sum()),
           "frames_to_reacquire": k, "reacquired": bool(k < window),
           "held_at_cut": bool(res["ok"][before] and np.nan_to_num(iou[before], nan=0.0) > 0.5)}
    for st in ("tracking", "lost"):
        sel = states[1:] == st
        out[f"{st}_frames"], out[f"{st}_seconds"] = int(sel.sum()), float(t[1:][sel].sum())
    return out


def _group_stats(per_case: list[dict], kinds: Sequence[str]) -> dict:
    """Pooled numbers of some cases: absence detection, per kind re-acquisition rate (of all cases and
    of the cases held at the cut) and median frames to re-acquire, FPS lost / tracking."""
    out: dict = {}
    ab = sum(c["absent_frames"] for c in per_case)
    out["absence_detection"] = sum(c["absent_not_ok"] for c in per_case) / ab if ab else math.nan
    for kind in kinds:
        cs = [c for c in per_case if c["kind"] == kind]
        out[f"{kind}_cases"] = len(cs)
        out[f"{kind}_reacquired"] = float(np.mean([c["reacquired"] for c in cs])) if cs else math.nan
        out[f"{kind}_median_frames"] = float(np.median([c["frames_to_reacquire"] for c in cs])) if cs else math.nan
        held = [c for c in cs if c["held_at_cut"]]
        out[f"{kind}_held_cases"] = len(held)
        out[f"{kind}_held_reacquired"] = float(np.mean([c["reacquired"] for c in held])) if held else math.nan
    for st in ("lost", "tracking"):
        n, s = sum(c[f"{st}_frames"] for c in per_case), sum(c[f"{st}_seconds"] for c in per_case)
        out[f"fps_{st}"] = n / s if s > 0 else math.nan
    return out


def summarize_recovery(cases: Sequence[RecoveryCase], store: RecoveryStore, trackers: Sequence[str],
                       ope: dict | None = None, groups: dict[str, Sequence[str]] | None = None) -> dict:
    """Numbers per tracker and group of sequences ("all" plus ``groups``: name -> sequence names).

    ``ope``: the ordinary summary (:func:`.accuracy.summarize`) of the unmodified sequences, for
    the AUC of the same sequences. Missing cases are listed, not counted.
    """
    groups = {"all": sorted({c.seq for c in cases}), **(groups or {})}
    out: dict = {"window": WINDOW, "gap": GAP, "groups": {k: list(v) for k, v in groups.items()},
                 "cases": [_case_dict(c) for c in cases], "trackers": {}}
    for label in trackers:
        per_case, missing = [], []
        for case in cases:
            res = store.load(label, case.name)
            if res is None or len(res["ok"]) != len(case):
                missing.append(case.name)
                continue
            per_case.append(dict(case_metrics(case, res), case=case.name, seq=case.seq, kind=case.kind))
        entry: dict = {"cases": per_case, "missing": missing, "groups": {}}
        for g, names in groups.items():
            stats = _group_stats([c for c in per_case if c["seq"] in set(names)], KINDS)
            stats["auc"] = _ope_auc(ope, label, names)
            entry["groups"][g] = stats
        out["trackers"][label] = entry
    return out


def _ope_auc(ope: dict | None, label: str, names: Sequence[str]) -> float:
    """Mean per-sequence AUC of ``names`` in the ordinary summary (NaN when any is missing)."""
    if not ope or label not in ope.get("trackers", {}):
        return math.nan
    seqs = ope["trackers"][label]["sequences"]
    vals = [seqs[n].get("auc") for n in names if n in seqs]
    if len(vals) != len(names) or any(v is None for v in vals):
        return math.nan
    return float(np.mean(vals))


def _case_dict(c: RecoveryCase) -> dict:
    return {"name": c.name, "seq": c.seq, "kind": c.kind, "frames": len(c), "cut": c.cut, "back": c.back,
            "shift": c.shift, "donor": c.donor}


def _pct(v: float) -> str:
    return "n/a" if v is None or math.isnan(v) else f"{100 * v:.0f}"


def _frames(v: float) -> str:
    return "n/a" if v is None or math.isnan(v) else ("never" if math.isinf(v) else f"{v:g}")


def _fps(v: float) -> str:
    return "n/a" if v is None or math.isnan(v) else f"{v:.0f}"


def markdown_recovery(summary: dict) -> str:
    """One table per group: tracker, absence detection, re-acquisition cut-away / elsewhere (%),
    median frames to re-acquire, AUC on the unmodified sequences, FPS lost / tracking."""
    lines = []
    for g, names in summary["groups"].items():
        lines += [f"### Recovery protocol, {g} ({len(names)} sequences: {', '.join(names)})", "",
                  "| Tracker | Absence detection % | Re-acq. cut-away % | Re-acq. elsewhere % | "
                  "Median frames cut-away / elsewhere | Re-acq. of cases held at the cut, cut-away / elsewhere % | "
                  "AUC unmodified | FPS lost / tracking |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for label, entry in summary["trackers"].items():
            s = entry["groups"][g]
            lines.append(f"| {label} | {_pct(s['absence_detection'])} | {_pct(s['cutaway_reacquired'])} "
                         f"({s['cutaway_cases']}) | {_pct(s['elsewhere_reacquired'])} ({s['elsewhere_cases']}) | "
                         f"{_frames(s['cutaway_median_frames'])} / {_frames(s['elsewhere_median_frames'])} | "
                         f"{_pct(s['cutaway_held_reacquired'])} ({s['cutaway_held_cases']}) / "
                         f"{_pct(s['elsewhere_held_reacquired'])} ({s['elsewhere_held_cases']}) | "
                         f"{_pct(s['auc']) if not math.isnan(s['auc']) else 'n/a'} | "
                         f"{_fps(s['fps_lost'])} / {_fps(s['fps_tracking'])} |")
        lines.append("")
    lines.append(f"Absent frames: {summary['gap']} per case; re-acquired = ok and IoU > 0.5 within "
                 f"{summary['window']} frames of the target's return (case counts in brackets); median frames "
                 "from the return to that frame over all cases (never = half or more never re-acquire). "
                 "Held at the cut: cases whose tracker had the target (ok, IoU > 0.5) on the frame before the "
                 "cut; a case lost before the cut tests tracking, not recovery (diagnostic; the goals count all cases). "
                 "AUC on the unmodified sequences (ordinary one-pass run). FPS = update frames per second "
                 "in that state (n/a: the tracker has no state), measured while the workers share the CPU.")
    missing = {k: v["missing"] for k, v in summary["trackers"].items() if v["missing"]}
    for label, m in missing.items():
        lines.append(f"- {label}: missing cases {', '.join(m)}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------- execution
def evaluate_recovery(dataset, specs: Sequence[TrackerSpec], out_dir: Path, workers: int = 1,
                      backend: str = "openvino", preset: str | None = None, peers_dir: Path | None = None,
                      resume: bool = True, dask: str | None = None, progress: bool = True,
                      groups: dict[str, Sequence[str]] | None = None, plots: bool = True,
                      pool: Sequence | None = None, precision: str = "auto",
                      cuts: Sequence[float] = (0.5,)) -> tuple[dict, list[JobResult]]:
    """Run the ordinary one-pass evaluation of the unmodified sequences and every tracker on every
    recovery case not yet finished; write ``summary.json`` / ``summary.md`` under
    ``<out>/<dataset>/recovery/``. ``pool``: the sequences donors come from (default: the
    dataset's; pass the whole dataset when ``dataset`` holds a subset). ``cuts``: cut positions as
    fractions of each sequence (default the middle only). Returns (recovery summary, failed job
    results)."""

    ope, failures = evaluate(dataset, specs, out_dir, workers=workers, backend=backend, preset=preset,
                             peers_dir=peers_dir, resume=resume, dask=dask, progress=progress, plots=plots,
                             precision=precision)
    cases, skipped = dataset_cases(dataset, at=cuts, pool=pool)
    for why in skipped:
        log.warning("recovery case not made: %s", why)
    store = RecoveryStore(out_dir, dataset.name)
    jobs = [RecoveryJob(spec, c.name, c.frames, c.init_box, backend, preset, str(peers_dir) if peers_dir else None,
                        precision)
            for spec in specs for c in cases if not (resume and store.is_done(spec.label, c))]
    bar = Progress(len(jobs), enabled=progress)

    def on_result(res: JobResult) -> None:
        store.write(res)
        if res.error is not None:
            failures.append(res)
            log.warning("%s failed on %s: %s", res.tracker, res.seq_name, res.error.strip().splitlines()[-1])
        bar.update(res)

    try:
        if dask:
            execute_dask(jobs, on_result, address=None if dask == "local" else dask, n_workers=workers,
                         worker=run_recovery_job)
        else:
            execute_local(jobs, workers, on_result, worker=run_recovery_job)
    finally:
        bar.close()
    summary = summarize_recovery(cases, store, [s.label for s in specs], ope, groups)
    summary["skipped_cases"] = skipped
    store.root.mkdir(parents=True, exist_ok=True)
    (store.root / "cases.json").write_text(json.dumps(
        [dict(_case_dict(c), frame_files=[[f.path, f.roll] for f in c.frames]) for c in cases], indent=1))
    (store.root / "summary.json").write_text(json.dumps(_json_safe(summary), indent=1, allow_nan=False))
    (store.root / "summary.md").write_text(markdown_recovery(summary))
    return summary, failures


__all__ = ["RecoveryJob", "RecoveryResult", "RecoveryStore", "case_metrics", "evaluate_recovery",
           "markdown_recovery", "run_recovery_job", "summarize_recovery"]
