"""Multiple-testing control across a window's many per-feature tests."""

from __future__ import annotations

import numpy as np


def benjamini_hochberg(p_values: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Benjamini–Hochberg step-up procedure (same as statsmodels ``multipletests(method="fdr_bh")``).

    Returns ``(reject, adjusted)``: which hypotheses are rejected at false-discovery rate ``alpha``, and
    the BH-adjusted p-values (monotone, capped at 1).

    >>> reject, adj = benjamini_hochberg(np.array([0.01, 0.04, 0.03, 0.20]), 0.05)
    >>> reject.tolist(), [round(float(a), 4) for a in adj]
    ([True, False, False, False], [0.04, 0.0533, 0.0533, 0.2])
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    p = np.asarray(p_values, dtype=np.float64)
    m = p.size
    if m == 0:
        return np.zeros(0, dtype=bool), np.zeros(0)
    order = np.argsort(p)
    ranked = p[order] * m / np.arange(1, m + 1)
    adjusted_sorted = np.minimum(np.minimum.accumulate(ranked[::-1])[::-1], 1.0)
    adjusted = np.empty(m)
    adjusted[order] = adjusted_sorted
    return adjusted <= alpha, adjusted
