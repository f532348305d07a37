"""Detection-quality benchmark: how fast each monitor catches planted change and how often it cries wolf.

    python -m simulations.bench_detection [--seeds 3] [--windows 12] [--rate 10] [--out bench-detection/]

For every scenario with feature-level ground truth, Driftline's default configuration (the same
pure pipeline ``monitor replay`` runs) and, fed the same per-event values of every numeric feature,
river's ADWIN, PageHinkley and KSWIN with their default parameters. Evidently's DataDriftPreset runs on
the same windows when the optional ``evidently`` extra is installed (it needs ``pandas<3``).

Per monitor: detection delay in windows (first flagged window minus the change window) and in events,
missed changes, and false alarms per 1,000 stable feature-windows (a flag on a stable feature, or on
a changed feature before its change). Writes ``results.json``, ``results.md`` and ``detection.png``.

Segments (:mod:`simulations.bench_segments`): the ``segment_shift`` scenario (only country=PL, 5 % of traffic,
moves) at ~4,000 events per window, and the stable scenarios with segments off and on.
"""

from __future__ import annotations

import argparse
import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from monitor.config import MonitorSettings
from monitor.core.reference import build_profile
from monitor.events import decode_any
from monitor.pipeline import Monitor
from monitor.scenarios import get_scenario
from monitor.types import PredictionEvent
from simulations import bench_segments

SCENARIOS = ("stable", "sudden_shift", "gradual", "seasonal", "new_category", "score_drift")
T0 = 1_767_225_600.0


@dataclass
class Score:
    """Accumulated outcome of one monitor over scenarios and seeds."""

    stable_windows: int = 0
    false_alarms: int = 0
    changes: int = 0
    detected: int = 0
    delays_windows: list[int] = field(default_factory=list)
    delays_events: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "false_alarms_per_1000": 1000 * self.false_alarms / max(self.stable_windows, 1),
            "stable_feature_windows": self.stable_windows, "changes": self.changes,
            "missed": self.changes - self.detected,
            "mean_delay_windows": float(np.mean(self.delays_windows)) if self.delays_windows else math.nan,
            "within_1_window": sum(d <= 0 for d in self.delays_windows) / max(self.changes, 1),
            "mean_delay_events": float(np.mean(self.delays_events)) if self.delays_events else math.nan,
        }


def _events(name: str, seed: int, windows: int, window_s: float, rate: float) -> list[PredictionEvent]:
    out = []
    for item in get_scenario(name).events(seed=seed, windows=windows, window_s=window_s, rate=rate, start=T0):
        if isinstance(item, dict) and "label" not in item:
            ev = decode_any(orjson.dumps(item))
            if isinstance(ev, PredictionEvent):
                out.append(ev)
    return out


