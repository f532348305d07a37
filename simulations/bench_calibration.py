"""What calibrated thresholds and multivariate drift cost: the pure pipeline with both on vs both off.

    python -m simulations.bench_calibration [--windows 12] [--rate 20] [--repeats 5]

The ``mixed`` scenario's predictions (decoded once) go through ``Monitor.observe`` / ``close_all`` in
batches of 2,000, as ``monitor replay`` and the worker drive it:

* **on** — a calibrated (format 2) profile and the default policy (``pca_recon`` enabled);
* **off** — the same reference built with ``calibrate=False`` (format-1 rules: fixed floors, no
  multivariate model).

The runs alternate, the median of ``--repeats`` each is reported, with the ratio, in CPU time of this
process (``time.process_time``: on a machine shared with other jobs, wall time measures the neighbours
too) and in wall time. Also: the per-event CPU cost of the reconstruction error alone (``Batch.build``
with and without it, 2,000-event batches) and the profile build time with and without calibration.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import numpy as np
import orjson

from monitor.config import MonitorSettings
from monitor.core.aggregate import Batch
from monitor.core.binning import FeatureBinner
from monitor.core.reference import ReferenceProfile, build_profile
from monitor.events import decode_any
from monitor.pipeline import Monitor
from monitor.scenarios import get_scenario
from monitor.types import PredictionEvent

BATCH = 2000


def _replay(events: list[PredictionEvent], profile: ReferenceProfile,
            settings: MonitorSettings) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of one replay."""
    mon = Monitor(settings, {events[0].model: profile})
    c0, t0 = time.process_time(), time.perf_counter()
    for i in range(0, len(events), BATCH):
        mon.observe(events[i:i + BATCH])
        mon.advance()
    mon.close_all()
    return time.process_time() - c0, time.perf_counter() - t0


def run(windows: int = 12, rate: float = 20.0, repeats: int = 5) -> dict[str, Any]:
    spec = get_scenario("mixed")
    model = spec.models[0]
    reference = spec.reference(rows=20_000, seed=0)[model]
    t0 = time.process_time()
    on = build_profile(model, reference)
    build_on = time.process_time() - t0
    t0 = time.process_time()
    off = build_profile(model, reference, calibrate=False)
    build_off = time.process_time() - t0
    events = [e for item in spec.events(seed=0, windows=windows, window_s=300.0, rate=rate)
              if isinstance(item, dict) and "label" not in item
              and isinstance(e := decode_any(orjson.dumps(item)), PredictionEvent)]
    s_on = MonitorSettings(window="5m", labels_topic="")
    s_off = MonitorSettings(window="5m", labels_topic="",
                            policy={"enabled_methods": ["psi", "ks", "wasserstein", "chi2", "js"]})
    t_on, t_off = [], []
    _replay(events[:BATCH * 2], on, s_on)  # warm caches and imports
    for _ in range(repeats):
        t_off.append(_replay(events, off, s_off))
        t_on.append(_replay(events, on, s_on))
    cpu_on, cpu_off = statistics.median(t[0] for t in t_on), statistics.median(t[0] for t in t_off)
    wall_on, wall_off = statistics.median(t[1] for t in t_on), statistics.median(t[1] for t in t_off)
    b_on, b_off = FeatureBinner(on), FeatureBinner(off, multivariate=False)
    batches = [events[i:i + BATCH] for i in range(0, len(events) - BATCH + 1, BATCH)]
    c_on, c_off = [], []
    for _ in range(repeats):
        t0 = time.process_time()
        for b in batches:
            Batch.build(b, b_off)
        c_off.append(time.process_time() - t0)
        t0 = time.process_time()
        for b in batches:
            Batch.build(b, b_on)
        c_on.append(time.process_time() - t0)
    n = len(events)
    mv = on.multivariate
    return {
        "events": n, "features": len(on.numeric) + len(on.categorical),
        "components": int(mv.components.shape[1]) if mv is not None else 0,
        "on_events_per_cpu_s": n / cpu_on, "off_events_per_cpu_s": n / cpu_off, "slowdown_cpu": cpu_on / cpu_off - 1,
        "on_events_per_s": n / wall_on, "off_events_per_s": n / wall_off, "slowdown_wall": wall_on / wall_off - 1,
        "recon_us_per_event": (statistics.median(c_on) - statistics.median(c_off)) / (len(batches) * BATCH) * 1e6,
        "build_s_calibrated": build_on, "build_s_uncalibrated": build_off, "repeats": repeats,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--windows", type=int, default=12)
    ap.add_argument("--rate", type=float, default=20.0)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)
    r = run(args.windows, args.rate, args.repeats)
    print(f"replay of {r['events']:,} predictions ({r['features']} features, {r['components']} PCA components), "
          f"median of {r['repeats']}:")
    print(f"  calibration + multivariate on : {r['on_events_per_cpu_s']:,.0f} events per CPU-second "
          f"({r['on_events_per_s']:,.0f}/s wall)")
    print(f"  both off (format-1 rules)     : {r['off_events_per_cpu_s']:,.0f} events per CPU-second "
          f"({r['off_events_per_s']:,.0f}/s wall)")
    print(f"  slowdown                      : {r['slowdown_cpu']:+.1%} CPU, {r['slowdown_wall']:+.1%} wall "
          "(target <= +10 %)")
    print(f"  reconstruction error alone    : {r['recon_us_per_event']:.2f} us/event")
    print(f"  profile build (20,000 rows)   : {r['build_s_calibrated']:.2f} CPU-s calibrated, "
          f"{r['build_s_uncalibrated']:.2f} CPU-s without")
    print(orjson.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()}).decode())
    return r


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
