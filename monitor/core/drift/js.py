"""Jensen–Shannon distance between binned distributions."""

from __future__ import annotations

import numpy as np


def js_distance(ref: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Jensen–Shannon *distance* (square root of the divergence, base 2, in [0, 1]), row-wise.

    Zero-probability bins need no smoothing: ``0·log 0 = 0``.

    >>> float(js_distance(np.array([1.0, 0.0]), np.array([0, 10])))
    1.0
    >>> float(js_distance(np.array([0.5, 0.5]), np.array([5, 5])))
    0.0
    """
    p = np.asarray(ref, dtype=np.float64)
    c = np.asarray(counts, dtype=np.float64)
    n = c.sum(axis=-1, keepdims=True)
    q = np.divide(c, n, out=np.zeros_like(c), where=n > 0)
    m = 0.5 * (p + q)

    def kl(a: np.ndarray) -> np.ndarray:
        ratio = np.divide(a, m, out=np.ones_like(a), where=(a > 0) & (m > 0))
        return np.asarray((a * np.log2(ratio)).sum(axis=-1))

    div = np.clip(0.5 * kl(p) + 0.5 * kl(q), 0.0, 1.0)
    out: np.ndarray = np.sqrt(div)
    return out
