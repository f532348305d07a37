"""Two-sample drift statistics on binned counts: a window against a baseline that is itself a sample.

The other modules of this package compare a window's counts with the reference profile's *proportions*:
the training sample is large and fixed, so it is treated as the population (its size enters only the KS
effective ``n``). A trailing or seasonal baseline (:mod:`monitor.baselines`) is a sum of recent windows —
a finite sample on the same bins, as noisy as the window or nearly so. Here both sides are counts and
every statistic accounts for the noise of both:

* **PSI** — both sides' proportions smoothed as in :func:`~monitor.core.drift.psi.psi`
  (``x ← (x + ε)/(1 + kε)``), so a bin empty on either side stays finite; symmetric in its arguments.
* **KS** — ``D = max |F_a − F_b|`` at the bin edges; p-value from the two-sample Kolmogorov distribution
  with ``n_eff = n·m/(n+m)`` (``kstwo(round(n_eff))`` below 1,000, its limit ``kstwobign`` above), which is
  ``scipy.stats.ks_2samp(…, method="asymp")`` for values that sit on the bins. Error bound against the
  unbinned D as in :mod:`~monitor.core.drift.ks`: ``max_b max(p_a(b), p_b(b))``.
* **χ²** — Pearson's test of homogeneity on the 2 × k contingency table (categories empty on both sides
  left out), ``df = k' − 1``: ``scipy.stats.chi2_contingency(table, correction=False)``.
* **JS**, **Wasserstein** — from both sides' proportions (both are distances between two distributions
  already; nothing changes but where the first one comes from).

All functions are row-wise over stacked features ``(F, k)``; ``mask`` marks real bins (``False``: padding).
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from monitor.core.drift.js import js_distance
from monitor.core.drift.ks import ASYMPTOTIC_MIN_N
from monitor.core.drift.psi import EPS, psi
from monitor.core.drift.wasserstein import wasserstein_binned


def shares(counts: np.ndarray) -> np.ndarray:
    """Row-wise proportions of ``counts`` (a row without counts stays all zero).

    >>> shares(np.array([[1, 3], [0, 0]])).tolist()
    [[0.25, 0.75], [0.0, 0.0]]
    """
    c = np.asarray(counts, dtype=np.float64)
    n = c.sum(axis=-1, keepdims=True)
    out: np.ndarray = np.divide(c, n, out=np.zeros_like(c), where=n > 0)
    return out


def psi_2samp(a: np.ndarray, b: np.ndarray, eps: float = EPS, mask: np.ndarray | None = None) -> np.ndarray:
    """PSI between two count rows, both sides smoothed (see the module docstring); symmetric.

    >>> round(float(psi_2samp(np.array([50, 50]), np.array([90, 10]))), 4)
    0.8784
    >>> float(psi_2samp(np.array([10, 0]), np.array([0, 10]))) == float(psi_2samp(np.array([0, 10]), np.array([10, 0])))
    True
    """
    return psi(shares(a), b, eps=eps, mask=mask)


def ks_2samp_binned(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row-wise two-sample KS on counts over the same bins: ``(D, p_value, error_bound)``.

    >>> d, p, bound = ks_2samp_binned(np.array([5, 5, 5, 5]), np.array([0, 0, 10, 10]))
    >>> float(d), round(float(p), 5), float(bound)  # ks_2samp(…, method="asymp") on the values 0..3: same
    (0.5, 0.00778, 0.5)
    """
    ca = np.asarray(a, dtype=np.float64)
    cb = np.asarray(b, dtype=np.float64)
    n, m = ca.sum(axis=-1), cb.sum(axis=-1)
    pa, pb = shares(ca), shares(cb)
    d = np.abs(np.cumsum(pa, axis=-1) - np.cumsum(pb, axis=-1)).max(axis=-1)
    en = np.where((n > 0) & (m > 0), n * m / np.maximum(n + m, 1.0), 1.0)
    p_value = np.asarray(stats.kstwobign.sf(d * np.sqrt(en)), dtype=np.float64)
    small = en < ASYMPTOTIC_MIN_N
    if np.any(small):
        p_value[small] = stats.kstwo.sf(d[small], np.maximum(np.round(en[small]), 1))
    bound = np.maximum(pa.max(axis=-1), pb.max(axis=-1))
    return np.asarray(d), np.clip(p_value, 0.0, 1.0), np.asarray(bound)


def chi2_2samp(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise Pearson χ² test of homogeneity of two count rows: ``(statistic, p_value)``.

    Categories with no count on either side (and padding) are left out; ``df`` = remaining categories − 1.
    A row with one category left, or an empty side, has statistic 0 and p-value 1.

    >>> s, p = chi2_2samp(np.array([60, 40]), np.array([40, 60]))
    >>> round(float(s), 3), round(float(p), 5)
    (8.0, 0.00468)
    """
    ca = np.asarray(a, dtype=np.float64)
    cb = np.asarray(b, dtype=np.float64)
    real = np.ones_like(ca, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    col = np.where(real, ca + cb, 0.0)
    used = col > 0
    n = np.where(real, ca, 0.0).sum(axis=-1, keepdims=True)
    m = np.where(real, cb, 0.0).sum(axis=-1, keepdims=True)
    total = n + m
    ea = np.divide(n * col, total, out=np.zeros_like(col), where=total > 0)
    eb = np.divide(m * col, total, out=np.zeros_like(col), where=total > 0)
    terms = (np.divide((ca - ea) ** 2, ea, out=np.zeros_like(col), where=used & (ea > 0))
             + np.divide((cb - eb) ** 2, eb, out=np.zeros_like(col), where=used & (eb > 0)))
    k = used.sum(axis=-1)
    ok = (k > 1) & (n[..., 0] > 0) & (m[..., 0] > 0)
    stat = np.where(ok, terms.sum(axis=-1), 0.0)
    p_value = np.where(ok, stats.chi2.sf(stat, np.maximum(k - 1, 1)), 1.0)
    return np.asarray(stat), np.asarray(p_value)


def js_2samp(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Jensen–Shannon distance between two count rows (base 2, in [0, 1]).

    >>> float(js_2samp(np.array([5, 0]), np.array([0, 7])))
    1.0
    """
    return js_distance(shares(a), b)


def wasserstein_2samp(a: np.ndarray, b: np.ndarray, widths: np.ndarray, scale: np.ndarray | float) -> np.ndarray:
    """Wasserstein-1 between two count rows on the same bins, in units of ``scale`` (the reference's sd);
    see :func:`~monitor.core.drift.wasserstein.wasserstein_binned` for ``widths``.

    >>> float(wasserstein_2samp(np.array([4, 4, 0]), np.array([0, 5, 5]), np.array([1.0, 0.0]), 1.0))
    0.5
    """
    return wasserstein_binned(shares(a), b, widths, np.asarray(scale, dtype=np.float64))
