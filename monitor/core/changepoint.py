"""Change points of a model version's error rate and latency, decided per finalized window.

They run on finalized windows (stage 2), so they see the same numbers however producers key their events
and however many workers share the input: a per-event detector (river's ADWIN or Page-Hinkley fed event by
event) would see each partition's share of the stream, and its verdict would depend on the keying.

Both are two-sample tests of the window against the recent windows of the same model version (the last
``change_history_windows`` windows since the last change, at least 3):

* **Errors**: a one-sided binomial test of the window's error count against the pooled rate of the
  history, taken at its upper 99.9 % confidence bound (the baseline is itself a sample), at level
  ``ERROR_ALPHA``; the rate must also have doubled.
* **Latency**: the window's ``log(p95)`` against the history's mean, in units of its noise: the larger of
  the window's own sampling error (the delta method on the latency sketch: ``√(q(1−q)/n) · d log Q/dq``
  around q = 0.95) and the spread of the history's values. A mark needs ``z ≥ latency_change_z`` and a
  ratio of at least ``latency_change_min_ratio``.

A window that is marked starts a new history (the change is marked where it starts, not in every window
after it). The state is the histories' numbers: :meth:`ChangeDetector.to_dict` /
:meth:`ChangeDetector.from_dict` carry it through checkpoints. ``python -m simulations.bench_changepoint``
measures false marks on stable traffic against the delay on shifted traffic (docs/alerts.md).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from monitor.config import PolicyConfig
from monitor.core.sketch import LatencySketch

#: binomial test level for an error-rate change
ERROR_ALPHA = 1e-5
#: fewer history windows than this: no verdict yet
MIN_HISTORY = 3
#: the latency sketch's resolution in log units (its relative error): the floor of the noise
LOG_RESOLUTION = 0.01


def latency_signal(sketch: LatencySketch) -> tuple[float, float] | None:
    """``(log p95, its sampling variance)`` of a window's latency sketch; None below 20 values.

    >>> s = LatencySketch()
    >>> s.add(np.random.default_rng(0).lognormal(3.0, 0.3, 5000))
    >>> x, var = latency_signal(s)
    >>> round(x, 1), 0.005 < var ** 0.5 < 0.02
    (3.5, True)
    """
    if sketch.count < 20:
        return None
    q93, q95, q97 = sketch.quantiles([0.93, 0.95, 0.97])
    if not q95 > 0:
        return None
    slope = (math.log(max(q97, 1e-9)) - math.log(max(q93, 1e-9))) / 0.04  # d log Q / dq around 0.95
    se = max(math.sqrt(0.95 * 0.05 / sketch.count) * slope, LOG_RESOLUTION)
    return math.log(q95), se * se


@dataclass
class ChangeDetector:
    """Change points of one model version, fed one finalized window at a time.

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> def window(errors, scale):
    ...     s = LatencySketch()
    ...     s.add(rng.lognormal(np.log(20 * scale), 0.4, 1000))
    ...     return errors, 1000, s
    >>> d = ChangeDetector()
    >>> [d.update(*window(10, 1.0)) for _ in range(6)][-1]
    (False, False)
    >>> d.update(*window(60, 1.0))  # 1 % → 6 % errors
    (True, False)
    >>> d.update(*window(10, 3.0))  # p95 tripled
    (False, True)
    >>> d.update(*window(10, 3.0))  # the new level: no new mark
    (False, False)
    """

    policy: PolicyConfig = field(default_factory=PolicyConfig)
    errors: deque[tuple[int, int]] = field(default_factory=deque)
    latency: deque[tuple[float, float]] = field(default_factory=deque)

    def update(self, errors: int, total: int, latency: LatencySketch | None) -> tuple[bool, bool]:
        """(error change, latency change) for the next window."""
        sig = latency_signal(latency) if latency is not None else None
        return self._errors(errors, total), self._latency(sig)

    def _keep(self, history: deque[Any], item: Any) -> None:
        history.append(item)
        while len(history) > self.policy.change_history_windows:
            history.popleft()

    def _errors(self, errors: int, total: int) -> bool:
        if total <= 0:
            return False
        base_err = sum(e for e, _ in self.errors)
        base_n = sum(n for _, n in self.errors)
        flagged = False
        if len(self.errors) >= MIN_HISTORY and base_n >= 200 and base_err < base_n:
            p0 = float(stats.beta.ppf(0.999, base_err + 1, base_n - base_err))
            if errors / total >= 2 * base_err / base_n and p0 < 1:
                flagged = float(stats.binom.sf(errors - 1, total, p0)) < ERROR_ALPHA
        if flagged:
            self.errors.clear()
        self._keep(self.errors, (errors, total))
        return flagged

    def _latency(self, sig: tuple[float, float] | None) -> bool:
        if sig is None:
            return False
        x, var = sig
        flagged = False
        if len(self.latency) >= MIN_HISTORY:
            xs = np.array([v for v, _ in self.latency])
            mean = float(xs.mean())
            noise = max(var, float(xs.var(ddof=1)), float(np.mean([w for _, w in self.latency])))
            z = (x - mean) / math.sqrt(noise * (1 + 1 / len(xs)))
            flagged = z >= self.policy.latency_change_z and x - mean >= math.log(self.policy.latency_change_min_ratio)
        if flagged:
            self.latency.clear()
        self._keep(self.latency, (x, var))
        return flagged

    def to_dict(self) -> dict[str, Any]:
        return {"errors": [list(e) for e in self.errors], "latency": [list(x) for x in self.latency]}

    @classmethod
    def from_dict(cls, d: dict[str, Any], policy: PolicyConfig | None = None) -> ChangeDetector:
        out = cls(policy or PolicyConfig())
        out.errors.extend((int(e), int(n)) for e, n in d.get("errors", []))
        out.latency.extend((float(x), float(v)) for x, v in d.get("latency", []))
        return out
