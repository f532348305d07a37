"""A mergeable latency sketch: DDSketch-style logarithmic buckets in a fixed numpy array.

Bucket ``i ≥ 1`` covers ``(γ^(i+o-1), γ^(i+o)]`` with ``γ = (1+α)/(1-α)`` and a fixed offset ``o``;
a quantile is reported as the bucket's representative ``2γ^(i+o)/(γ+1)``.

**Error bound.** For ``x`` in ``(γ^(k-1), γ^k]`` the representative ``r = 2γ^k/(γ+1)`` satisfies
``r/x ∈ [2/(γ+1), 2γ/(γ+1)) = [1-α, 1+α)``, so ``|r − x| ≤ α·x``: every reported quantile is within
relative error ``α`` (1 % by default) of the exact order statistic of the same rank, for values in
``[MIN_VALUE, MAX_VALUE]`` (1 µs to ~2.8 h). Zero and values below ``MIN_VALUE`` share bucket 0 and are
reported as 0 (absolute error < ``MIN_VALUE``); values above ``MAX_VALUE`` are clamped into the last
bucket. Reported quantiles are also capped at the exact ``max``.

The bucket array has a fixed length, so merging is element-wise addition: associative, commutative,
and equal to the sketch of the concatenated data. ``count``, ``sum`` (integer microseconds) and ``max``
are exact and merge exactly too.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

ALPHA = 0.01
MIN_VALUE = 1e-3  # ms
MAX_VALUE = 1e7  # ms (~2.8 h)
_GAMMA = (1 + ALPHA) / (1 - ALPHA)
_LOG_GAMMA = math.log(_GAMMA)
_OFFSET = math.floor(math.log(MIN_VALUE) / _LOG_GAMMA)
N_BUCKETS = math.ceil(math.log(MAX_VALUE) / _LOG_GAMMA) - _OFFSET + 2
#: representative value of every bucket (bucket 0: zero)
_VALUES = np.concatenate([[0.0], 2 * _GAMMA ** (np.arange(1, N_BUCKETS) + _OFFSET) / (_GAMMA + 1)])


def _zeros() -> np.ndarray:
    return np.zeros(N_BUCKETS, dtype=np.int64)


@dataclass
class LatencySketch:
    """Latency distribution of one window (milliseconds).

    Attributes
    ----------
    buckets : ndarray of int64, shape (N_BUCKETS,)
        Counts per logarithmic bucket.
    count : int
        Number of values added.
    sum_us : int
        Exact sum in integer microseconds (so the mean does not depend on how batches were split).
    max : float
        Exact maximum (0.0 while empty).

    Examples
    --------
    >>> s = LatencySketch()
    >>> s.add(np.array([10.0, 20.0, 30.0, 40.0]))
    >>> abs(s.quantile(0.5) - 20.0) <= 0.01 * 20.0, s.max, s.count, s.mean
    (True, 40.0, 4, 25.0)
    >>> t = LatencySketch()
    >>> t.add(np.array([0.0, 1000.0]))
    >>> m = s.merge(t)
    >>> m.count, m.max, m.quantile(0.0)
    (6, 1000.0, 0.0)
    """

    buckets: np.ndarray = field(default_factory=_zeros)
    count: int = 0
    sum_us: int = 0
    max: float = 0.0

    def __post_init__(self) -> None:
        if self.buckets.shape != (N_BUCKETS,):
            raise ValueError(f"buckets must have shape ({N_BUCKETS},), got {self.buckets.shape}")
        if self.count < 0 or self.sum_us < 0:
            raise ValueError("count and sum_us must be non-negative")

    def add(self, values: np.ndarray) -> None:
        """Add a batch of latencies (vectorised).

        Raises
        ------
        ValueError
            If a value is negative, NaN or infinite (the sketch is left unchanged).
        """
        v = np.asarray(values, dtype=np.float64).ravel()
        if v.size == 0:
            return
        if not np.all(np.isfinite(v)) or v.min() < 0:
            raise ValueError("latencies must be finite and >= 0")
        idx = np.zeros(v.size, dtype=np.int64)
        pos = v >= MIN_VALUE
        if pos.any():
            idx[pos] = np.ceil(np.log(np.minimum(v[pos], MAX_VALUE)) / _LOG_GAMMA).astype(np.int64) - _OFFSET
        np.clip(idx, 0, N_BUCKETS - 1, out=idx)
        self.buckets += np.bincount(idx, minlength=N_BUCKETS)
        self.count += int(v.size)
        self.sum_us += int(np.round(v * 1e3).astype(np.int64).sum())
        self.max = max(self.max, float(v.max()))

    def merge(self, other: LatencySketch) -> LatencySketch:
        """A new sketch of both sketches' data (neither input changes)."""
        return LatencySketch(self.buckets + other.buckets, self.count + other.count,
                             self.sum_us + other.sum_us, max(self.max, other.max))

    def merge_in(self, other: LatencySketch) -> None:
        """Add ``other``'s data to this sketch in place."""
        self.buckets += other.buckets
        self.count += other.count
        self.sum_us += other.sum_us
        self.max = max(self.max, other.max)

    @property
    def sum(self) -> float:
        """Sum of the values in ms (exact to the microsecond)."""
        return self.sum_us / 1e3

    @property
    def mean(self) -> float:
        """Mean in ms; NaN while empty."""
        return self.sum_us / 1e3 / self.count if self.count else math.nan

    def quantiles(self, qs: Sequence[float]) -> list[float]:
        """Quantiles at levels ``qs``: the value of rank ``floor(q·(count−1))`` (0-based), i.e. the
        sketch of ``np.percentile(values, 100·q, method="lower")``, within relative error ``ALPHA``.

        NaN for each level while empty. Raises ``ValueError`` for a level outside ``[0, 1]``.
        """
        q = np.asarray(qs, dtype=np.float64)
        if q.size and (not np.all(np.isfinite(q)) or q.min() < 0 or q.max() > 1):
            raise ValueError(f"quantile levels must be in [0, 1], got {list(qs)}")
        if not self.count:
            return [math.nan] * q.size
        cum = np.cumsum(self.buckets)
        ranks = np.floor(q * (self.count - 1)).astype(np.int64)
        idx = np.searchsorted(cum, ranks + 1)
        return [float(x) for x in np.minimum(_VALUES[idx], self.max)]

    def quantile(self, q: float) -> float:
        """One quantile; see :meth:`quantiles`."""
        return self.quantiles([q])[0]

    def nbytes(self) -> int:
        """Bytes held: the bucket array plus three scalars (constant, whatever the count)."""
        return int(self.buckets.nbytes) + 24

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form; only non-empty buckets are listed."""
        nz = np.flatnonzero(self.buckets)
        return {"alpha": ALPHA, "count": self.count, "sum_us": self.sum_us, "max": self.max,
                "buckets": {int(i): int(self.buckets[i]) for i in nz}}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> LatencySketch:
        """Inverse of :meth:`to_dict` (bucket keys may be strings, as after JSON)."""
        if d.get("alpha") != ALPHA:
            raise ValueError(f"sketch relative accuracy {d.get('alpha')} differs from {ALPHA}")
        b = _zeros()
        for i, c in d["buckets"].items():
            k = int(i)
            if not 0 <= k < N_BUCKETS or int(c) < 0:
                raise ValueError(f"sketch bucket {k} out of range or negative count")
            b[k] = int(c)
        if int(b.sum()) != int(d["count"]):
            raise ValueError("sketch bucket counts do not add up to its count")
        return cls(b, int(d["count"]), int(d["sum_us"]), float(d["max"]))
