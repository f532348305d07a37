"""Segments benchmark: detection of a segment-only shift, false alarms with segments on and off, and cost.

    python -m simulations.bench_segments [--seeds 3] [--skip-worker] [--json out.json]

Detection (also part of ``python -m simulations.bench_detection``):

* ``segment_shift``: only country=PL (5 % of traffic) moves (amount +0.25 sd from window 4), ~4,000 events per
  5-minute window; monitored with ``segments: [country, device]``. Per seed: is PL flagged in window 4 (its
  first), do the whole model's points and every other segment stay quiet (no feature flagged by a decision
  method), and which alerts fire.
* The stable scenarios (``stable``, ``seasonal``) with segments off and on, the same events: flagged
  feature-windows of the whole model, of the segments, and alerts fired.

Cost, each ratio against the run without segments in the same process: ``monitor replay`` events/s (JSON
decoding, pipeline, line-protocol output) and the pure pipeline's events/s on traffic with 2 segment features
of 40 values each (20 segments + ``__other__`` per feature), window state bytes per model-window (in memory
and on the wire), the InfluxDB series a replay writes; and, unless ``--skip-worker``, a ``monitor run``
worker's CPU per event on the tansu broker with a VictoriaMetrics sink (``simulations.bench_throughput``).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd

from monitor.config import MonitorSettings
from monitor.core.reference import ReferenceProfile, build_profile
from monitor.core.segment_profiles import with_segments
from monitor.events import decode_any
from monitor.pipeline import Monitor
from monitor.scenarios import get_scenario
from monitor.segments import trimmed_nbytes
from monitor.types import LabelEvent, MetricPoint, PredictionEvent
from monitor.wire import encode, state_from_wire

T0 = 1_767_225_600.0
WINDOW_S = 300.0
SEGMENTS = ["country", "device"]
STABLE = ("stable", "seasonal")


def _events(name: str, seed: int, windows: int, rate: float) -> list[PredictionEvent | LabelEvent]:
    out: list[PredictionEvent | LabelEvent] = []
    for item in get_scenario(name).events(seed=seed, windows=windows, window_s=WINDOW_S, rate=rate, start=T0):
        if isinstance(item, dict):
            ev = decode_any(orjson.dumps(item))
            if isinstance(ev, PredictionEvent | LabelEvent):
                out.append(ev)
    return out


def _profile(name: str, seed: int, segments: bool) -> ReferenceProfile:
    frame = get_scenario(name).reference(rows=20_000, seed=seed)["fraud"]
    prof = build_profile("fraud", frame)
    return with_segments(prof, frame, SEGMENTS) if segments else prof


def _run(events: list[PredictionEvent | LabelEvent], profile: ReferenceProfile, segments: bool,
         ) -> tuple[list[MetricPoint], list[Any]]:
    settings = MonitorSettings(window="5m", segments=SEGMENTS if segments else [])
    mon = Monitor(settings, {"fraud": profile})
    points: list[MetricPoint] = []
    alerts: list[Any] = []
    for i in range(0, len(events), 2000):
        mon.observe(events[i:i + 2000])
        em = mon.advance()
        points += em.points
        alerts += em.alerts
    em = mon.close_all()
    return points + list(em.points), alerts + list(em.alerts)


def _flags(points: list[MetricPoint]) -> set[tuple[str, str, int]]:
    """(segment or "", feature, window) flagged by a decision method."""
    decision = MonitorSettings().policy.decision_methods
    return {(p.tag("segment") or "", p.tag("feature") or "", int((p.time_ns / 1e9 - T0) // WINDOW_S) - 1)
            for p in points if p.measurement == "drift" and p.field("drifted") is True and p.tag("method") in decision}


def _feature_windows(points: list[MetricPoint]) -> Counter[str]:
    """Feature-windows with drift points, whole model ("") and segments ("segments")."""
    seen = {(p.tag("segment") or "", p.tag("feature") or "", p.time_ns) for p in points if p.measurement == "drift"}
    return Counter("" if s == "" else "segments" for s, _, _ in seen)


def detection(seeds: int = 3, windows: int = 10, rate: float = 3.4) -> dict[str, Any]:
    """The segment-only shift and the stable scenarios with segments off and on (see the module docstring).
    ``rate``: events/s of event time before segment_shift's 4x (3.4 → ~4,080 events per 5-minute window)."""
    shift: list[dict[str, Any]] = []
    spec = get_scenario("segment_shift")
    change = spec.changes[0]
    assert change.segment is not None
    for seed in range(seeds):
        events = _events("segment_shift", seed, windows, rate)
        per_window = sum(isinstance(e, PredictionEvent) for e in events) / windows
        points, alerts = _run(events, _profile("segment_shift", seed, True), True)
        flags = _flags(points)
        moved = sorted({w for s, _, w in flags if s == change.segment})
        others = sorted({(s or "whole model", f, w) for s, f, w in flags if s != change.segment})
        pages = sorted({(a.labels["alertname"], a.labels.get("segment", "whole model")) for a in alerts
                        if a.status == "firing"})
        shift.append({"seed": seed, "events_per_window": per_window, "segment_flagged_windows": moved,
                      "first_window_flagged": change.start_window in moved,
                      "delay_windows": moved[0] - change.start_window if moved else None,
                      "quiet_elsewhere": not others, "flagged_elsewhere": others, "alerts": pages})
    stable: dict[str, dict[str, Any]] = {}
    for name in STABLE:
        for seed in range(seeds):
            events = _events(name, seed, windows, 10.0)
            for on in (False, True):
                points, alerts = _run(events, _profile(name, seed, on), on)
                flags = _flags(points)
                fw = _feature_windows(points)
                row = stable.setdefault("on" if on else "off", Counter())
                row["model_feature_windows"] += fw[""]
                row["segment_feature_windows"] += fw["segments"]
                row["model_flags"] += sum(1 for s, _, _ in flags if not s)
                row["segment_flags"] += sum(1 for s, _, _ in flags if s)
                row["alerts"] += sum(1 for a in alerts if a.status == "firing")
    return {"segment_shift": shift, "stable": {k: dict(v) for k, v in stable.items()},
            "stable_scenarios": list(STABLE), "seeds": seeds, "windows": windows}


