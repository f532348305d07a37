"""Null distributions of the drift statistics, estimated from the reference itself at ``reference build``.

What "no drift" means here. The window (``n`` rows) and the reference (``m`` rows) are both finite samples
of one population; the reference's fine-bin proportions ``p̂`` are its best estimate. Under that null a
window's statistic is ``S(p̂, q̂_n)`` with ``p̂`` itself a sample, so it is simulated as
``S(p̂*_m, q̂*_n)`` with ``p̂*_m ~ Multinomial(m, p̂)/m`` and ``q̂*_n ~ Multinomial(n, p̂)/n``: both sides
finite. When ``n ≪ m`` the window's noise dominates; when ``n ≫ m`` the reference's does, and the
threshold stops falling at about the noise of an ``m``-row reference (a million-event window cannot be
held to a precision the reference does not have). The statistics are the same binned functions the
monitor computes at run time (``monitor.core.drift``), so this is the null of exactly what is compared.

Stored per feature and method, at a log-spaced grid of window sizes (:data:`GRID`, 50 … 1e6): the mean
and variance of ``S**power`` over ``resamples`` draws and the empirical 0.99 quantile of ``S``. The
threshold at level ``1 − a`` for any ``n`` interpolates mean and variance linearly in ``log n`` (both
are smooth power laws) and takes the quantile of a gamma distribution with those moments (exact for χ²
type statistics such as PSI and Cramér's V², conservative for the Gaussian-tailed KS D²), so levels far
beyond what a few hundred resamples can see (0.99999) are still defined. The stored empirical 0.99
quantiles let tests check the tail model against the simulation.

**Time structure.** Chunks of the reference in time order (its ``timestamp`` column, else row order) are
compared with the whole reference. When they differ more than i.i.d. chunks would (mean chunk statistic
above the simulated mean at the chunk size by more than 3 standard errors), the reference contains a
pattern over time (a daily or weekly cycle, say): its size, ``structure``, is the largest chunk statistic
minus the statistic's mean for i.i.d. chunks of that size, and it is *added* to the i.i.d. quantile (a
window's distance to the reference is at most its own sampling noise plus the distance between its
moment of the cycle and the whole reference: the triangle inequality of the distances). A window as
different from the reference as the reference's own chunks are from it is not drift.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import special

from monitor.core.drift.chi2 import chi2_test
from monitor.core.drift.js import js_distance
from monitor.core.drift.psi import psi
from monitor.core.drift.wasserstein import wasserstein_binned

#: window sizes the null is simulated at (log-spaced; interpolated in log n in between)
GRID = np.unique(np.round(np.geomspace(50, 1_000_000, 15))).astype(np.int64)
DEFAULT_RESAMPLES = 400
#: chunks the time-ordered reference is cut into to look for time structure
TIME_CHUNKS = 20
#: ``S**power`` is modelled as gamma: 2 for statistics that are square roots of χ²-like sums
POWER = {"psi": 1.0, "ks": 2.0, "wasserstein": 1.0, "chi2": 2.0, "js": 2.0}

#: a statistic of stacked rows: (reference proportions (B, k), window counts (B, k)) -> (B,)
StatFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class NullModel:
    """Null distribution of one statistic of one feature as a function of the window size ``n``.

    Examples
    --------
    >>> m = NullModel(np.array([100, 10_000]), np.array([1e-2, 1e-4]), np.array([1e-4, 1e-8]),
    ...               np.array([0.3, 0.03]), power=1.0)
    >>> round(m.threshold(1000, 0.99), 4)  # mean 1e-3, sd 1e-3 at n = 1,000: gamma(1) 0.99 quantile
    0.0046
    >>> m.threshold(20, 0.99) == m.threshold(100, 0.99)  # below the grid: its first point (conservative)
    True
    """

    n: np.ndarray
    mean: np.ndarray
    var: np.ndarray
    q99: np.ndarray
    power: float = 1.0
    #: time-structure margin added to the i.i.d. quantile (0 without time structure)
    structure: float = 0.0

    def __post_init__(self) -> None:
        # log-log tables, computed once: a threshold is asked for per statistic and window
        object.__setattr__(self, "_log", (np.log(self.n.astype(np.float64)).tolist(),
                                          np.log(np.maximum(self.mean, 1e-300)).tolist(),
                                          np.log(np.maximum(self.var, 1e-300)).tolist()))

    def moments(self, n: float) -> tuple[float, float]:
        """Mean and variance of ``S**power`` at window size ``n`` (log-log interpolation, clamped)."""
        grid, log_mean, log_var = self._log  # type: ignore[attr-defined]
        x = min(max(math.log(max(n, 1.0)), grid[0]), grid[-1])
        i = min(bisect.bisect_right(grid, x), len(grid) - 1)
        w = (x - grid[i - 1]) / (grid[i] - grid[i - 1])
        return (math.exp(log_mean[i - 1] + w * (log_mean[i] - log_mean[i - 1])),
                math.exp(log_var[i - 1] + w * (log_var[i] - log_var[i - 1])))

    def threshold(self, n: float, level: float) -> float:
        """The statistic's ``level`` quantile under no drift at window size ``n`` (plus :attr:`structure`)."""
        mean, var = self.moments(n)
        if mean <= 1e-250 or var <= 1e-250:
            q = mean
        else:
            shape = mean * mean / var
            q = float(special.gammaincinv(shape, level)) * var / mean  # gamma(shape, scale).ppf(level)
        return float(q ** (1.0 / self.power)) + self.structure

    def to_dict(self) -> dict[str, Any]:
        return {"mean": self.mean.tolist(), "var": self.var.tolist(), "q99": self.q99.tolist(),
                "power": self.power, "structure": self.structure}

    @classmethod
    def from_dict(cls, grid: np.ndarray, d: Mapping[str, Any], where: str) -> NullModel:
        arrays = [np.asarray(d[k], dtype=np.float64) for k in ("mean", "var", "q99")]
        if any(a.shape != grid.shape or not np.all(np.isfinite(a)) or np.any(a < 0) for a in arrays):
            raise ValueError(f"{where}: null mean/var/q99 must be {grid.size} finite non-negative numbers")
        power, structure = float(d["power"]), float(d["structure"])
        if power <= 0 or not math.isfinite(structure) or structure < 0:
            raise ValueError(f"{where}: null power must be > 0 and structure >= 0")
        return cls(grid, arrays[0], arrays[1], arrays[2], power, structure)


