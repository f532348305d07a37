"""Population Stability Index on reference-quantile bins."""

from __future__ import annotations

import numpy as np

#: added to every bin's proportion (reference and window) before renormalising, so empty bins stay finite
EPS = 1e-4




def psi(ref: np.ndarray, counts: np.ndarray, eps: float = EPS, mask: np.ndarray | None = None) -> np.ndarray:
    """PSI of window ``counts`` against reference proportions ``ref``, row-wise over stacked features.

    ``PSI = Σ (q_i − p_i) · ln(q_i / p_i)`` with ``p`` the reference and ``q`` the window proportions, both
    smoothed as ``(x + ε) / (1 + k·ε)`` (ε = 1e-4, k = number of real bins in the row; padding bins given by
    ``mask == False`` are left out). PSI ≥ 0 and PSI(h, h) = 0.

    >>> round(float(psi(np.array([0.5, 0.5]), np.array([50, 50]))), 6)
    0.0
    >>> round(float(psi(np.array([0.5, 0.5]), np.array([90, 10]))), 4)
    0.8789
    """
    p = np.asarray(ref, dtype=np.float64)
    c = np.asarray(counts, dtype=np.float64)
    n = c.sum(axis=-1, keepdims=True)
    q = np.divide(c, n, out=np.zeros_like(c), where=n > 0)
    m = np.ones_like(p, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    k = m.sum(axis=-1, keepdims=True)
    ps = np.where(m, (p + eps) / (1 + k * eps), 1.0)
    qs = np.where(m, (q + eps) / (1 + k * eps), 1.0)
    out: np.ndarray = ((qs - ps) * np.log(qs / ps)).sum(axis=-1)
    return out
