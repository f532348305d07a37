"""Population Stability Index on reference-quantile bins."""

from __future__ import annotations

import numpy as np

#: added to every bin's proportion (reference and window) before renormalising, so empty bins stay finite
EPS = 1e-4


def psi(ref: np.ndarray, counts: np.ndarray, eps: float = EPS, mask: np.ndarray | None = None) -> np.ndarray:
    """PSI of window ``counts`` against reference proportions ``ref``, row-wise over stacked features.

    ``PSI = Σ_i (q_i − p_i) · ln(q_i / p_i)`` with ``p`` the reference and ``q`` the window proportions
    (``q = counts / n``), both smoothed before use as ``x_i ← (x_i + ε) / (1 + k·ε)``, where ``k`` is
    the number of real bins in the row (padding bins, ``mask == False``, are left out entirely). The
    smoothing keeps empty bins finite and each smoothed row still sums to 1, so PSI ≥ 0 (it is the
    symmetrised Kullback–Leibler divergence) and PSI(h, h) = 0 exactly. With ``eps=0`` a bin that is
    empty on one side only makes PSI infinite.

    Parameters
    ----------
    ref : ndarray, shape (..., k)
        Reference proportions per bin (rows sum to 1 over the real bins).
    counts : ndarray, shape (..., k)
        Window counts per bin. A row with no counts gives PSI over ``q = 0`` (callers skip it).
    eps : float
        Additive smoothing, default :data:`EPS` = 1e-4.
    mask : ndarray of bool, optional
        ``False`` marks padding bins of a stacked matrix.

    Returns
    -------
    ndarray, shape (...)
        PSI per row.

    Examples
    --------
    >>> round(float(psi(np.array([0.5, 0.5]), np.array([50, 50]))), 6)
    0.0
    >>> round(float(psi(np.array([0.5, 0.5]), np.array([90, 10]), eps=0.0)), 4)  # 0.4·ln 1.8 + 0.4·ln 5
    0.8789
    >>> round(float(psi(np.array([0.5, 0.5]), np.array([90, 10]))), 4)  # smoothed: slightly lower
    0.8784
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
