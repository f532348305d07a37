"""Wasserstein-1 distance on reference-quantile bins, in units of the reference standard deviation."""

from __future__ import annotations

import numpy as np


def wasserstein_binned(ref: np.ndarray, counts: np.ndarray, widths: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """``W1 ≈ Σ |F_ref(e_i) − F_win(e_i)| · (e_{i+1} − e_i) / σ_ref``, row-wise.

    The CDFs are compared at the fine bin edges; ``widths[i]`` is the width of the interval between
    consecutive edges (0 for the open outer bins and for padding). Dividing by the reference standard
    deviation makes the threshold unit-free: a mean shift of ``d`` standard deviations gives ≈ ``d``.

    >>> float(wasserstein_binned(np.array([0.5, 0.5, 0.0]), np.array([0, 5, 5]), np.array([1.0, 0.0]), 1.0))
    0.5
    """
    p = np.asarray(ref, dtype=np.float64)
    c = np.asarray(counts, dtype=np.float64)
    n = c.sum(axis=-1, keepdims=True)
    q = np.divide(c, n, out=np.zeros_like(c), where=n > 0)
    diff = np.abs(np.cumsum(p, axis=-1) - np.cumsum(q, axis=-1))[..., :-1]
    out: np.ndarray = (diff * widths).sum(axis=-1) / np.where(np.asarray(scale) > 0, scale, 1.0)
    return out
