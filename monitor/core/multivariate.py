"""Multivariate drift: PCA reconstruction error (NannyML's data reconstruction drift), mergeable per window.

At ``reference build`` the model's input features become one numeric matrix: numeric features as they
are (a missing value imputed with the reference mean), categorical features frequency-encoded (a
category becomes its reference share; an unseen one the share of the reference's "other" bucket,
usually 0; a missing one the share of the most frequent category). Columns are standardised and a PCA
(``numpy.linalg.svd``) keeps the fewest components explaining at least :data:`EXPLAINED` of the
variance. An event's reconstruction error is the norm of its standardised row minus its projection
onto those components, ``‖z − V Vᵀ z‖ = sqrt(‖z‖² − ‖Vᵀ z‖²)`` — one small matrix product per batch.
Features that move together the way they did in the reference reconstruct well; a change in *how*
they move together (a correlation flip with every marginal unchanged) does not, even when no single
feature drifts.

A window keeps ``n``, ``Σ e`` and ``Σ e²`` as integers in units of 1e-6 (:func:`accumulate`): adding
states is exact, so any merge order gives the same bits, and the state has constant size. The
statistic is the window's mean error.

**Null.** The PCA is fitted on the even rows of the (time-ordered) reference and the errors are measured
on the odd rows: errors of rows the fit has seen are optimistically small, and at a million events per
window that bias alone would page. Under no drift a window's mean error minus the held-out reference
mean is the difference of two sample means; its variance and skewness at each size of
:data:`~monitor.core.calibration.GRID` come from resampling the held-out errors (normal beyond
20,000 rows), and the threshold is a Cornish–Fisher quantile (:meth:`MultivariateProfile.threshold`).
As for single features, chunks of the held-out rows in time order that differ more than chance allows
add a margin (``structure``: the largest chunk mean minus the reference mean), a pattern over time the
reference already contains.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from scipy import special, stats

from monitor.core.calibration import GRID, TIME_CHUNKS

FEATURE = "__multivariate__"
METHOD = "pca_recon"
#: share of the standardised variance the kept components explain (NannyML's default)
EXPLAINED = 0.65
#: fixed-point unit of the window sums (exact integer addition)
UNIT = 1e6
#: errors are clipped here (in standard deviations): Σ e² (units of 1e-6) of a window then fits in int64
#: up to 9.2 million events even if every event is clipped (typical errors are a few sd)
MAX_ERROR = 1e3
_BLOCK = 8192
_EXACT_BOOTSTRAP_N = 20_000
_FIT_ROWS = 200_000


def accumulate(errors: np.ndarray) -> tuple[int, int, int]:
    """``(n, Σ round(e·1e6), Σ round(e²·1e6))`` of per-event errors, as Python ints (exact, order-free).

    Examples
    --------
    >>> accumulate(np.array([1.0, 2.5, np.nan]))
    (2, 3500000, 7250000)
    >>> a, b = np.array([0.1, 0.2]), np.array([0.3])
    >>> tuple(x + y for x, y in zip(accumulate(a), accumulate(b))) == accumulate(np.concatenate([b, a]))
    True
    """
    e = np.asarray(errors, dtype=np.float64)
    e = np.minimum(e[np.isfinite(e)], MAX_ERROR)
    total = total_sq = 0
    for start in range(0, e.size, _BLOCK):
        block = e[start:start + _BLOCK]
        total += int(np.rint(block * UNIT).astype(np.int64).sum())
        total_sq += int(np.rint(block * block * UNIT).astype(np.int64).sum())
    return int(e.size), total, total_sq


@dataclass(frozen=True)
class MultivariateProfile:
    """The fitted encoder, standardiser and PCA, plus the null of the window mean error.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(4000, 1))
    >>> num = np.hstack([x, 0.9 * x + 0.3 * rng.normal(size=(4000, 1)), rng.normal(size=(4000, 1))])
    >>> mv = fit(["a", "b", "c"], num, [], [], [], [])
    >>> mv.components.shape  # the shared direction of a and b plus one more reach 65 %
    (3, 2)
    >>> same = mv.errors(num[:500], [])
    >>> flipped = mv.errors(num[:500] * np.array([1.0, -1.0, 1.0]), [])  # a and b now move oppositely
    >>> bool(flipped.mean() > mv.threshold(500, 0.9999) > same.mean())
    True
    """

    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    center: np.ndarray
    scale: np.ndarray
    components: np.ndarray
    #: per categorical feature: category -> frequency encoding; ``None`` key: the imputed value
    encodings: tuple[Mapping[str | None, float], ...]
    #: frequency encoding of a category not in the map (the reference's folded "other" share)
    unseen: tuple[float, ...]
    explained: float
    ref_mean: float
    ref_std: float
    ref_n: int
    null_n: np.ndarray
    null_var: np.ndarray
    null_skew: np.ndarray
    structure: float = 0.0

    @property
    def width(self) -> int:
        return len(self.numeric) + len(self.categorical)

    def standardize_numeric(self, numeric: np.ndarray) -> np.ndarray:
        """Standardised numeric columns, ``(N, len(self.numeric))``; missing (NaN, ±inf) → 0 (the mean)."""
        k = len(self.numeric)
        with np.errstate(invalid="ignore", over="ignore"):
            num = (np.asarray(numeric, dtype=np.float64) - self.center[:k]) / self.scale[:k]
        out: np.ndarray = np.where(np.isfinite(num), num, 0.0)
        return out

    def encode_table(self, j: int, categories: Sequence[str]) -> np.ndarray:
        """Standardised encoding of categorical feature ``j`` per slot ``categories`` + unseen + missing."""
        enc, k = self.encodings[j], len(self.numeric) + j
        values = [*(enc.get(c, self.unseen[j]) for c in categories), self.unseen[j], enc[None]]
        out: np.ndarray = (np.array(values, dtype=np.float64) - self.center[k]) / self.scale[k]
        return out

    def errors_standardized(self, z: np.ndarray) -> np.ndarray:
        """``‖z − V Vᵀ z‖`` per row of standardised rows ``z``."""
        proj = z @ self.components
        sq = np.einsum("ij,ij->i", z, z) - np.einsum("ij,ij->i", proj, proj)
        out: np.ndarray = np.sqrt(np.maximum(sq, 0.0))
        return out

    def standardize(self, numeric: np.ndarray, categorical: Sequence[Sequence[str | None]]) -> np.ndarray:
        """``(N, width)`` standardised, imputed rows; ``numeric`` is ``(N, len(self.numeric))``, NaN = missing."""
        x = np.asarray(numeric, dtype=np.float64)
        n = x.shape[0] if x.ndim == 2 else len(categorical[0]) if categorical else 0
        z = np.empty((n, self.width), dtype=np.float64)
        k = len(self.numeric)
        if k:
            z[:, :k] = self.standardize_numeric(x)
        for j, col in enumerate(categorical):
            enc, other = self.encodings[j], self.unseen[j]
            get = enc.get
            z[:, k + j] = [get(v, other) for v in col]
        z[:, k:] -= self.center[k:]
        z[:, k:] /= self.scale[k:]
        return z

    def errors(self, numeric: np.ndarray, categorical: Sequence[Sequence[str | None]]) -> np.ndarray:
        """Per-row reconstruction error ``‖z − V Vᵀ z‖`` (numeric ``(N, len(numeric))``, categorical columns)."""
        return self.errors_standardized(self.standardize(numeric, categorical))

    def moments(self, n: float) -> tuple[float, float]:
        """Variance and skewness of (window mean − reference mean) under no drift at window size ``n``."""
        x = math.log(min(max(n, float(self.null_n[0])), float(self.null_n[-1])))
        grid = np.log(self.null_n.astype(np.float64))
        var = math.exp(float(np.interp(x, grid, np.log(np.maximum(self.null_var, 1e-300)))))
        skew = float(np.interp(x, grid, self.null_skew))
        return var, skew

    def threshold(self, n: float, level: float) -> float:
        """Window mean error above which the window is not a sample of the reference, at ``level``."""
        var, skew = self.moments(n)
        z = float(special.ndtri(level))
        z_cf = z + (z * z - 1.0) * skew / 6.0
        return self.ref_mean + math.sqrt(var) * z_cf + self.structure

    def p_value(self, n: int, mean: float) -> float:
        """One-sided p-value of a window mean error ``mean`` over ``n`` events (normal approximation)."""
        var, _ = self.moments(n)
        return float(special.ndtr((self.ref_mean - mean) / math.sqrt(var))) if var > 0 else \
            (0.0 if mean > self.ref_mean else 1.0)

    # -- JSON ------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "numeric": list(self.numeric), "categorical": list(self.categorical),
            "center": self.center.tolist(), "scale": self.scale.tolist(),
            "components": self.components.tolist(),
            "encodings": [{"categories": [c for c in e if c is not None],
                           "values": [e[c] for c in e if c is not None], "missing": e.get(None, 0.0)}
                          for e in self.encodings],
            "unseen": list(self.unseen), "explained": self.explained, "ref_mean": self.ref_mean,
            "ref_std": self.ref_std, "ref_n": self.ref_n,
            "null": {"n": self.null_n.tolist(), "var": self.null_var.tolist(), "skew": self.null_skew.tolist()},
            "structure": self.structure,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> MultivariateProfile:
        numeric = tuple(str(x) for x in d["numeric"])
        categorical = tuple(str(x) for x in d["categorical"])
        width = len(numeric) + len(categorical)
        center = np.asarray(d["center"], dtype=np.float64)
        scale = np.asarray(d["scale"], dtype=np.float64)
        comps = np.asarray(d["components"], dtype=np.float64)
        if center.shape != (width,) or scale.shape != (width,) or np.any(scale <= 0):
            raise ValueError(f"multivariate: center/scale must be {width} numbers (scale > 0)")
        if comps.ndim != 2 or comps.shape[0] != width or not np.all(np.isfinite(comps)):
            raise ValueError(f"multivariate: components must be a {width} x k matrix of finite numbers")
        encodings: list[dict[str | None, float]] = []
        for e in d["encodings"]:
            cats, vals = [str(c) for c in e["categories"]], [float(v) for v in e["values"]]
            if len(cats) != len(vals):
                raise ValueError("multivariate: each encoding needs as many values as categories")
            enc: dict[str | None, float] = dict(zip(cats, vals, strict=True))
            enc[None] = float(e["missing"])
            encodings.append(enc)
        if len(encodings) != len(categorical) or len(d["unseen"]) != len(categorical):
            raise ValueError("multivariate: one encoding and one unseen value per categorical feature")
        null = d["null"]
        grid = np.asarray(null["n"], dtype=np.int64)
        var = np.asarray(null["var"], dtype=np.float64)
        skew = np.asarray(null["skew"], dtype=np.float64)
        if grid.ndim != 1 or grid.size < 2 or np.any(np.diff(grid) <= 0) or var.shape != grid.shape \
                or skew.shape != grid.shape or np.any(var < 0) or not np.all(np.isfinite(skew)):
            raise ValueError("multivariate: null n/var/skew must be equal-length arrays, n increasing")
        return cls(numeric, categorical, center, scale, comps, tuple(encodings),
                   tuple(float(u) for u in d["unseen"]), float(d["explained"]), float(d["ref_mean"]),
                   float(d["ref_std"]), int(d["ref_n"]), grid, var, skew, float(d["structure"]))


def moved(profile: MultivariateProfile, mean: float, n: int) -> str:
    """The "what moved" line of a drifted window's multivariate statistic.

    >>> import numpy as np
    >>> p = MultivariateProfile(("a", "b"), (), np.zeros(2), np.ones(2), np.eye(2)[:, :1], (), (), 0.7, 1.0, 0.5,
    ...                         1000, np.array([50, 100]), np.array([1e-3, 5e-4]), np.zeros(2))
    >>> moved(p, 1.25, 4000)[:64]
    'mean reconstruction error 1.25 vs 1 in the reference (+25%) over'
    """
    rel = mean / profile.ref_mean - 1.0 if profile.ref_mean > 0 else math.inf
    return (f"mean reconstruction error {mean:.3g} vs {profile.ref_mean:.3g} in the reference ({rel:+.0%}) over {n} "
            "events: the features no longer move together as they did")


def drifted_moved(reference: Any, drift: Sequence[Any]) -> dict[str, str]:
    """``{FEATURE: moved(...)}`` when the window's multivariate result is drifted, else ``{}``
    (``reference``: a :class:`~monitor.core.reference.ReferenceProfile`; ``drift``: its DriftResults)."""
    mv = getattr(reference, "multivariate", None)
    for d in drift:
        if d.feature == FEATURE and d.method == METHOD and d.drifted and mv is not None:
            return {FEATURE: moved(mv, d.score, d.n)}
    return {}


def fit(numeric_names: Sequence[str], numeric: np.ndarray, categorical_names: Sequence[str],
        categorical: Sequence[Sequence[str | None]], frequencies: Sequence[Mapping[str, float]],
        other: Sequence[float], *, explained: float = EXPLAINED, resamples: int = 400,
        rng: np.random.Generator | None = None) -> MultivariateProfile:
    """Fit on reference rows in time order (``numeric`` ``(m, len(numeric_names))``, NaN = missing;
    ``categorical`` one column per name; ``frequencies`` each category's reference share; ``other`` the
    share of categories folded away). See the module docstring for every step.

    Raises
    ------
    ValueError
        With fewer than 2 features or fewer than 100 rows.
    """
    rng = rng if rng is not None else np.random.default_rng(0)
    x = np.asarray(numeric, dtype=np.float64).reshape(-1, len(numeric_names))
    m = x.shape[0] if numeric_names else len(categorical[0]) if categorical else 0
    width = len(numeric_names) + len(categorical_names)
    if width < 2 or m < 100:
        raise ValueError(f"multivariate drift needs >= 2 features and >= 100 rows (got {width}, {m})")
    encodings: list[dict[str | None, float]] = []
    for freq in frequencies:
        enc: dict[str | None, float] = {str(k): float(v) for k, v in freq.items()}
        enc[None] = max(enc.values(), default=0.0)  # a missing category: the most frequent one
        encodings.append(enc)
    raw = np.empty((m, width), dtype=np.float64)
    k = len(numeric_names)
    with np.errstate(invalid="ignore"):
        means = np.array([np.nanmean(c) if np.isfinite(c).any() else 0.0 for c in x.T]) if k else np.zeros(0)
    if k:
        raw[:, :k] = np.where(np.isfinite(x), x, means)
    for j, col in enumerate(categorical):
        get, o = encodings[j].get, float(other[j])
        raw[:, k + j] = [get(v, o) for v in col]
    fit_rows, held = raw[0::2], raw[1::2]
    if fit_rows.shape[0] > _FIT_ROWS:
        fit_rows = fit_rows[np.linspace(0, fit_rows.shape[0] - 1, _FIT_ROWS).astype(np.int64)]
    center = fit_rows.mean(axis=0)
    scale = fit_rows.std(axis=0)
    scale = np.where(scale > 1e-12 * np.maximum(np.abs(center), 1.0), scale, 1.0)
    z = (fit_rows - center) / scale
    _, sv, vt = np.linalg.svd(z, full_matrices=False)
    var = sv ** 2
    share = np.cumsum(var) / var.sum() if var.sum() > 0 else np.ones_like(var)
    keep = int(np.searchsorted(share, explained - 1e-12) + 1)
    comps = vt[:keep].T.copy()
    prof = MultivariateProfile(tuple(numeric_names), tuple(categorical_names), center, scale, comps,
                               tuple(encodings), tuple(float(o) for o in other), float(share[keep - 1]),
                               0.0, 0.0, 0, GRID.copy(), np.zeros(GRID.size), np.zeros(GRID.size))
    hz = (held - center) / scale
    proj = hz @ comps
    e = np.sqrt(np.maximum(np.einsum("ij,ij->i", hz, hz) - np.einsum("ij,ij->i", proj, proj), 0.0))
    return _calibrated(prof, e, resamples, rng)


def _calibrated(prof: MultivariateProfile, e: np.ndarray, resamples: int,
                rng: np.random.Generator) -> MultivariateProfile:
    m = e.size
    mu, sd = float(e.mean()), float(e.std())
    skew_e = float(((e - mu) ** 3).mean() / sd ** 3) if sd > 0 else 0.0
    ref_var = sd * sd / m
    variances, skews = [], []
    for n in GRID.tolist():
        if n <= _EXACT_BOOTSTRAP_N:
            means = e[rng.integers(0, m, size=(resamples, n))].mean(axis=1)
            var_w = float(means.var(ddof=1))
            sk_w = float(stats.skew(means)) if var_w > 0 else 0.0
        else:
            var_w, sk_w = sd * sd / n, skew_e / math.sqrt(n)
        total = var_w + ref_var
        variances.append(total)
        skews.append(sk_w * var_w ** 1.5 / total ** 1.5 if total > 0 else 0.0)
    out = MultivariateProfile(prof.numeric, prof.categorical, prof.center, prof.scale, prof.components,
                              prof.encodings, prof.unseen, prof.explained, mu, sd, m, GRID.copy(),
                              np.array(variances), np.array(skews))
    # time structure: chunk means of the held-out errors (time order) more dispersed than chance
    chunks = [c for c in np.array_split(e, TIME_CHUNKS) if c.size]
    if len(chunks) >= 5 and min(c.size for c in chunks) >= GRID[0]:
        cm = np.array([c.mean() for c in chunks])
        size = float(np.mean([c.size for c in chunks]))
        expected = out.moments(size)[0] - ref_var
        k = cm.size
        if expected > 0 and float(cm.var(ddof=1)) > expected * (1.0 + 3.0 * math.sqrt(2.0 / (k - 1))):
            out = replace(out, structure=max(float(cm.max()) - mu, 0.0))
    return out