def _driftline_flags(events: list[PredictionEvent], profile: Any, window_s: float) -> dict[str, set[int]]:
    settings = MonitorSettings(window=f"{int(window_s)}s", allowed_lateness="60s")
    mon = Monitor(settings, {events[0].model: profile})
    flags: dict[str, set[int]] = defaultdict(set)
    for i in range(0, len(events), 2000):
        mon.observe(events[i:i + 2000])
    em = mon.close_all()
    for p in em.points:
        if p.measurement == "drift" and p.field("drifted") is True and p.tag("method") in settings.policy.decision_methods:
            flags[p.tag("feature") or ""].add(int((p.time_ns / 1e9 - T0) // window_s) - 1)
    return flags


def _river_flags(events: list[PredictionEvent], features: list[str], window_s: float,
                 detectors: tuple[str, ...]) -> dict[str, dict[str, set[int]]]:
    from river import drift

    makers = {"river ADWIN": drift.ADWIN, "river PageHinkley": drift.PageHinkley, "river KSWIN": lambda: drift.KSWIN(seed=1)}
    out: dict[str, dict[str, set[int]]] = {}
    for name, make in makers.items():
        if name not in detectors:
            continue
        flags: dict[str, set[int]] = defaultdict(set)
        for f in features:
            det = make()
            for e in events:
                v = e.features.get(f)
                if isinstance(v, int | float) and not isinstance(v, bool):
                    det.update(float(v))
                    if det.drift_detected:
                        flags[f].add(int((e.timestamp - T0) // window_s))
        out[name] = flags
    return out


def _evidently_flags(events: list[PredictionEvent], reference: Any, features: list[str],
                     window_s: float, windows: int) -> dict[str, set[int]] | None:
    try:
        from evidently import Report  # type: ignore[import-not-found]
        from evidently.presets import DataDriftPreset  # type: ignore[import-not-found]
    except Exception:
        return None
    import pandas as pd

    flags: dict[str, set[int]] = defaultdict(set)
    frame = pd.DataFrame([{**e.features, "_w": int((e.timestamp - T0) // window_s)} for e in events])
    ref = reference[features]
    for w in range(windows):
        cur = frame[frame["_w"] == w][features]
        if cur.empty:
            continue
        result = Report([DataDriftPreset()]).run(cur, ref).dict()
        for metric in result.get("metrics", []):
            cfg = str(metric.get("metric_id", ""))
            for f in features:
                if f"column={f}" in cfg and isinstance(metric.get("value"), dict | float):
                    value = metric["value"]
                    drifted = value.get("drift", False) if isinstance(value, dict) else False
                    if drifted:
                        flags[f].add(w)
    return flags


def _score(score: Score, flags: dict[str, set[int]], truth: dict[str, Any], features: list[str], windows: int,
           per_window_events: float, model: str) -> None:
    changes = {c["target"].removeprefix("category:"): c for c in truth["changes"]
               if c.get("model", model) == model and c["kind"] != "seasonal"}
    for f in features:
        got = {w for w in flags.get(f, set()) if 0 <= w < windows}
        change = changes.get(f)
        stable_range = range(windows) if change is None else range(change["start_window"])
        score.stable_windows += len(stable_range)
        score.false_alarms += sum(1 for w in got if w in stable_range)
        if change is not None:
            score.changes += 1
            after = sorted(w for w in got if w >= change["start_window"])
            if after:
                score.detected += 1
                delay = after[0] - change["start_window"]
                score.delays_windows.append(delay)
                score.delays_events.append(int((delay + 1) * per_window_events))


RIVER = ("river ADWIN", "river PageHinkley", "river KSWIN")


def run(seeds: int = 3, windows: int = 12, rate: float = 10.0, window_s: float = 300.0,
        scenarios: tuple[str, ...] = SCENARIOS, detectors: tuple[str, ...] = RIVER,
        evidently: bool = True) -> dict[str, Any]:
    scores: dict[str, Score] = defaultdict(Score)
    per_scenario: dict[str, dict[str, Any]] = {}
    evidently_available = evidently
    for name in scenarios:
        spec = get_scenario(name)
        for seed in range(seeds):
            truth = spec.truth(windows=windows, window_s=window_s, rate=rate, seed=seed, start=T0)
            model = spec.models[0]
            reference = spec.reference(rows=20_000, seed=seed)[model]
            profile = build_profile(model, reference)
            events = _events(name, seed, windows, window_s, rate)
            numeric = [f for f in profile.numeric]
            features = numeric + [f for f in profile.categorical]
            per_window = len(events) / windows
            results = {"Driftline": _driftline_flags(events, profile, window_s)}
            results.update(_river_flags(events, numeric, window_s, detectors))
            ev = _evidently_flags(events, reference, numeric, window_s, windows) if evidently else None
            if ev is not None:
                results["Evidently DataDriftPreset"] = ev
            elif evidently:
                evidently_available = False
            for monitor_name, flags in results.items():
                feats = features if monitor_name == "Driftline" else numeric
                _score(scores[monitor_name], flags, truth, feats, windows, per_window, model)
                sc = Score()
                _score(sc, flags, truth, feats, windows, per_window, model)
                per_scenario.setdefault(name, {}).setdefault(monitor_name, []).append(sc.as_dict())
    return {"overall": {k: v.as_dict() for k, v in scores.items()}, "by_scenario": per_scenario,
            "evidently": evidently_available, "seeds": seeds, "windows": windows, "rate": rate}


def _markdown(res: dict[str, Any]) -> str:
    lines = ["| monitor | false alarms / 1,000 stable feature-windows | changes | missed | detected within 1 window "
             "| mean delay (windows) | mean delay (events) |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, s in res["overall"].items():
        lines.append(f"| {name} | {s['false_alarms_per_1000']:.1f} | {s['changes']} | {s['missed']} | "
                     f"{s['within_1_window']:.0%} | {s['mean_delay_windows']:.2f} | {s['mean_delay_events']:.0f} |")
    if not res["evidently"]:
        lines.append("\nEvidently: not installed (`pip install 'driftline[evidently]'`, needs pandas<3).")
    return "\n".join(lines) + "\n"


def _plot(res: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(res["overall"])
    fa = [res["overall"][n]["false_alarms_per_1000"] for n in names]
    delay = [res["overall"][n]["mean_delay_windows"] for n in names]
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    a.bar(names, fa, color="#d62728")
    a.set_title("false alarms per 1,000 stable feature-windows (lower is better)", fontsize=9)
    a.set_yscale("symlog", linthresh=1)
    b.bar(names, delay, color="#1f77b4")
    b.set_title("mean detection delay, windows after the change (lower is better)", fontsize=9)
    for ax in (a, b):
        ax.tick_params(axis="x", rotation=20, labelsize=8)
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--windows", type=int, default=12)
    ap.add_argument("--rate", type=float, default=10.0, help="events/s of event time (3,000 per 5-minute window)")
    ap.add_argument("--out", type=Path, default=Path("bench-detection"))
    args = ap.parse_args(argv)
    res = run(args.seeds, args.windows, args.rate)
    res["segments"] = bench_segments.detection(max(args.seeds, 3))  # segment-only shift; stable, segments off/on
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_bytes(orjson.dumps(res, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY))
    md = _markdown(res) + "\n" + bench_segments.markdown(res["segments"])
    (args.out / "results.md").write_text(md)
    _plot(res, args.out / "detection.png")
    print(md)
    print(f"wrote {args.out}/results.json, results.md, detection.png")
    return res


if __name__ == "__main__":
    main()
