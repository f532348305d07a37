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
from monitor.core.drift.twosample import chi2_2samp, js_2samp, ks_2samp_binned, psi_2samp, wasserstein_2samp
from monitor.core.drift.wasserstein import wasserstein_binned
from monitor.core.multivariate import FEATURE as MULTIVARIATE
from monitor.core.multivariate import METHOD as MULTIVARIATE_METHOD
from monitor.core.multivariate import UNIT as MULTIVARIATE_UNIT
from monitor.core.reference import CategoricalProfile, NumericProfile, ReferenceProfile

#: rows binned per block in :meth:`FeatureBinner.numeric_counts` (temporaries ~ ROW_BLOCK × F × 8 bytes)
ROW_BLOCK = 2048
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


class _GridIndex:
    """Exact ``searchsorted(edges_f, x, side="right")`` for many features at once, without a binary search.

    Each feature's range ``[e_0, e_last]`` is cut into ``G`` equal cells plus one below and one above,
    numbered in one flat table for all features: ``g(x) = int(min(max(x·s_f + t_f, lo_f), hi_f))``.
    ``g`` is computed in floating point but is still monotone non-decreasing in ``x`` (every step is),
    so an edge ``e`` with ``g(e) < g(x)`` is ``< x`` and one with ``g(e) > g(x)`` is ``> x``: the bin
    is ``base[g(x)]`` (the edges in lower cells) plus direct comparisons with the at most ``m`` edges
    that share ``x``'s cell. Rounding cannot make it wrong, only move which cell is used. A feature
    whose edges crowd more than ``max_per_cell`` into one cell (very heavy tails) is binned with
    ``np.searchsorted`` instead. NaN lands in bin 0 (``fmax`` ignores NaN); :meth:`counts` removes it.
    """

    def __init__(self, edges: Sequence[np.ndarray], width: int, cells: int = 1024,
                 max_per_cell: int = 3) -> None:
        self.width = width
        n_cells = cells + 2  # below, G grid cells, above
        fast: list[int] = []
        slow: list[int] = []
        per_cell: list[np.ndarray] = []
        scales, shifts = [], []
        for j, raw in enumerate(edges):
            e = np.asarray(raw, dtype=np.float64)
            lo, hi = float(e[0]), float(e[-1])
            scale = cells / (hi - lo) if hi > lo and np.isfinite(cells / (hi - lo)) else 1.0
            offset = len(fast) * n_cells
            shift = offset + 1.0 - lo * scale
            g = self._cell(e[:, None], np.array([scale]), np.array([shift]), np.array([float(offset)]),
                           np.array([float(offset + n_cells - 1)]))[:, 0] - offset
            if np.bincount(g).max() > max_per_cell or not np.isfinite(shift):
                slow.append(j)
                continue
            fast.append(j)
            per_cell.append(g)
            scales.append(scale)
            shifts.append(shift)
        k = len(fast)
        self.fast = np.array(fast, dtype=np.intp)
        self.all_fast = k == len(edges)
        self.slow = [(j, np.asarray(edges[j], dtype=np.float64)) for j in slow]
        self.m = max((int(np.bincount(g).max()) for g in per_cell), default=0)
        self.scale = np.array(scales, dtype=np.float64)
        self.shift = np.array(shifts, dtype=np.float64)
        self.low = np.arange(k, dtype=np.float64) * n_cells
        self.high = self.low + (n_cells - 1)
        base = np.zeros((k, n_cells), dtype=np.intp)
        thr = np.full((self.m, k, n_cells), np.nan)  # x >= NaN is False, even for x = inf
        for i, (j, g) in enumerate(zip(fast, per_cell, strict=True)):
            counts = np.bincount(g, minlength=n_cells)
            base[i, 1:] = np.cumsum(counts)[:-1]
            rank = np.arange(g.size) - base[i, g]  # position of each edge within its cell
            thr[rank, i, g] = np.asarray(edges[j], dtype=np.float64)
        # flat tables: bins offset so one bincount fills the (k, width) block of counts
        self.base = (base + (np.arange(k) * width)[:, None]).ravel()
        self.thr = thr.reshape(self.m, k * n_cells)

    @staticmethod
    def _cell(x: np.ndarray, scale: np.ndarray, shift: np.ndarray, low: np.ndarray,
              high: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore", invalid="ignore"):
            z = x * scale  # per-feature parameters broadcast along the last axis
            z += shift
            np.fmax(z, low, out=z)
            np.fmin(z, high, out=z)
        cell: np.ndarray = z.astype(np.intp)
        return cell

    def counts(self, values: np.ndarray, counts: np.ndarray, missing: np.ndarray) -> None:
        """Add the bin counts of ``values`` (N × features, NaN = missing) into ``counts`` (features × B);
        ``missing`` is the NaN count per feature."""
        if self.fast.size:
            x = values if self.all_fast else values[:, self.fast]
            cell = self._cell(x, self.scale, self.shift, self.low, self.high)
            b = self.base[cell]
            for k in range(self.m):
                b += x >= self.thr[k][cell]
            flat = np.bincount(b.ravel(), minlength=self.fast.size * self.width)
            block = flat.reshape(self.fast.size, self.width)
            block[:, 0] -= missing[self.fast]  # NaN fell into bin 0
            counts[self.fast] += block
        for j, e in self.slow:
            col = values[:, j]
            col = col[~np.isnan(col)]
            counts[j] += np.bincount(np.searchsorted(e, col, side="right"), minlength=self.width)[: self.width]


class _Codes(dict[object, int]):
    """Category → bin, with ``None`` → -1 (missing) and any other value → the unseen slot, so a column is
    mapped by one C-level ``map(codes.__getitem__, column)``."""

    __slots__ = ("unseen",)

    def __init__(self, index: dict[object, int], unseen: int) -> None:
        super().__init__(index)
        self.unseen = unseen

    def __missing__(self, key: object) -> int:
        return -1 if key is None else self.unseen


def _pad(rows: Sequence[np.ndarray], width: int) -> np.ndarray:
    out = np.zeros((len(rows), width), dtype=np.float64)
    for i, r in enumerate(rows):
        out[i, : r.size] = r
    return out


class FeatureBinner:
    """Bins rows and computes drift for all features of one reference profile.

    Numeric features (``numeric_names``: the profile's numeric features, then ``__score__``, then a
    numeric ``__prediction__``) are stacked into an ``(F, B)`` count matrix, ``B`` the largest number
    of fine bins; categorical ones (``categorical_names``: the profile's categorical features, then a
    categorical ``__prediction__``) into ``(F, C)``, ``C`` the largest ``len(categories) + 1``. Narrower
    features are padded with zero-probability bins that never receive counts. Window state is just
    these count matrices, so it is mergeable by addition and its size does not depend on the rows.

    Examples
    --------
    >>> import pandas as pd
    >>> from monitor.core.reference import build_profile
    >>> ref = build_profile("m", pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "c": ["a", "a", "b", "b"]}))
    >>> b = FeatureBinner(ref)
    >>> counts, missing, oor = b.numeric_counts(np.array([[1.0], [4.0], [9.0], [np.nan]]))
    >>> counts.tolist(), missing.tolist(), oor.tolist()
    ([[1, 0, 0, 2]], [1], [1])
    >>> cat, cmissing, unseen = b.categorical_counts([["a", "z", None]])
    >>> cat.tolist(), cmissing.tolist(), unseen.tolist()
    ([[1, 0, 1]], [1], [1])
    >>> [(r.feature, r.method, round(r.score, 3)) for r in b.drift(counts, cat, methods=("psi", "js"))]
    [('x', 'psi', 4.343), ('c', 'psi', 8.515), ('c', 'js', 0.707)]
    """

    def __init__(self, profile: ReferenceProfile, multivariate: bool = True) -> None:
        self.profile = profile
        #: KS p-values of windows with n_eff < 1000 from the exact distribution (False: Stephens' approximation,
        #: for the many small windows of segments; :func:`~monitor.core.drift.ks.ks_binned`)
        self.exact_small_ks = True
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
        # numeric: reference proportions stacked and padded with zero-probability bins (mask False)
        self._num_ref = _pad([p.proportions for p in nums], self.n_numeric_bins)
        self._num_mask = _pad([np.ones(p.proportions.size) for p in nums], self.n_numeric_bins).astype(bool)
        self._num_edges = [p.edges for p in nums]
        self._grid = _GridIndex(self._num_edges, self.n_numeric_bins)
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
        # the same map flattened for one bincount over all features: row i's groups offset by i·(groups + 1)
        self._psi_flat = (np.arange(len(nums))[:, None] * (self.n_psi_bins + 1) + self._psi_group).ravel()
        self._psi_ref = self._coarse(self._num_ref)
        self._psi_mask = _pad([np.ones(p.psi_starts.size) for p in nums], self.n_psi_bins).astype(bool)
        # categorical lookups
        self._cat_index: list[dict[object, int]] = [{c: i for i, c in enumerate(p.categories)} for p in cats]
        self._cat_unseen = [len(p.categories) for p in cats]
        self._cat_codes = [_Codes(index, unseen) for index, unseen in zip(self._cat_index, self._cat_unseen,
                                                                          strict=True)]
        self._cat_ref = _pad([p.proportions for p in cats], self.n_categorical_bins)
        self._cat_mask = _pad([np.ones(p.proportions.size) for p in cats], self.n_categorical_bins).astype(bool)
        # multivariate reconstruction model (format-2 profiles; ``multivariate=False`` turns it off)
        self.multivariate = profile.multivariate if multivariate else None
        mv = self.multivariate
        self._mv_num = [self.numeric_names.index(n) for n in mv.numeric] if mv is not None else []
        self._mv_cat = [self.categorical_names.index(n) for n in mv.categorical] if mv is not None else []
        # standardised frequency encoding per category slot (+ unseen slot, + missing as the last entry)
        self._mv_tables = [mv.encode_table(i, cats[j].categories) for i, j in enumerate(self._mv_cat)] \
            if mv is not None else []

    # -- counting -------------------------------------------------------------------------------
    def empty_numeric(self) -> np.ndarray:
        return np.zeros((len(self.numeric_names), self.n_numeric_bins), dtype=np.int64)

    def empty_categorical(self) -> np.ndarray:
        return np.zeros((len(self.categorical_names), self.n_categorical_bins), dtype=np.int64)

    def numeric_counts(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Bin a batch of rows for every numeric feature at once.

        Parameters
        ----------
        values : ndarray of float64, shape (N, len(numeric_names))
            One column per numeric feature, NaN = missing.

        Returns
        -------
        counts : ndarray of int64, shape (F, n_numeric_bins)
            Fine-bin counts (bin of ``x`` = ``searchsorted(edges, x, side="right")``, exactly).
        missing : ndarray of int64, shape (F,)
            NaN count per feature.
        out_of_range : ndarray of int64, shape (F,)
            Non-missing values below the reference ``min`` or above its ``max``.

        Notes
        -----
        Rows are processed in blocks of :data:`ROW_BLOCK` so every temporary stays in cache and is
        reused by the allocator; binning uses :class:`_GridIndex` (one table lookup and ``m`` compares
        per value instead of a binary search).
        """
        x = np.asarray(values, dtype=np.float64)
        f = len(self.numeric_names)
        if x.ndim != 2 or x.shape[1] != f:
            raise ValueError(f"values must have shape (N, {f}), got {x.shape}")
        counts = self.empty_numeric()
        missing = np.zeros(f, dtype=np.int64)
        oor = np.zeros(f, dtype=np.int64)
        with np.errstate(invalid="ignore"):
            for start in range(0, x.shape[0], ROW_BLOCK):
                block = x[start: start + ROW_BLOCK]
                miss = np.count_nonzero(np.isnan(block), axis=0)
                missing += miss
                oor += np.count_nonzero(block < self._num_min, axis=0)
                oor += np.count_nonzero(block > self._num_max, axis=0)
                self._grid.counts(block, counts, miss)
        return counts, missing, oor

    def categorical_counts(self, columns: Sequence[Sequence[str | None]]) -> tuple[np.ndarray, np.ndarray,
                                                                                   np.ndarray]:
        """Count categories per feature: ``(counts, missing, unseen)``; unseen go to the last real bin."""
        return self.code_counts(self.category_codes(columns))

    def category_codes(self, columns: Sequence[Sequence[str | None]]) -> np.ndarray:
        """``(N, F)`` bin of each value of each categorical column: its category's index, the unseen slot
        (``len(categories)``) for any other string, -1 for a missing value.

        >>> import pandas as pd
        >>> from monitor.core.reference import build_profile
        >>> b = FeatureBinner(build_profile("m", pd.DataFrame({"c": ["a", "a", "b", "b"]})))
        >>> b.category_codes([["a", "z", None, "b"]]).tolist()
        [[0], [2], [-1], [1]]
        """
        n = len(columns[0]) if columns else 0
        codes = np.empty((n, len(self.categorical_names)), dtype=np.int64)
        for j, col in enumerate(columns):
            codes[:, j] = np.fromiter(map(self._cat_codes[j].__getitem__, col), dtype=np.int64, count=n)
        return codes

    def code_counts(self, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(counts, missing, unseen)`` of :meth:`category_codes` output (one ``bincount`` for every feature)."""
        f, width = len(self.categorical_names), self.n_categorical_bins
        counts = self.empty_categorical()
        present = codes >= 0
        missing = (codes.shape[0] - np.count_nonzero(present, axis=0)).astype(np.int64)
        flat = (codes + np.arange(f) * width)[present]
        counts += np.bincount(flat, minlength=f * width).reshape(f, width)
        unseen = counts[np.arange(f), np.asarray(self._cat_unseen, dtype=np.intp)].copy() if f else \
            np.zeros(0, dtype=np.int64)
        return counts, missing, unseen

    def reconstruction_errors(self, numeric: np.ndarray | None, codes: np.ndarray | None) -> np.ndarray | None:
        """Per-row multivariate reconstruction error of a batch (``numeric`` as for :meth:`numeric_counts`,
        ``codes`` from :meth:`category_codes`); None without a multivariate model."""
        mv = self.multivariate
        if mv is None or numeric is None:
            return None
        z = np.empty((numeric.shape[0], mv.width), dtype=np.float64)
        k = len(self._mv_num)
        z[:, :k] = mv.standardize_numeric(numeric[:, self._mv_num])
        for i, (j, table) in enumerate(zip(self._mv_cat, self._mv_tables, strict=True)):
            assert codes is not None
            z[:, k + i] = table[codes[:, j]]  # code -1 (missing) takes the table's last entry
        return mv.errors_standardized(z)

    # -- statistics -----------------------------------------------------------------------------
    def _coarse(self, fine: np.ndarray) -> np.ndarray:
        f, width = fine.shape[0], self.n_psi_bins + 1
        out = np.bincount(self._psi_flat, weights=np.asarray(fine, dtype=np.float64).ravel(), minlength=f * width)
        return out.reshape(f, width)[:, : self.n_psi_bins]

    def drift(self, num_counts: np.ndarray, cat_counts: np.ndarray,
              methods: Collection[str] = ("psi", "ks", "wasserstein", "chi2", "js", "pca_recon"),
              multivariate: tuple[int, int, int] | None = None) -> list[StatResult]:
        """Every enabled statistic for every feature with data in the window (vectorised over features).

        ``multivariate`` is the window's ``(n, Σ e, Σ e²)`` of reconstruction errors (fixed point, see
        :func:`monitor.core.multivariate.accumulate`): it adds the ``__multivariate__``/``pca_recon``
        result (score: mean error; p-value: one-sided test against the reference's mean).
        """
        out: list[StatResult] = []
        mv = self.multivariate
        if mv is not None and multivariate is not None and multivariate[0] > 0 and MULTIVARIATE_METHOD in methods:
            n = multivariate[0]
            mean = multivariate[1] / MULTIVARIATE_UNIT / n
            out.append(StatResult(MULTIVARIATE, MULTIVARIATE_METHOD, mean, mv.p_value(n, mean), n))
        if len(self.numeric_names):
            n = num_counts.sum(axis=1)
            cols: dict[str, tuple[np.ndarray, np.ndarray | None, np.ndarray | None]] = {}
            if "psi" in methods:
                cols["psi"] = (psi(self._psi_ref, self._coarse(num_counts), mask=self._psi_mask), None, None)
            if "ks" in methods:
                d, p, bound = ks_binned(self._num_ref, num_counts, self._num_count, self.exact_small_ks)
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

    def drift_against(self, base_num: np.ndarray, base_cat: np.ndarray, num_counts: np.ndarray,
                      cat_counts: np.ndarray, methods: Collection[str] = ("psi", "ks", "wasserstein", "chi2", "js"),
                      ) -> list[StatResult]:
        """Like :meth:`drift`, against a baseline that is itself a sample: ``base_num``/``base_cat`` are bin
        counts on this profile's bins (e.g. a sum of past windows) and every statistic is the two-sample form
        of :mod:`monitor.core.drift.twosample`. χ²'s score is the raw statistic of the 2 × k table. Features
        without counts on either side are left out."""
        out: list[StatResult] = []
        if len(self.numeric_names):
            n, m = num_counts.sum(axis=1), base_num.sum(axis=1)
            cols: dict[str, tuple[np.ndarray, np.ndarray | None, np.ndarray | None]] = {}
            if "psi" in methods:
                cols["psi"] = (psi_2samp(self._coarse(base_num), self._coarse(num_counts), mask=self._psi_mask),
                               None, None)
            if "ks" in methods:
                cols["ks"] = ks_2samp_binned(base_num, num_counts)
            if "wasserstein" in methods:
                cols["wasserstein"] = (wasserstein_2samp(base_num, num_counts, self._num_widths, self._num_std),
                                       None, None)
            out.extend(self._results(self.numeric_names, np.where(m > 0, n, 0), cols))
        if len(self.categorical_names):
            n, m = cat_counts.sum(axis=1), base_cat.sum(axis=1)
            ccols: dict[str, tuple[np.ndarray, np.ndarray | None, np.ndarray | None]] = {}
            if "psi" in methods:
                ccols["psi"] = (psi_2samp(base_cat, cat_counts, mask=self._cat_mask), None, None)
            if "chi2" in methods:
                stat, p = chi2_2samp(base_cat, cat_counts, mask=self._cat_mask)
                ccols["chi2"] = (stat, p, None)
            if "js" in methods:
                ccols["js"] = (js_2samp(base_cat, cat_counts), None, None)
            out.extend(self._results(self.categorical_names, np.where(m > 0, n, 0), ccols))
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
