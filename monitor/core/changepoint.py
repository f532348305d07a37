"""The latency change marker: which Page-Hinkley detector the worker runs, on which signal.

Per event, ``log1p(latency_ms)`` goes to river's ``PageHinkley(mode="up")`` with ``alpha = 1`` (no
forgetting) and ``delta``/``threshold`` from :class:`~monitor.config.PolicyConfig`
(``latency_change_delta``, ``latency_change_threshold``, ``latency_change_min_instances``); a window in
which it fires is marked ``change_detected`` and a LatencyRegression page mentions it.

Why these choices (``python -m simulations.bench_page_hinkley``, figures in docs/alerts.md):

* the logarithm makes the parameters scale-free — the same ``delta`` means "the typical call got
  ``e^delta`` times slower" for a 5 ms and a 500 ms service, where raw milliseconds would need per-service
  tuning;
* river's default forgetting factor 0.9999 turns the cumulative sum into an AR(1) process whose own
  noise (σ/√(2(1−α)) ≈ 70 σ) crosses the threshold: with river's defaults the marker was set in every
  window of the demo, stable ones included.
"""

from __future__ import annotations

import numpy as np
from river import drift as rdrift

from monitor.config import PolicyConfig


def latency_signal(latency_ms: np.ndarray) -> np.ndarray:
    """What the detector sees: ``log1p`` of the latency in milliseconds (negative values clipped to 0).

    >>> latency_signal(np.array([0.0, np.e - 1.0])).tolist()
    [0.0, 1.0]
    """
    out: np.ndarray = np.log1p(np.maximum(latency_ms, 0.0))
    return out


def latency_detector(policy: PolicyConfig) -> rdrift.PageHinkley:
    """A fresh upward Page-Hinkley detector with the policy's parameters.

    >>> ph = latency_detector(PolicyConfig())
    >>> (ph.mode, ph.alpha) == ("up", 1.0)
    True
    """
    return rdrift.PageHinkley(mode="up", alpha=1.0, delta=policy.latency_change_delta,
                              threshold=policy.latency_change_threshold,
                              min_instances=policy.latency_change_min_instances)
