"""χ² goodness of fit of window category counts against reference proportions."""

from __future__ import annotations

import numpy as np
from scipy import stats

#: expected share given to a category with zero reference mass (the unseen bucket), so it stays testable
UNSEEN_SHARE = 1e-4


def chi2_test(ref: np.ndarray, counts: np.ndarray, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise Pearson χ² statistic and p-value (df = real bins − 1).

    Expected counts are ``n · p`` with reference proportions ``p``; a bin with ``p = 0`` (a category never
    seen in the reference) gets ``p = UNSEEN_SHARE`` and the row is renormalised, so new categories raise
    the statistic instead of dividing by zero. Where every ``p > 0`` this equals
    ``scipy.stats.chisquare(counts, n·p)``. Padding bins (``mask == False``) are ignored.

    >>> s, p = chi2_test(np.array([0.5, 0.5]), np.array([60, 40]))
    >>> round(float(s), 3), round(float(p), 4)
    (4.0, 0.0455)
    """
    pr = np.asarray(ref, dtype=np.float64)
    c = np.asarray(counts, dtype=np.float64)
    m = np.ones_like(pr, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    pr = np.where(m, np.where(pr > 0, pr, UNSEEN_SHARE), 0.0)
    pr = pr / pr.sum(axis=-1, keepdims=True)
    n = c.sum(axis=-1, keepdims=True)
    expected = n * pr
    terms = np.divide((c - expected) ** 2, expected, out=np.zeros_like(c), where=m & (expected > 0))
    stat = terms.sum(axis=-1)
    df = np.maximum(m.sum(axis=-1) - 1, 1)
    p_value = stats.chi2.sf(stat, df)
    return np.asarray(stat), np.asarray(p_value)