def thresholds(requests: Sequence[tuple[NullModel, float]], level: float) -> list[float]:
    """:meth:`NullModel.threshold` of many ``(model, n)`` pairs with one vectorised gamma quantile call.

    >>> m = NullModel(np.array([100, 10_000]), np.array([1e-2, 1e-4]), np.array([1e-4, 1e-8]),
    ...               np.array([0.3, 0.03]), power=2.0)
    >>> thresholds([(m, 1000), (m, 50)], 0.99) == [m.threshold(1000, 0.99), m.threshold(50, 0.99)]
    True
    """
    if not requests:
        return []
    mom = np.array([model.moments(n) for model, n in requests], dtype=np.float64).reshape(-1, 2)
    mean, var = mom[:, 0], mom[:, 1]
    ok = (mean > 1e-250) & (var > 1e-250)
    with np.errstate(divide="ignore", invalid="ignore"):
        shape = np.where(ok, mean * mean / np.where(ok, var, 1.0), 1.0)
        q = np.where(ok, special.gammaincinv(shape, level) * var / np.where(ok, mean, 1.0), mean)
    return [float(qi ** (1.0 / model.power)) + model.structure for qi, (model, _) in zip(q.tolist(), requests,
                                                                                          strict=True)]


def nulls_to_dict(nulls: Mapping[str, NullModel]) -> dict[str, Any]:
    """JSON form: the shared grid once, then each method's arrays."""
    grid = next(iter(nulls.values())).n if nulls else GRID
    return {"n": grid.tolist(), "methods": {k: v.to_dict() for k, v in nulls.items()}}


def nulls_from_dict(d: Mapping[str, Any], where: str) -> dict[str, NullModel]:
    grid = np.asarray(d["n"], dtype=np.int64)
    if grid.ndim != 1 or grid.size < 2 or np.any(np.diff(grid) <= 0) or grid[0] < 1:
        raise ValueError(f"{where}: null grid n must be increasing positive integers")
    return {str(k): NullModel.from_dict(grid, v, f"{where} {k}") for k, v in d["methods"].items()}


# -- the statistics, on stacked rows, exactly as monitor.core.binning computes them ---------------------
def numeric_stats(proportions: np.ndarray, psi_starts: np.ndarray, edges: np.ndarray,
                  std: float) -> dict[str, StatFn]:
    """PSI (coarse bins), binned KS D and Wasserstein/σ of one numeric feature, row-wise."""
    widths = np.diff(edges) if edges.size > 1 else np.zeros(0)
    w = np.zeros(proportions.size - 1)
    w[: widths.size] = widths
    scale = std if std > 0 else 1.0

    def coarse(a: np.ndarray) -> np.ndarray:
        return np.add.reduceat(a, psi_starts, axis=-1)

    return {
        "psi": lambda p, c: psi(coarse(p), coarse(c)),
        "ks": ks_d,
        "wasserstein": lambda p, c: wasserstein_binned(p, c, w, np.asarray(scale)),
    }


