"""Baselines benchmark: memory, checkpoint-topic bytes and time per window of trailing + seasonal baselines.

    python -m simulations.bench_baselines [--days 8] [--window 5m] [--block 1h] [--json out.json]

Two models: ``fraud`` of the ``mixed`` scenario (8 numeric + 3 categorical features, score, prediction; its
profile built from the scenario's reference table) and a wide one (50 numeric + 5 categorical features of
10 categories, as in ``bench_drift``). Each goes through ``--days`` of ``--window`` windows (10,000 rows
each, 48 distinct window states reused) in :class:`monitor.baselines.Baselines` with ``trailing: 7d,
seasonal: 1d`` and the given block. Reported per model, once 7 days are held:

* the blocks held and their bytes in memory (:meth:`Baselines.nbytes`), against keeping every window's
  bin counts of 7 days (the naive ring);
* the JSON bytes of one closed-block record and of the owner checkpoint's baselines part as written to the
  checkpoint topic, and the records a model keeps there (ring slots: the compacted topic's size);
* time per window of comparing against both baselines and admitting the window, against the training
  drift of the same window (statistics + decision) in the same process.

``--behaviour`` adds two runs of the ``fraud`` model on the stable regime of the ``mixed`` scenario (1-hour
windows): the share of windows with a drifted feature against ``seasonal: 1d`` when nothing changes, for
windows of 100 to 3,000 events (the baseline then has as many: the noisiest case); and how long a
permanent +1 sd shift of ``x1`` keeps drifting against ``trailing: 7d`` and against ``seasonal: 1d``
(``adopt_after: 1d``: the shifted windows are admitted after a day).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
from rich.console import Console
from rich.table import Table

from monitor.baselines import Baselines
from monitor.config import MonitorSettings, parse_duration
from monitor.core.aggregate import WindowState
from monitor.core.binning import FeatureBinner
from monitor.core.policy import decide_drift
from monitor.core.reference import ReferenceProfile, build_profile
from monitor.scenarios import get_scenario
from monitor.types import WindowRange

T0 = 1_767_225_600.0
ROWS = 10_000
DISTINCT = 48


def profiles() -> dict[str, ReferenceProfile]:
    rng = np.random.default_rng(0)
    wide = {f"x{i}": rng.normal(0, 1, 100_000) for i in range(50)}
    wide |= {f"c{i}": rng.choice(list("abcdefghij"), 100_000) for i in range(5)}
    fraud = get_scenario("mixed").reference(rows=20_000)["fraud"].drop(columns=["label"])
    return {"fraud (mixed)": build_profile("fraud", fraud), "wide 50+5": build_profile("wide", pd.DataFrame(wide))}


def window_states(binner: FeatureBinner, seed: int = 1) -> list[WindowState]:
    """``DISTINCT`` window states of ``ROWS`` rows drawn around the reference's medians."""
    rng = np.random.default_rng(seed)
    prof = binner.profile
    out = []
    for _ in range(DISTINCT):
        s = WindowState.empty(binner)
        cols = []
        for name in binner.numeric_names:
            p = prof.score if name == "__score__" else prof.numeric.get(name)
            if p is None:  # a numeric __prediction__
                cols.append(rng.integers(0, 2, ROWS).astype(float))
                continue
            e = p.edges
            cols.append(rng.uniform(e[0], e[-1], ROWS) if e.size > 1 else np.full(ROWS, e[0]))
        num, s.num_missing, s.num_oor = binner.numeric_counts(np.column_stack(cols))
        cats = []
        for name in binner.categorical_names:
            cp = prof.prediction if name == "__prediction__" else prof.categorical[name]
            cats.append(list(rng.choice(list(cp.categories), ROWS)))  # type: ignore[union-attr]
        cat, s.cat_missing, s.cat_unseen = binner.categorical_counts(cats)
        s.num_counts, s.cat_counts, s.events = num, cat, ROWS
        out.append(s)
    return out


def run(name: str, ref: ReferenceProfile, settings: MonitorSettings, days: float) -> dict[str, Any]:
    binner = FeatureBinner(ref)
    states = window_states(binner)
    b = Baselines(settings)
    size = settings.window_s
    n = int(days * 86_400 / size)
    week = int(7 * 86_400 / size)
    per_window: list[float] = []
    training: list[float] = []
    records: list[int] = []
    ncat = {k: len(p.categories) + 1 for k, p in ref.categorical.items()}
    held = 0
    for w in range(n):
        s = states[w % DISTINCT]
        rng = WindowRange(T0 + w * size, T0 + (w + 1) * size)
        t = time.perf_counter()
        compared = b.compare("m", rng, s, binner)
        b.admit("m", rng, s, binner, compared)
        per_window.append(time.perf_counter() - t)
        if w >= week:
            t = time.perf_counter()
            assert s.num_counts is not None and s.cat_counts is not None
            decide_drift(binner.drift(s.num_counts, s.cat_counts, settings.policy.enabled_methods),
                         settings.policy, ncat, s.events)
            training.append(time.perf_counter() - t)
        records += [len(orjson.dumps(v)) for _, v in b.records("m")]
        if w == week:
            held = b.nbytes("m")
    ring = b.rings["m"]
    state_bytes = states[0].num_counts.nbytes + states[0].cat_counts.nbytes  # type: ignore[union-attr]
    slots = b._slots("m")
    return {
        "model": name, "features": f"{len(binner.numeric_names)} numeric, {len(binner.categorical_names)} categorical",
        "windows": n, "blocks_held": len(ring.blocks), "memory_bytes": held,
        "naive_7d_bytes": week * state_bytes, "window_state_bytes": state_bytes,
        "record_bytes": int(statistics.median(records)), "checkpoint_bytes": len(orjson.dumps(b.checkpoint("m"))),
        "ring_slots": slots, "topic_bytes": slots * int(statistics.median(records)),
        "per_window_ms": 1000 * statistics.median(per_window[week:]),
        "training_ms": 1000 * statistics.median(training),
    }


