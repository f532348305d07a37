"""Detection-quality benchmark: how fast each monitor catches planted change and how often it cries wolf.

    python -m simulations.bench_detection [--seeds 1] [--windows 12] [--evidently] [--out docs/bench-detection]

Cases (5-minute windows): today's scenarios at ~3,000 events per window (stable, sudden_shift, gradual,
seasonal, new_category, score_drift), ``subtle_shift`` (+0.2 sd on x1 and x2) at ~8,000 per window,
``low_traffic`` (stable) at ~80 per window and ``correlation_flip`` (x3–x4 correlation +0.85 → −0.85,
marginals fixed) at ~3,000; plus a **traffic sweep** of the stable scenario at 50 … 10,000 events per
window for the false-alarm rate.

Monitors, all fed the same events:

* **Driftline** — the default configuration and a calibrated (format 2) reference, through the same
  pure pipeline ``monitor replay`` runs; a flag is a window whose points say ``drifted``.
* **Driftline, fixed floors** — the same events with an uncalibrated profile (format-1 rules).
* **river** ADWIN, PageHinkley, KSWIN with default parameters on every numeric feature's per-event values.
* **NannyML-style (emulated)** — per feature the Jensen–Shannon distance (NannyML's default univariate
  method) on the reference deciles (numeric) or categories, flagged beyond mean + 3 σ of the same statistic over reference
  chunks of the window's size; multivariate: the mean PCA reconstruction error beyond mean ± 3 σ of
  reference chunks (NannyML's default thresholds). Chunks are drawn from the 20,000-row reference, so at
  10,000 events per window only 2 chunks calibrate it — NannyML's own limitation.
* **Evidently DataDriftPreset** (``--evidently``) — Evidently's real code with its defaults, run per
  window in its own virtualenv (``~/.cache/driftline/evidently-venv``, created on first use with
  ``pip install evidently 'pandas<3' pyarrow``: Evidently needs pandas < 3, this project has pandas 3)
  via :mod:`simulations.evidently_runner`, on the same rows passed as Parquet files.

Scores: detection delay in windows (first flagged window minus the change window), missed changes, and
false alarms per 1,000 stable feature-windows (a flag on a stable feature, or on a changed feature
before its change). ``__multivariate__`` counts as a feature: stable in every window before the first
planted change, and the target of ``correlation_flip``. Writes ``results.json``, ``results.md`` and
``detection.png``.

Segments (:mod:`simulations.bench_segments`): the ``segment_shift`` scenario (only country=PL, 5 % of traffic,
moves) at ~4,000 events per window, and the stable scenarios with segments off and on.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd

from monitor.config import MonitorSettings
from monitor.core.binning import FeatureBinner
from monitor.core.drift.js import js_distance
from monitor.core.multivariate import FEATURE as MULTIVARIATE
from monitor.core.reference import ReferenceProfile, build_profile
from monitor.events import decode_any
from monitor.pipeline import Monitor
from monitor.scenarios import get_scenario
from monitor.types import PredictionEvent
from simulations import bench_segments

T0 = 1_767_225_600.0
WINDOW_S = 300.0
#: (case, scenario, events per window)
CASES: tuple[tuple[str, str, int], ...] = (
    ("stable", "stable", 3000), ("sudden_shift", "sudden_shift", 3000), ("gradual", "gradual", 3000),
    ("seasonal", "seasonal", 3000), ("new_category", "new_category", 3000), ("score_drift", "score_drift", 3000),
    ("subtle_shift", "subtle_shift", 8000), ("low_traffic", "stable", 80),
    ("correlation_flip", "correlation_flip", 3000),
)
SWEEP = (50, 100, 200, 500, 1000, 2000, 5000, 10_000)
RIVER = ("river ADWIN", "river PageHinkley", "river KSWIN")
DRIFTLINE, FIXED, NANNY, EVIDENTLY = ("Driftline", "Driftline, fixed floors (format 1)", "NannyML-style (emulated)",
                                      "Evidently DataDriftPreset")
EVIDENTLY_VENV = Path(os.environ.get("DRIFTLINE_EVIDENTLY_VENV", Path.home() / ".cache/driftline/evidently-venv"))


@dataclass
class Score:
    """Accumulated outcome of one monitor over cases and seeds."""

    stable_windows: int = 0
    false_alarms: int = 0
    changes: int = 0
    detected: int = 0
    delays_windows: list[int] = field(default_factory=list)
    delays_events: list[int] = field(default_factory=list)

    def add(self, other: Score) -> None:
        self.stable_windows += other.stable_windows
        self.false_alarms += other.false_alarms
        self.changes += other.changes
        self.detected += other.detected
        self.delays_windows += other.delays_windows
        self.delays_events += other.delays_events

    def as_dict(self) -> dict[str, Any]:
        return {
            "false_alarms_per_1000": 1000 * self.false_alarms / max(self.stable_windows, 1),
            "false_alarms": self.false_alarms, "stable_feature_windows": self.stable_windows,
            "changes": self.changes, "missed": self.changes - self.detected,
            "mean_delay_windows": float(np.mean(self.delays_windows)) if self.delays_windows else math.nan,
            "within_1_window": sum(d <= 0 for d in self.delays_windows) / max(self.changes, 1),
            "max_delay_windows": max(self.delays_windows) if self.delays_windows else None,
            "mean_delay_events": float(np.mean(self.delays_events)) if self.delays_events else math.nan,
        }


Flags = dict[str, set[int]]


def _events(name: str, seed: int, windows: int, rate: float) -> list[PredictionEvent]:
    out = []
    for item in get_scenario(name).events(seed=seed, windows=windows, window_s=WINDOW_S, rate=rate, start=T0):
        if isinstance(item, dict) and "label" not in item:
            ev = decode_any(orjson.dumps(item))
            if isinstance(ev, PredictionEvent):
                out.append(ev)
    return out


def _window(ts: float) -> int:
    return int((ts - T0) // WINDOW_S)


def driftline_flags(events: list[PredictionEvent], profile: ReferenceProfile,
                    settings: MonitorSettings | None = None) -> Flags:
    """Windows whose ``drift`` points say ``drifted`` (the policy's verdict), per feature."""
    settings = settings or MonitorSettings(window=f"{int(WINDOW_S)}s", allowed_lateness="60s")
    mon = Monitor(settings, {events[0].model: profile})
    flags: Flags = defaultdict(set)
    for i in range(0, len(events), 2000):
        mon.observe(events[i:i + 2000])
    for p in mon.close_all().points:
        if p.measurement == "drift" and p.field("drifted") is True:
            flags[p.tag("feature") or ""].add(int((p.time_ns / 1e9 - T0) // WINDOW_S) - 1)
    return flags


def river_flags(events: list[PredictionEvent], features: list[str], detectors: tuple[str, ...]) -> dict[str, Flags]:
    from river import drift

    makers = {"river ADWIN": drift.ADWIN, "river PageHinkley": drift.PageHinkley,
              "river KSWIN": lambda: drift.KSWIN(seed=1)}
    out: dict[str, Flags] = {}
    for name in detectors:
        flags: Flags = defaultdict(set)
        for f in features:
            det = makers[name]()
            for e in events:
                v = e.features.get(f)
                if isinstance(v, int | float) and not isinstance(v, bool):
                    det.update(float(v))
                    if det.drift_detected:
                        flags[f].add(_window(e.timestamp))
        out[name] = flags
    return out


def nannyml_flags(events: list[PredictionEvent], profile: ReferenceProfile, reference: pd.DataFrame,
                  windows: int) -> Flags:
    """NannyML's default thresholds emulated: statistic beyond mean ± 3 σ over reference chunks."""
    binner = FeatureBinner(profile)
    by_w: dict[int, list[PredictionEvent]] = defaultdict(list)
    for e in events:
        by_w[_window(e.timestamp)].append(e)
    size = int(np.median([len(v) for v in by_w.values()])) if by_w else 0
    k = len(reference) // max(size, 1)
    flags: Flags = defaultdict(set)
    if k < 2:
        return flags
    ref_rows = [{c: (None if pd.isna(v) else v) for c, v in row.items()} for row in
                reference[list(profile.numeric) + list(profile.categorical)].to_dict("records")]
    ref_events = [PredictionEvent("m", str(i), T0, r, None) for i, r in enumerate(ref_rows)]

    def stats(evs: list[PredictionEvent]) -> tuple[np.ndarray, float]:
        from monitor.core.aggregate import Batch

        b = Batch.build(evs, binner)
        assert b.numeric is not None and b.cat_codes is not None
        num, _, _ = binner.numeric_counts(b.numeric)
        cat, _, _ = binner.code_counts(b.cat_codes)
        # numeric: on the reference deciles (NannyML bins continuous features coarsely too)
        js = np.concatenate([js_distance(binner._psi_ref, binner._coarse(num)), js_distance(binner._cat_ref, cat)])
        recon = float(np.nanmean(b.recon)) if b.recon is not None else math.nan
        return js, recon

    chunk = [stats(ref_events[i * size:(i + 1) * size]) for i in range(k)]
    js_ref = np.stack([c[0] for c in chunk])
    js_hi = js_ref.mean(axis=0) + 3 * js_ref.std(axis=0, ddof=1)
    rec = np.array([c[1] for c in chunk])
    rec_lo, rec_hi = rec.mean() - 3 * rec.std(ddof=1), rec.mean() + 3 * rec.std(ddof=1)
    names = list(binner.numeric_names) + list(binner.categorical_names)
    for w in range(windows):
        if not by_w.get(w):
            continue
        js, recon = stats(by_w[w])
        for name, value, hi in zip(names, js.tolist(), js_hi.tolist(), strict=True):
            if value > hi:
                flags[name].add(w)
        if not (rec_lo <= recon <= rec_hi):
            flags[MULTIVARIATE].add(w)
    return flags


def ensure_evidently_venv(venv: Path = EVIDENTLY_VENV) -> Path:
    """Evidently's own virtualenv (created on first use); returns its python."""
    python = venv / "bin" / "python"
    if not python.exists():
        print(f"creating {venv} for Evidently (pip install evidently 'pandas<3' pyarrow) ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "evidently", "pandas<3", "pyarrow"], check=True)
    return python


def evidently_flags(events: list[PredictionEvent], reference: pd.DataFrame, features: list[str],
                    python: Path) -> tuple[Flags, float]:
    runner = Path(__file__).with_name("evidently_runner.py")
    rows = [{**{f: e.features.get(f) for f in features}, "_w": _window(e.timestamp)} for e in events]
    with tempfile.TemporaryDirectory() as tmp:
        ref_path, cur_path, out_path = (Path(tmp) / n for n in ("ref.parquet", "cur.parquet", "out.json"))
        reference[features].to_parquet(ref_path)
        pd.DataFrame(rows).to_parquet(cur_path)
        subprocess.run([str(python), str(runner), str(ref_path), str(cur_path), str(out_path)], check=True,
                       stdout=subprocess.DEVNULL)
        res = orjson.loads(out_path.read_bytes())
    return {f: set(ws) for f, ws in res["flags"].items()}, float(res["seconds"])


def score(flags: Flags, truth: dict[str, Any], features: list[str], windows: int, per_window: float,
          model: str) -> Score:
    sc = Score()
    real = [c for c in truth["changes"] if c.get("model", model) == model and c["kind"] != "seasonal"]
    changes = {c["target"].removeprefix("category:"): c for c in real}
    first = min((c["start_window"] for c in real), default=windows)
    for f in features:
        got = {w for w in flags.get(f, set()) if 0 <= w < windows}
        change = changes.get(f)
        if change is None and f == MULTIVARIATE:
            stable_range = range(first)  # after any planted change, a multivariate flag is not false
        else:
            stable_range = range(windows) if change is None else range(change["start_window"])
        sc.stable_windows += len(stable_range)
        sc.false_alarms += sum(1 for w in got if w in stable_range)
        if change is not None:
            sc.changes += 1
            after = sorted(w for w in got if w >= change["start_window"])
            if after:
                sc.detected += 1
                delay = after[0] - change["start_window"]
                sc.delays_windows.append(delay)
                sc.delays_events.append(int((delay + 1) * per_window))
    return sc


def _one(case: str, scenario: str, per_window: int, seed: int, windows: int, detectors: tuple[str, ...],
         evidently: Path | None, profiles: dict[tuple[str, int], tuple[pd.DataFrame, ReferenceProfile,
                                                                     ReferenceProfile]]) -> dict[str, Score]:
    spec = get_scenario(scenario)
    model = spec.models[0]
    truth = spec.truth(windows=windows, window_s=WINDOW_S, rate=per_window / WINDOW_S, seed=seed, start=T0)
    if (scenario, seed) not in profiles:
        reference = spec.reference(rows=20_000, seed=seed)[model]
        profiles[(scenario, seed)] = (reference, build_profile(model, reference, seed=seed),
                                      build_profile(model, reference, calibrate=False))
    reference, profile, fixed = profiles[(scenario, seed)]
    events = _events(scenario, seed, windows, per_window / WINDOW_S)
    numeric = list(profile.numeric)
    features = numeric + list(profile.categorical)
    results: dict[str, tuple[Flags, list[str]]] = {
        DRIFTLINE: (driftline_flags(events, profile), [*features, MULTIVARIATE]),
        FIXED: (driftline_flags(events, fixed), features),
        NANNY: (nannyml_flags(events, profile, reference, windows), [*features, MULTIVARIATE]),
    }
    for name, flags in river_flags(events, numeric, detectors).items():
        results[name] = (flags, numeric)
    if evidently is not None:
        results[EVIDENTLY] = (evidently_flags(events, reference, features, evidently)[0], features)
    per = len(events) / windows
    return {name: score(flags, truth, feats, windows, per, model) for name, (flags, feats) in results.items()}


def run(seeds: int = 1, windows: int = 12, cases: tuple[tuple[str, str, int], ...] = CASES,
        sweep: tuple[int, ...] = SWEEP, detectors: tuple[str, ...] = RIVER, evidently: bool = False,
        sweep_detectors: tuple[str, ...] | None = None) -> dict[str, Any]:
    """Run every case and the traffic sweep; see the module docstring."""
    python = ensure_evidently_venv() if evidently else None
    profiles: dict[tuple[str, int], Any] = {}
    overall: dict[str, Score] = defaultdict(Score)
    by_case: dict[str, dict[str, dict[str, Any]]] = {}
    t0 = time.perf_counter()
    for case, scenario, per_window in cases:
        totals: dict[str, Score] = defaultdict(Score)
        for seed in range(seeds):
            for name, sc in _one(case, scenario, per_window, seed, windows, detectors, python, profiles).items():
                totals[name].add(sc)
                overall[name].add(sc)
        by_case[case] = {name: sc.as_dict() | {"events_per_window": per_window} for name, sc in totals.items()}
        print(f"  {case}: done ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
    sweep_res: dict[str, dict[str, dict[str, Any]]] = {}
    for per_window in sweep:
        totals = defaultdict(Score)
        for seed in range(seeds):
            dets = detectors if sweep_detectors is None else sweep_detectors
            for name, sc in _one("stable", "stable", per_window, seed, windows, dets, python, profiles).items():
                totals[name].add(sc)
        sweep_res[str(per_window)] = {name: sc.as_dict() for name, sc in totals.items()}
        print(f"  sweep {per_window}/window: done ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
    return {"overall": {k: v.as_dict() for k, v in overall.items()}, "by_case": by_case, "sweep": sweep_res,
            "evidently": evidently, "seeds": seeds, "windows": windows, "window_s": WINDOW_S,
            "seconds": time.perf_counter() - t0}


def _fmt_delay(s: dict[str, Any]) -> str:
    return "–" if s["changes"] == 0 else ("missed" if s["missed"] == s["changes"] else f"{s['mean_delay_windows']:.2f}")


def markdown(res: dict[str, Any]) -> str:
    monitors = list(res["overall"])
    lines = ["| monitor | false alarms / 1,000 stable feature-windows (cases) | worst over the traffic sweep "
             "| changes | missed | within 1 window | mean delay (windows) |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name in monitors:
        s = res["overall"][name]
        levels = [lvl[name]["false_alarms_per_1000"] for lvl in res["sweep"].values() if name in lvl]
        worst = f"{max(levels):.1f}" if levels else "not run"
        lines.append(f"| {name} | {s['false_alarms_per_1000']:.1f} | {worst} | {s['changes']} | {s['missed']} | "
                     f"{s['within_1_window']:.0%} | {s['mean_delay_windows']:.2f} |")
    lines += ["", "Per case: false alarms / 1,000 stable feature-windows; delay in windows (– no change, "
              "missed)", "", "| case (events/window) | " + " | ".join(monitors) + " |",
              "| --- |" + " ---: |" * len(monitors)]
    for case, row in res["by_case"].items():
        per = next(iter(row.values()))["events_per_window"]
        cells = [f"{row[m]['false_alarms_per_1000']:.0f}; {_fmt_delay(row[m])}" if m in row else "n/a"
                 for m in monitors]
        lines.append(f"| {case} ({per:,}) | " + " | ".join(cells) + " |")
    lines += ["", "Traffic sweep, stable data: false alarms / 1,000 stable feature-windows", "",
              "| events/window | " + " | ".join(monitors) + " |", "| ---: |" + " ---: |" * len(monitors)]
    for level, row in res["sweep"].items():
        cells = [f"{row[m]['false_alarms_per_1000']:.1f}" if m in row else "n/a" for m in monitors]
        lines.append(f"| {int(level):,} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(res: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(res["overall"])
    fig, (a, b) = plt.subplots(1, 2, figsize=(13, 4.8))
    levels = [int(k) for k in res["sweep"]]
    for name in names:
        ys = [res["sweep"][str(lv)].get(name, {}).get("false_alarms_per_1000", math.nan) for lv in levels]
        if all(math.isnan(y) for y in ys):
            continue
        main = name == DRIFTLINE
        a.plot(levels, ys, marker="o", label=name, linewidth=3 if main else 1.2, zorder=10 if main else 2,
               linestyle="-" if main else "--")
    a.set_xscale("log")
    a.set_yscale("symlog", linthresh=1)
    a.set_ylim(bottom=0)
    a.set_xlabel("events per window (stable data)")
    a.set_title("traffic sweep: false alarms per 1,000 stable feature-windows (lower is better)", fontsize=9)
    a.legend(fontsize=7)
    fa = [res["overall"][n]["false_alarms_per_1000"] for n in names]
    bars = b.barh(names, [max(v, 0.0) for v in fa], color=["#2ca02c" if n == DRIFTLINE else "#999999" for n in names])
    for bar, n in zip(bars, names, strict=True):
        s = res["overall"][n]
        b.annotate(f" {s['changes'] - s['missed']}/{s['changes']} changes caught, "
                   f"{s['within_1_window']:.0%} in their first window", (bar.get_width(), bar.get_y() + 0.4),
                   fontsize=7, va="center")
    b.set_xscale("symlog", linthresh=1)
    b.set_xlim(0, 20_000)
    b.invert_yaxis()
    b.tick_params(axis="y", labelsize=7)
    b.set_title("all cases: false alarms per 1,000 stable feature-windows; changes caught", fontsize=9)
    for ax in (a, b):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--windows", type=int, default=12)
    ap.add_argument("--evidently", action="store_true", help="also run Evidently (in its own virtualenv)")
    ap.add_argument("--sweep-river", action="store_true", help="river on the traffic sweep too (slow: KSWIN)")
    ap.add_argument("--no-river", action="store_true", help="leave river's detectors out (faster, for more seeds)")
    ap.add_argument("--out", type=Path, default=Path("bench-detection"))
    args = ap.parse_args(argv)
    res = run(args.seeds, args.windows, evidently=args.evidently, detectors=() if args.no_river else RIVER,
              sweep_detectors=() if args.no_river else None if args.sweep_river else ("river ADWIN",))
    res["segments"] = bench_segments.detection(max(args.seeds, 3))  # segment-only shift; stable, segments off/on
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_bytes(orjson.dumps(res, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY))
    md = markdown(res) + "\n" + bench_segments.markdown(res["segments"])
    (args.out / "results.md").write_text(md)
    plot(res, args.out / "detection.png")
    print(md)
    print(f"{res['seconds']:.0f} s; wrote {args.out}/results.json, results.md, detection.png")
    return res


if __name__ == "__main__":
    main()