def ks_d(p: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Binned KS D row-wise (the ``D`` of :func:`~monitor.core.drift.ks.ks_binned`, without its p-value)."""
    n = c.sum(axis=-1, keepdims=True)
    q = np.divide(c, n, out=np.zeros(c.shape), where=n > 0)
    out: np.ndarray = np.abs(np.cumsum(p, axis=-1) - np.cumsum(q, axis=-1)).max(axis=-1)
    return out


def categorical_stats(proportions: np.ndarray) -> dict[str, StatFn]:
    """PSI, Cramér's V (from χ²) and Jensen–Shannon distance of one categorical feature, row-wise."""
    k = max(proportions.size - 1, 1)

    def cramers_v(p: np.ndarray, c: np.ndarray) -> np.ndarray:
        stat, _ = chi2_test(p, c)
        n = c.sum(axis=-1)
        out: np.ndarray = np.sqrt(np.divide(stat, n * k, out=np.zeros_like(stat), where=n > 0))
        return out

    return {"psi": lambda p, c: psi(p, c), "chi2": cramers_v, "js": lambda p, c: js_distance(p, c)}


def simulate(proportions: np.ndarray, ref_n: int, fns: Mapping[str, StatFn], *,
             resamples: int = DEFAULT_RESAMPLES, grid: np.ndarray = GRID,
             rng: np.random.Generator | None = None) -> dict[str, NullModel]:
    """Simulate every statistic's null at every grid size (both sides resampled, see module docstring).

    Examples
    --------
    >>> p = np.full(10, 0.1)
    >>> nulls = simulate(p, 10_000, categorical_stats(p), resamples=300, rng=np.random.default_rng(0))
    >>> v = nulls["chi2"]  # Cramér's V: ≈ sqrt(χ²_9 (1/n + 1/m) / 9), so ≈ 0.14 at n = 50
    >>> 0.1 < v.threshold(50, 0.5) < 0.2, 0.01 < v.threshold(10_000, 0.5) < 0.02
    (True, True)
    """
    rng = rng if rng is not None else np.random.default_rng(0)
    p = np.asarray(proportions, dtype=np.float64)
    p = p / p.sum()
    m = max(int(ref_n), 1)
    means: dict[str, list[float]] = {k: [] for k in fns}
    variances: dict[str, list[float]] = {k: [] for k in fns}
    q99: dict[str, list[float]] = {k: [] for k in fns}
    # the reference side's noise does not depend on n: one set of reference replicates serves every size
    ref = rng.multinomial(m, p, size=resamples) / m
    for n in grid.tolist():
        win = rng.multinomial(int(n), p, size=resamples)
        for name, fn in fns.items():
            s = np.asarray(fn(ref, win), dtype=np.float64)
            sp = s ** POWER.get(name, 1.0)
            means[name].append(float(sp.mean()))
            variances[name].append(float(sp.var(ddof=1)))
            q99[name].append(float(np.quantile(s, 0.99)))
    return {k: NullModel(grid.copy(), np.array(means[k]), np.array(variances[k]), np.array(q99[k]),
                         POWER.get(k, 1.0)) for k in fns}


def time_floors(proportions: np.ndarray, chunk_counts: np.ndarray, fns: Mapping[str, StatFn],
                nulls: Mapping[str, NullModel]) -> dict[str, NullModel]:
    """Add the time-structure margin (module docstring) from the bin counts of time-ordered reference chunks.

    ``chunk_counts`` is ``(chunks, bins)``. Returns new models; a method without time structure keeps 0.
    """
    k = chunk_counts.shape[0]
    sizes = chunk_counts.sum(axis=1)
    if k < 5 or sizes.min() < GRID[0]:
        return dict(nulls)
    ref = np.broadcast_to(np.asarray(proportions, dtype=np.float64), chunk_counts.shape)
    out: dict[str, NullModel] = {}
    for name, fn in fns.items():
        model = nulls[name]
        s = np.asarray(fn(ref, chunk_counts), dtype=np.float64)
        sp = s ** model.power
        mean, var = model.moments(float(sizes.mean()))
        structured = float(sp.mean()) > mean + 3.0 * math.sqrt(var / k)
        margin = max(float(s.max()) - mean ** (1.0 / model.power), 0.0) if structured else 0.0
        out[name] = NullModel(model.n, model.mean, model.var, model.q99, model.power, margin)
    return out


def chunk_counts(bins: np.ndarray, n_bins: int, chunks: int = TIME_CHUNKS) -> np.ndarray:
    """Bin counts of ``chunks`` consecutive, equal slices of ``bins`` (bin index per row, in time order).

    >>> chunk_counts(np.array([0, 0, 1, 1, 2, 2]), 3, chunks=3).tolist()
    [[2, 0, 0], [0, 2, 0], [0, 0, 2]]
    """
    parts = np.array_split(np.asarray(bins, dtype=np.int64), chunks)
    return np.stack([np.bincount(a, minlength=n_bins)[:n_bins] for a in parts])
