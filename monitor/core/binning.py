"""A stacked, vectorised view of a reference profile: bins a batch of rows for every feature at once and
computes every drift statistic for every feature from window bin counts.

Features have different numbers of bins; they are stacked into one ``(features, bins)`` matrix padded
with zero-probability bins (masked out where a statistic would otherwise count them).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np

from monitor.core.drift.chi2 import chi2_test
from monitor.core.drift.js import js_distance
from monitor.core.drift.ks import ks_binned
from monitor.core.drift.psi import psi
from monitor.core.drift.wasserstein import wasserstein_binned
from monitor.core.reference import CategoricalProfile, NumericProfile, ReferenceProfile

NUMERIC_METHODS = ("psi", "ks", "wasserstein")
CATEGORICAL_METHODS = ("psi", "chi2", "js")


@dataclass(frozen=True)
class StatResult:
    """One raw statistic (before thresholds and multiple-testing control)."""

    feature: str
    method: str
    score: float
    p_value: float | None
    n: int
    error_bound: float | None = None


def _pad(rows: Sequence[np.ndarray], width: int) -> np.ndarray:
    out = np.zeros((len(rows), width), dtype=np.float64)
    for i, r in enumerate(rows):
        out[i, : r.size] = r
    return out


class FeatureBinner:
    """Bins rows and computes drift for all features of one reference profile."""

    def __init__(self, profile: ReferenceProfile) -> None:
        self.profile = profile
        nums: list[NumericProfile] = list(profile.numeric.values())
        if profile.score is not None:
            nums.append(profile.score)
        cats: list[CategoricalProfile] = list(profile.categorical.values())
        if isinstance(profile.prediction, NumericProfile):
            nums.append(profile.prediction)
        elif isinstance(profile.prediction, CategoricalProfile):
            cats.append(profile.prediction)
        self.numeric_names: tuple[str, ...] = tuple(
            "__score__" if p is profile.score else "__prediction__" if p is profile.prediction else p.name
            for p in nums)
        self.categorical_names: tuple[str, ...] = tuple(
            "__prediction__" if p is profile.prediction else p.name for p in cats)
        self._nums, self._cats = nums, cats
        self.n_numeric_bins = max((p.proportions.size for p in nums), default=1)
        self.n_categorical_bins = max((p.proportions.size for p in cats), default=1)
        # numeric: one global sorted edge list lets a single searchsorted bin every column:
        # column j's values are shifted into their own band by adding j * span
        self._num_ref = _pad([p.proportions for p in nums], self.n_numeric_bins)
        self._num_mask = _pad([np.ones(p.proportions.size) for p in nums], self.n_numeric_bins).astype(bool)
        self._num_edges = [p.edges for p in nums]
        self._num_min = np.array([p.min for p in nums], dtype=np.float64)
        self._num_max = np.array([p.max for p in nums], dtype=np.float64)
        self._num_count = np.array([p.count for p in nums], dtype=np.float64)
        self._num_std = np.array([p.std for p in nums], dtype=np.float64)
        widths = []
        for p in nums:
            w = np.zeros(self.n_numeric_bins - 1)
            w[: max(p.edges.size - 1, 0)] = np.diff(p.edges)
            widths.append(w)
        self._num_widths = np.array(widths).reshape(len(nums), self.n_numeric_bins - 1)
        # PSI coarse bins: map each fine bin to its coarse bin, stacked into a padded matrix
        self.n_psi_bins = max((p.psi_starts.size for p in nums), default=1)
        self._psi_group = np.zeros((len(nums), self.n_numeric_bins), dtype=np.int64)
        for i, p in enumerate(nums):
            groups = np.searchsorted(p.psi_starts, np.arange(p.proportions.size), side="right") - 1
            self._psi_group[i, : groups.size] = groups
            self._psi_group[i, groups.size:] = self.n_psi_bins  # padding → a dropped column
        self._psi_ref = self._coarse(self._num_ref)
        self._psi_mask = _pad([np.ones(p.psi_starts.size) for p in nums], self.n_psi_bins).astype(bool)
        # categorical lookups
        self._cat_index = [{c: i for i, c in enumerate(p.categories)} for p in cats]
        self._cat_unseen = [len(p.categories) for p in cats]
        self._cat_ref = _pad([p.proportions for p in cats], self.n_categorical_bins)
        self._cat_mask = _pad([np.ones(p.proportions.size) for p in cats], self.n_categorical_bins).astype(bool)

    # -- counting -------------------------------------------------------------------------------
    def empty_numeric(self) -> np.ndarray:
        return np.zeros((len(self.numeric_names), self.n_numeric_bins), dtype=np.int64)

    def empty_categorical(self) -> np.ndarray:
        return np.zeros((len(self.categorical_names), self.n_categorical_bins), dtype=np.int64)

    def numeric_counts(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Bin ``values`` (rows × numeric features, NaN = missing): ``(counts, missing, out_of_range)``."""
        f = len(self.numeric_names)
        counts = self.empty_numeric()
        if values.size == 0:
            return counts, np.zeros(f, np.int64), np.zeros(f, np.int64)
        nan = np.isnan(values)
        missing = nan.sum(axis=0).astype(np.int64)
        with np.errstate(invalid="ignore"):
            oor = ((values < self._num_min) | (values > self._num_max)).sum(axis=0).astype(np.int64)
        width = self.n_numeric_bins
        cols = np.ascontiguousarray(values.T)  # searchsorted on contiguous columns is ~5× faster
        present = ~np.ascontiguousarray(nan.T)
        for j, edges in enumerate(self._num_edges):
            col = cols[j]
            idx = np.searchsorted(edges, col if missing[j] == 0 else col[present[j]], side="right")
            counts[j] += np.bincount(idx, minlength=width)[:width]
        return counts, missing, oor

    def categorical_counts(self, columns: Sequence[Sequence[str | None]]) -> tuple[np.ndarray, np.ndarray,
                                                                                   np.ndarray]:
        """Count categories per feature: ``(counts, missing, unseen)``; unseen go to the last real bin."""
        f = len(self.categorical_names)
        counts = self.empty_categorical()
        missing = np.zeros(f, dtype=np.int64)
        unseen = np.zeros(f, dtype=np.int64)
        for j, col in enumerate(columns):
            index, unseen_slot = self._cat_index[j], self._cat_unseen[j]
            idx = [index.get(v, unseen_slot) if v is not None else -1 for v in col]
            arr = np.fromiter(idx, dtype=np.int64, count=len(idx))
            present = arr[arr >= 0]
            missing[j] = arr.size - present.size
            c = np.bincount(present, minlength=self.n_categorical_bins)
            counts[j] += c
            unseen[j] = c[unseen_slot]
        return counts, missing, unseen

    # -- statistics -----------------------------------------------------------------------------
    def _coarse(self, fine: np.ndarray) -> np.ndarray:
        f = fine.shape[0]
        out = np.zeros((f, self.n_psi_bins + 1), dtype=np.float64)
        rows = np.repeat(np.arange(f), fine.shape[1])
        np.add.at(out, (rows, self._psi_group.ravel()), fine.ravel())
        return out[:, : self.n_psi_bins]

    def drift(self, num_counts: np.ndarray, cat_counts: np.ndarray,
              methods: Collection[str] = ("psi", "ks", "wasserstein", "chi2", "js")) -> list[StatResult]:
        """Every enabled statistic for every feature with data in the window (vectorised over features)."""
        out: list[StatResult] = []
        if len(self.numeric_names):
            n = num_counts.sum(axis=1)
            cols: dict[str, tuple[np.ndarray, np.ndarray | None, np.ndarray | None]] = {}
            if "psi" in methods:
                cols["psi"] = (psi(self._psi_ref, self._coarse(num_counts), mask=self._psi_mask), None, None)
            if "ks" in methods:
                d, p, bound = ks_binned(self._num_ref, num_counts, self._num_count)
                cols["ks"] = (d, p, bound)
            if "wasserstein" in methods:
                cols["wasserstein"] = (wasserstein_binned(self._num_ref, num_counts, self._num_widths,
                                                          self._num_std), None, None)
            out.extend(self._results(self.numeric_names, n, cols))
        if len(self.categorical_names):
            n = cat_counts.sum(axis=1)
            ccols: dict[str, tuple[np.ndarray, np.ndarray | None, np.ndarray | None]] = {}
            if "psi" in methods:
                ccols["psi"] = (psi(self._cat_ref, cat_counts, mask=self._cat_mask), None, None)
            if "chi2" in methods:
                stat, p = chi2_test(self._cat_ref, cat_counts, mask=self._cat_mask)
                ccols["chi2"] = (stat, p, None)
            if "js" in methods:
                ccols["js"] = (js_distance(self._cat_ref, cat_counts), None, None)
            out.extend(self._results(self.categorical_names, n, ccols))
        return out

    @staticmethod
    def _results(names: Sequence[str], n: np.ndarray,
                 cols: dict[str, tuple[np.ndarray, np.ndarray | None, np.ndarray | None]]) -> list[StatResult]:
        out = []
        for i, name in enumerate(names):
            if n[i] == 0:
                continue
            for method, (score, p, bound) in cols.items():
                out.append(StatResult(name, method, float(score[i]),
                                      None if p is None else float(p[i]), int(n[i]),
                                      None if bound is None else float(bound[i])))
        return out
