"""Change markers: false marks on stable traffic vs detection delay on shifted traffic, per window.

    python -m simulations.bench_changepoint [--windows 1000] [--reps 20]

The owner of a model marks a window ``change_detected`` when its p95 latency (or error rate) moved away from
the recent windows (monitor/core/changepoint.py). This benchmark runs that detector on

* stable streams — lognormal latency (median 20 ms) with log-sd 0.35 (the simulator's), 0.7 with 1 % of
  calls 10× slower (a heavy tail), and 1.0, each at 100, 1,000 and 10,000 events per window, plus a 1 %
  error rate — and counts *false marks per 1,000 stable windows*;
* shifted streams — 20 windows, then latency × 1.2, × 1.5 or × 3 (or errors 1 % → 3 %) at 1,000 events
  per window — and reports the *delay in windows* (0: marked in the first shifted window) and misses
  within 5 shifted windows.

For contrast, in the same run: river's ``PageHinkley(mode="up")`` with its defaults fed every event's
latency (what the worker ran before: it sees one partition's events, so its verdict also depends on how
producers key their events), counted the same way per window.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
from river import drift as rdrift

from monitor.config import PolicyConfig
from monitor.core.changepoint import ChangeDetector
from monitor.core.sketch import LatencySketch

MEDIAN_MS = 20.0
STABLE = (("log-sd 0.35", 0.35, 0.0), ("log-sd 0.7 + 1% x10", 0.7, 0.01), ("log-sd 1.0", 1.0, 0.0))
TRAFFIC = (100, 1_000, 10_000)
SHIFTS = (("x1.2", 0.35, 1.2), ("x1.5", 0.35, 1.5), ("x3", 0.35, 3.0), ("x1.5 at log-sd 0.7", 0.7, 1.5))
WARMUP, SHIFTED = 20, 5


def latencies(rng: np.random.Generator, n: int, sigma: float, outliers: float, factor: float = 1.0) -> np.ndarray:
    x = rng.lognormal(math.log(MEDIAN_MS), sigma, n) * factor
    if outliers:
        x = np.where(rng.uniform(size=n) < outliers, x * 10.0, x)
    return x


def sketch(values: np.ndarray) -> LatencySketch:
    s = LatencySketch()
    s.add(values)
    return s


class Detector:
    """The window-level detector with given parameters, or river's per-event Page-Hinkley (``policy`` None)."""

    def __init__(self, policy: PolicyConfig | None) -> None:
        self.policy = policy
        self.window = ChangeDetector(policy) if policy is not None else None
        self.ph = rdrift.PageHinkley(mode="up")

    def latency(self, values: np.ndarray) -> bool:
        if self.window is not None:
            return self.window.update(0, values.size, sketch(values))[1]
        fired = False
        for v in values.tolist():
            self.ph.update(v)
            fired |= bool(self.ph.drift_detected)
        return fired


def false_marks(policy: PolicyConfig | None, n: int, sigma: float, outliers: float, windows: int, seed: int) -> int:
    rng = np.random.default_rng([seed, n, int(sigma * 100), int(outliers * 1000)])
    d = Detector(policy)
    return sum(d.latency(latencies(rng, n, sigma, outliers)) for _ in range(windows))


def delays(policy: PolicyConfig | None, sigma: float, factor: float, reps: int, seed: int) -> tuple[list[int], int]:
    out, missed = [], 0
    for r in range(reps):
        rng = np.random.default_rng([seed, r, int(sigma * 100), int(factor * 10)])
        d = Detector(policy)
        for _ in range(WARMUP):
            d.latency(latencies(rng, 1000, sigma, 0.0))
        hit = next((k for k in range(SHIFTED) if d.latency(latencies(rng, 1000, sigma, 0.0, factor))), None)
        if hit is None:
            missed += 1
        else:
            out.append(hit)
    return out, missed


def error_marks(policy: PolicyConfig, windows: int, reps: int, seed: int) -> tuple[int, list[int], int]:
    rng = np.random.default_rng(seed)
    d = ChangeDetector(policy)
    stable = sum(d.update(int(rng.binomial(1000, 0.01)), 1000, None)[0] for _ in range(windows))
    out, missed = [], 0
    for _ in range(reps):
        d = ChangeDetector(policy)
        for _ in range(WARMUP):
            d.update(int(rng.binomial(1000, 0.01)), 1000, None)
        hit = next((k for k in range(SHIFTED) if d.update(int(rng.binomial(1000, 0.03)), 1000, None)[0]), None)
        if hit is None:
            missed += 1
        else:
            out.append(hit)
    return stable, out, missed


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--windows", type=int, default=1000, help="stable windows per condition")
    ap.add_argument("--reps", type=int, default=20, help="shifted runs per shift")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args(argv)
    started = time.perf_counter()
    configs: list[tuple[str, PolicyConfig | None]] = [("river PageHinkley defaults, per event", None)]
    for z in (3.0, 4.0, 5.0, 6.0):
        for ratio in (1.1, 1.2):
            configs.append((f"window: z {z:g}, ratio {ratio:g}",
                            PolicyConfig(latency_change_z=z, latency_change_min_ratio=ratio)))
    print(f"false latency marks per 1,000 stable windows ({args.windows} per cell; max over 100/1,000/10,000 "
          f"events per window); delay in windows after a shift at 1,000 events per window (median, misses of "
          f"{args.reps})\n")
    head = ["configuration", *(s[0] for s in STABLE), *(s[0] for s in SHIFTS)]
    print(" | ".join(head))
    print(" | ".join("---" for _ in head))
    chosen: list[tuple[float, str]] = []
    for name, policy in configs:
        stable_windows = args.windows if policy is not None else max(args.windows // 10, 20)  # river is slow
        cells, worst = [], 0.0
        for _, sigma, outliers in STABLE:
            per = max(1000 * false_marks(policy, n, sigma, outliers, stable_windows, args.seed) / stable_windows
                      for n in (TRAFFIC if policy is not None else (1000,)))
            worst = max(worst, per)
            cells.append(f"{per:.1f}")
        misses, slow = 0, 0.0
        for _, sigma, factor in SHIFTS:
            d, missed = delays(policy, sigma, factor, args.reps, args.seed)
            misses += missed
            med = float(np.median(d)) if d else math.inf
            slow = max(slow, med)
            cells.append(f"{med:.0f} ({missed} missed)")
        print(" | ".join([name, *cells]), flush=True)
        if policy is not None and worst == 0 and misses == 0:
            chosen.append((slow, name))
    default = PolicyConfig()
    stable, d, missed = error_marks(default, args.windows, args.reps, args.seed)
    print(f"\nerrors (default): {1000 * stable / args.windows:.1f} false marks per 1,000 stable windows at 1 %; "
          f"1 % → 3 %: median delay {np.median(d) if d else math.inf:.0f} windows, {missed} missed of {args.reps}")
    print(f"default: z {default.latency_change_z:g}, ratio {default.latency_change_min_ratio:g}; "
          f"without false marks or misses: {', '.join(n for _, n in sorted(chosen)) or 'none'}")
    print(f"({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