def markdown(res: dict[str, Any]) -> str:
    """Two tables: the segment-only shift per seed, and the stable scenarios with segments off and on."""
    lines = ["**Segment-only shift** (`segment_shift`: country=PL, 5 % of traffic, amount +0.25 sd from window 4; "
             "segments [country, device])", "",
             "| seed | events / window | PL flagged in its first window | PL windows flagged | whole model and "
             "other segments quiet | alerts |", "| ---: | ---: | --- | --- | --- | --- |"]
    for r in res["segment_shift"]:
        alerts = ", ".join(f"{a} [{s}]" for a, s in r["alerts"]) or "none"
        lines.append(f"| {r['seed']} | {r['events_per_window']:,.0f} | {'yes' if r['first_window_flagged'] else 'NO'} "
                     f"| {', '.join(map(str, r['segment_flagged_windows']))} | "
                     f"{'yes' if r['quiet_elsewhere'] else 'NO: ' + str(r['flagged_elsewhere'][:3])} | {alerts} |")
    lines += ["", f"**Stable scenarios with segments off and on** ({', '.join(res['stable_scenarios'])}, "
              f"{res['seeds']} seed(s), {res['windows']} windows of ~3,000 events, the same events)", "",
              "| segments | whole-model feature-windows | flagged | segment feature-windows | flagged | alerts fired |",
              "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for key in ("off", "on"):
        s = res["stable"][key]
        lines.append(f"| {key} | {s['model_feature_windows']:,} | {s['model_flags']} | "
                     f"{s['segment_feature_windows']:,} | {s['segment_flags']} | {s['alerts']} |")
    return "\n".join(lines) + "\n"


# -- cost -------------------------------------------------------------------------------------------------------
def _cost_events(n: int, per_second: float, seed: int = 0) -> tuple[list[bytes], pd.DataFrame]:
    """Events with 14 numeric and 6 categorical features, two of them (``country``, ``device``) with 40 values
    (Zipf-like shares: the 20 most frequent get segments, the other 20 pool into ``__other__``), a reference."""
    rng = np.random.default_rng(seed)
    share = 1 / np.arange(1, 41) ** 0.8
    share /= share.sum()
    countries = np.array([f"c{i:02d}" for i in range(40)])
    devices = np.array([f"d{i:02d}" for i in range(40)])

    def frame(rows: int) -> pd.DataFrame:
        cols: dict[str, Any] = {f"n{i}": rng.normal(0, 1, rows).round(5) for i in range(14)}
        cols.update({f"c{i}": rng.choice(list("abcdefgh"), rows) for i in range(4)})
        cols["country"] = countries[rng.choice(40, rows, p=share)]
        cols["device"] = devices[rng.choice(40, rows, p=share)]
        cols["score"] = rng.uniform(0, 1, rows).round(5)
        cols["prediction"] = (cols["score"] >= 0.5).astype(int)
        return pd.DataFrame(cols)

    ref = frame(40_000)
    live = frame(n)
    lat = rng.lognormal(3, 0.3, n).round(3)
    feats = live.drop(columns=["score", "prediction"]).to_dict(orient="records")
    out = [orjson.dumps({"model": "bench", "model_version": "v1", "request_id": f"r{i}",
                         "timestamp": T0 + i / per_second, "features": feats[i], "prediction": int(live["prediction"][i]),
                         "score": float(live["score"][i]), "latency_ms": float(lat[i])})
           for i in range(n)]
    return out, ref


def cost(n: int = 120_000, per_window: int = 20_000, repeats: int = 3) -> dict[str, Any]:
    """Replay and pipeline events/s, state bytes and series, segments off vs on (same events, same process)."""
    from monitor.replay import replay_file

    raw, ref = _cost_events(n, per_window / WINDOW_S)
    base = build_profile("bench", ref)
    seg = with_segments(base, ref, SEGMENTS, 20)
    out: dict[str, Any] = {"events": n, "events_per_window": per_window,
                           "segments": {f: len(v) for f, v in seg.segments.items()}}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "events.jsonl"
        path.write_bytes(b"\n".join(raw) + b"\n")
        decoded = [decode_any(r) for r in raw]
        events = [e for e in decoded if isinstance(e, PredictionEvent)]
        rates: dict[str, list[float]] = defaultdict(list)
        for _ in range(repeats):
            for on in (False, True):
                settings = MonitorSettings(window="5m", segments=SEGMENTS if on else [], labels_topic="")
                profile = seg if on else base
                summary = replay_file(path, {"bench": profile}, Path(tmp) / f"out-{on}", settings)
                rates[f"replay {'on' if on else 'off'}"].append(summary.events / summary.seconds)
                mon = Monitor(settings, {"bench": profile})
                t = time.perf_counter()
                ingest = finalize = 0.0  # CPU seconds: observing events (stage 1) / finalizing windows (stage 2)
                for i in range(0, len(events), 2000):
                    c = time.process_time()
                    mon.observe(events[i:i + 2000])
                    c2 = time.process_time()
                    mon.advance()
                    ingest, finalize = ingest + c2 - c, finalize + time.process_time() - c2
                c = time.process_time()
                mon.close_all()
                finalize += time.process_time() - c
                key = "on" if on else "off"
                rates[f"pipeline {key}"].append(len(events) / (time.perf_counter() - t))
                rates[f"ingest us/event {key}"].append(ingest / len(events) * 1e6)
                rates[f"finalize ms/window {key}"].append(finalize / (n / per_window) * 1e3)
        out["events_per_s"] = {k: statistics.median(v) for k, v in rates.items() if " us/" not in k and " ms/" not in k}
        out["cpu"] = {k: statistics.median(v) for k, v in rates.items() if " us/" in k or " ms/" in k}
        for on in (False, True):
            from monitor.lineprotocol import read_lp

            pts = read_lp(Path(tmp) / f"out-{on}" / "metrics.lp")
            key = "on" if on else "off"
            out[f"series {key}"] = len({(p.measurement, tuple(sorted(p.tags))) for p in pts})
            out[f"points per window {key}"] = len(pts) / (n / per_window)
        # one window's state: in memory (bin counts, sketches) and as the partial record stage 1 sends
        for on in (False, True):
            settings = MonitorSettings(window="5m", segments=SEGMENTS if on else [], labels_topic="")
            mon = Monitor(settings, {"bench": seg if on else base})
            mon.observe(events[:per_window])
            records = mon.source.close_until(T0 + WINDOW_S)
            rec = next(r for r in records if getattr(r, "state", None) is not None)
            state = state_from_wire(rec.state)  # type: ignore[attr-defined]
            out[f"state bytes {'on' if on else 'off'}"] = state.nbytes()
            out[f"wire bytes {'on' if on else 'off'}"] = len(encode(rec))
            closed = next(iter(mon.source.models["bench"].closed.values())).state  # kept for label_grace
            out[f"closed bytes {'on' if on else 'off'}"] = trimmed_nbytes(closed)
    return out


def worker_cpu(n: int = 200_000) -> dict[str, Any]:
    """A ``monitor run`` worker's events/s and CPU per event, segments off vs on, on one broker (same run)."""
    from simulations import bench_throughput as bt

    raw, ref = _cost_events(n, 1000.0)
    out: dict[str, Any] = {"events": n}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name, prof in (("off", build_profile("bench", ref)), ("on", with_segments(build_profile("bench", ref),
                                                                                    ref, SEGMENTS, 20))):
            (work / name).mkdir()
            prof.save(work / name / "bench.json")
        broker = bt.start_kafka(work / "kafka")
        vm = bt.start_victoriametrics(work / "vm")
        try:
            for name in ("off", "on"):
                topic = f"predictions-{name}"
                bt.create_topics(broker.url, {topic: 1})
                bt.produce(broker.url, topic, raw, ["bench"])
                env = {"MONITOR_BROKER": f"kafka://{broker.url}", "MONITOR_REFERENCE": str(work / name),
                       "MONITOR_INFLUX_URL": vm.url, "MONITOR_INFLUX_TOKEN": "bench", "MONITOR_WINDOW": "10s",
                       "MONITOR_ALLOWED_LATENESS": "1s", "MONITOR_IDLE_TIMEOUT": "1s", "MONITOR_LABELS_TOPIC": "",
                       "MONITOR_PARTITIONS": "1", "MONITOR_SEGMENTS": ",".join(SEGMENTS) if name == "on" else ""}
                rate, rss = bt.run_workers(1, broker.url, topic, n, env, work, label=f"-{name}")
                cpu = dict(bt.LAST_CPU)
                out[name] = {"events_per_s": rate, "rss_mb": rss[0],
                             "worker_cpu_us_per_event": cpu["worker 0"] / cpu["events"] * 1e6}
        finally:
            vm.stop()
            broker.stop()
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--skip-worker", action="store_true", help="leave out the streaming worker's CPU (no broker)")
    ap.add_argument("--skip-detection", action="store_true")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    res: dict[str, Any] = {}
    if not args.skip_detection:
        res["detection"] = detection(args.seeds)
        print(markdown(res["detection"]))
    res["cost"] = c = cost()
    eps = c["events_per_s"]
    print(f"cost, 2 segment features x (20 values + __other__), {c['events']:,} events, "
          f"{c['events_per_window']:,} per window, median of 3 (same process):")
    for kind in ("replay", "pipeline"):
        print(f"  {kind:8} events/s: off {eps[kind + ' off']:,.0f}, on {eps[kind + ' on']:,.0f} "
              f"(ratio {eps[kind + ' on'] / eps[kind + ' off']:.2f})")
    cpu = c["cpu"]
    print(f"  pipeline CPU: ingest {cpu['ingest us/event off']:.1f} µs/event off, {cpu['ingest us/event on']:.1f} on; "
          f"finalize {cpu['finalize ms/window off']:.0f} ms/window off, {cpu['finalize ms/window on']:.0f} on")
    print(f"  state per model-window: {c['state bytes off']:,} B off, {c['state bytes on']:,} B on in memory "
          f"(a closed window kept for label_grace: {c['closed bytes off']:,} B off, {c['closed bytes on']:,} B on); "
          f"{c['wire bytes off']:,} B off, {c['wire bytes on']:,} B on as a partial record")
    print(f"  InfluxDB series: {c['series off']:,} off, {c['series on']:,} on (+{c['series on'] - c['series off']:,}); "
          f"points per window {c['points per window off']:,.0f} off, {c['points per window on']:,.0f} on")
    if not args.skip_worker:
        res["worker"] = w = worker_cpu()
        print(f"  worker: off {w['off']['events_per_s']:,.0f} events/s, {w['off']['worker_cpu_us_per_event']:.1f} µs "
              f"CPU/event; on {w['on']['events_per_s']:,.0f} events/s, {w['on']['worker_cpu_us_per_event']:.1f} µs "
              f"CPU/event (ratio {w['on']['worker_cpu_us_per_event'] / w['off']['worker_cpu_us_per_event']:.2f})")
    if args.json:
        args.json.write_bytes(orjson.dumps(res, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY))
    return res


if __name__ == "__main__":
    main()