def stable_state(binner: FeatureBinner, n: int, seed: int, shift: float = 0.0) -> WindowState:
    """A window of ``n`` rows of the ``mixed`` scenario's stable regime (x1 shifted by ``shift`` sd)."""
    df = get_scenario("mixed").reference(rows=n, seed=seed)["fraud"]
    df["x1"] = df["x1"] + shift
    cols = {"__score__": "score", "__prediction__": "prediction"}
    s = WindowState.empty(binner)
    s.num_counts, _, _ = binner.numeric_counts(
        np.column_stack([df[cols.get(c, c)].to_numpy(np.float64) for c in binner.numeric_names]))
    cats = [[("true" if v else "false") if isinstance(v, bool | np.bool_) else str(v) for v in df[cols.get(c, c)]]
            for c in binner.categorical_names]
    s.cat_counts, _, _ = binner.categorical_counts(cats)
    s.events = n
    return s


def behaviour(days: int = 15) -> dict[str, Any]:
    ref = profiles()["fraud (mixed)"]
    binner = FeatureBinner(ref)
    hour = 3600.0
    null: dict[int, tuple[int, int]] = {}
    for n in (100, 300, 1000, 3000):
        b = Baselines(MonitorSettings(window="1h", labels_topic="", baselines={"seasonal": "1d", "min_events": 1}))
        compared = drifted = 0
        for w in range(24 * days):
            s = stable_state(binner, n, 1000 + w)
            rng = WindowRange(T0 + w * hour, T0 + (w + 1) * hour)
            c = b.compare("m", rng, s, binner)
            b.admit("m", rng, s, binner, c)
            if c:
                compared += 1
                drifted += any(d.drifted for d in c[0].drift)
        null[n] = (drifted, compared)
    shift_at, last = 24 * 8, {}
    b = Baselines(MonitorSettings(window="1h", labels_topic="", baselines={
        "trailing": "7d", "seasonal": "1d", "min_events": 1, "adopt_after": "1d"}))
    for w in range(24 * 20):
        s = stable_state(binner, 2000, 5000 + w, 1.0 if w >= shift_at else 0.0)
        rng = WindowRange(T0 + w * hour, T0 + (w + 1) * hour)
        c = b.compare("m", rng, s, binner)
        b.admit("m", rng, s, binner, c)
        for x in c:
            if w >= shift_at and any(d.drifted for d in x.drift if d.feature == "x1"):
                last[x.name] = w
    return {"null": {str(n): v for n, v in null.items()}, "permanent_hours": {k: v - shift_at + 1 for k, v in last.items()}}


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--days", type=float, default=8.0)
    ap.add_argument("--window", default="5m")
    ap.add_argument("--block", default="1h")
    ap.add_argument("--json", default=None)
    ap.add_argument("--behaviour", action="store_true", help="also measure false alarms and a permanent shift")
    args = ap.parse_args(argv)
    if args.days <= 7:
        ap.error("--days must be more than 7 (the trailing baseline is 7 days)")
    settings = MonitorSettings(window=args.window, labels_topic="", baselines={
        "trailing": "7d", "seasonal": "1d", "block": args.block, "min_events": 1, "exclude_drifted": False})
    rows = [run(name, ref, settings, args.days) for name, ref in profiles().items()]
    table = Table(title=f"baselines: trailing 7d + seasonal 1d, {args.window} windows, {args.block} blocks "
                        f"({int(7 * 86_400 / parse_duration(args.window)):,} windows in 7 days)")
    for col in ("model", "blocks held", "memory", "every window of 7 d", "block record", "checkpoint part",
                "topic per model", "per window", "training drift", "ratio"):
        table.add_column(col, justify="left" if col == "model" else "right")
    for r in rows:
        table.add_row(f"{r['model']} ({r['features']})", str(r["blocks_held"]), f"{r['memory_bytes'] / 1e6:.2f} MB",
                      f"{r['naive_7d_bytes'] / 1e6:.1f} MB", f"{r['record_bytes'] / 1e3:.1f} kB",
                      f"{r['checkpoint_bytes'] / 1e3:.1f} kB",
                      f"{r['ring_slots']} × {r['record_bytes'] / 1e3:.1f} kB = {r['topic_bytes'] / 1e6:.2f} MB",
                      f"{r['per_window_ms']:.2f} ms", f"{r['training_ms']:.2f} ms",
                      f"{r['per_window_ms'] / r['training_ms']:.1f}×")
    console = Console(width=220)
    console.print(table)
    out: dict[str, Any] = {"models": rows}
    if args.behaviour:
        got = out["behaviour"] = behaviour()
        b = Table(title="against seasonal 1d, nothing changing (1-hour windows): windows with a drifted feature")
        for col in ("events per window", "windows compared", "drifted", "share"):
            b.add_column(col, justify="right")
        for n, (drifted, compared) in got["null"].items():
            b.add_row(f"{int(n):,}", str(compared), str(drifted), f"{drifted / compared:.1%}")
        console.print(b)
        console.print("a permanent +1 sd shift of x1 (2,000 events per hour, adopt_after 1d) drifts for: "
                      + ", ".join(f"{k} {h} h" for k, h in sorted(got["permanent_hours"].items())))
    if args.json:
        Path(args.json).write_bytes(orjson.dumps(out, option=orjson.OPT_INDENT_2))
    return rows


if __name__ == "__main__":
    main()
