"""A mergeable latency sketch: DDSketch-style logarithmic buckets in a fixed numpy array.

Bucket ``i`` covers ``(γ^(i-1), γ^i]`` with ``γ = (1+α)/(1-α)``; a quantile is reported as the bucket's
midpoint ``2γ^i/(γ+1)``, so its relative error is at most ``α`` (1 % by default) for values inside
``[min_value, max_value]``. Zero and values below ``min_value`` share bucket 0 (reported as 0); values
above ``max_value`` are clamped to the last bucket (``max`` stays exact). Merging is element-wise
addition, hence associative and equal to the sketch of the concatenated data.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
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


def _zeros() -> np.ndarray:
    return np.zeros(N_BUCKETS, dtype=np.int64)


@dataclass
class LatencySketch:
    """Latency distribution of one window.

    >>> s = LatencySketch()
    >>> s.add(np.array([10.0, 20.0, 30.0, 40.0]))
    >>> abs(s.quantile(0.5) - 20.0) <= 0.01 * 20.0, s.max, s.count
    (True, 40.0, 4)
    """

    buckets: np.ndarray = field(default_factory=_zeros)
    count: int = 0
    #: sum in integer microseconds: exact, so the mean does not depend on how batches were split
    sum_us: int = 0
    max: float = 0.0

    def add(self, values: np.ndarray) -> None:
        """Add a batch of non-negative values (vectorised)."""
        v = np.asarray(values, dtype=np.float64)
        if v.size == 0:
            return
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
        """A new sketch of both sketches' data."""
        return LatencySketch(self.buckets + other.buckets, self.count + other.count,
                             self.sum_us + other.sum_us, max(self.max, other.max))

    @property
    def sum(self) -> float:
        return self.sum_us / 1e3

    @property
    def mean(self) -> float:
        return self.sum_us / 1e3 / self.count if self.count else math.nan

    def _value(self, i: int) -> float:
        if i == 0:
            return 0.0
        return 2 * _GAMMA ** (i + _OFFSET) / (_GAMMA + 1)

    def quantiles(self, qs: Sequence[float]) -> list[float]:
        """Quantiles (rank ``q·(count−1)``, lower interpolation like ``np.percentile(method="lower")``)."""
        if not self.count:
            return [math.nan for _ in qs]
        cum = np.cumsum(self.buckets)
        out = []
        for q in qs:
            if not 0 <= q <= 1:
                raise ValueError(f"quantile must be in [0, 1], got {q}")
            rank = math.floor(q * (self.count - 1))
            i = int(np.searchsorted(cum, rank + 1))
            out.append(min(self._value(i), self.max))
        return out

    def quantile(self, q: float) -> float:
        return self.quantiles([q])[0]

    def nbytes(self) -> int:
        return int(self.buckets.nbytes) + 24

    def to_dict(self) -> dict[str, Any]:
        nz = np.flatnonzero(self.buckets)
        return {"alpha": ALPHA, "count": self.count, "sum_us": self.sum_us, "max": self.max,
                "buckets": {int(i): int(self.buckets[i]) for i in nz}}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LatencySketch:
        if d.get("alpha") != ALPHA:
            raise ValueError(f"sketch relative accuracy {d.get('alpha')} differs from {ALPHA}")
        b = _zeros()
        for i, c in d["buckets"].items():
            b[int(i)] = int(c)
        return cls(b, int(d["count"]), int(d["sum_us"]), float(d["max"]))
