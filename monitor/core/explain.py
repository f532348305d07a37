"""What moved: one line per drifted feature, errors and latency, for alert descriptions. Pure.

A numeric feature is described against its reference quantiles, from the window's fine-bin counts (the
bins are the reference's quantile bins, so shares above or below a reference quantile are exact):

* the stretch of the reference distribution whose share changed most — among the ranges cut at the
  reference's p1, p5, p10, p25, p50, p75, p90, p95, p99 (one-sided tails and the ranges between two
  cuts), the one with the largest absolute change of share (for a one-sided range that is the KS
  distance at the cut), e.g. "share above the reference's p90 (87.2): 10% → 31%";
* the median then → now, estimated from the bins by linear interpolation inside a bin ("above 140.1"
  when it falls in the open top bin, where the window's values are unknown).

A numeric feature with at most :data:`FEW_VALUES` distinct reference values, and a categorical feature,
is described by the values that gained and lost most share. Errors: the most frequent messages of the
window; latency: the percentile against its baseline.

>>> import pandas as pd
>>> from monitor.core.reference import build_profile
>>> rng = np.random.default_rng(0)
>>> x = build_profile("m", pd.DataFrame({"x": rng.normal(100, 10, 20_000)})).numeric["x"]
>>> shifted = rng.normal(110, 10, 5_000)  # +1 sd
>>> numeric_moved(x, np.bincount(np.searchsorted(x.edges, shifted, "right"), minlength=x.edges.size + 1))
"share above the reference's p75 (106.9): 25% → 63%; median 99.94 → 110.1"
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

import numpy as np

from monitor.core import topk
from monitor.core.reference import CategoricalProfile, NumericProfile, ReferenceProfile

#: reference quantile levels that may bound the "share" statement
LEVELS = (0.01, 0.05, 0.10, 0.25, 0.50, 0.75, 0.90, 0.95, 0.99)
#: numeric features with at most this many distinct reference values are described value by value
FEW_VALUES = 12


def pct(x: float) -> str:
    """A share as a percentage: ``"31%"``, ``"0.4%"`` below 9.5 %, ``"0%"`` for nothing.

    >>> pct(0.3071), pct(0.004), pct(0.0)
    ('31%', '0.4%', '0%')
    """
    if x <= 0.0:
        return "0%"
    return f"{100 * x:.1f}%" if x < 0.095 else f"{100 * x:.0f}%"


def num(x: float) -> str:
    """A value with 4 significant digits (``"87.2"``, ``"0.01234"``, ``"1.235e+05"``)."""
    return f"{x:.4g}"


def _median(edges: np.ndarray, shares: np.ndarray, lo: float | None, discrete: bool) -> str:
    """Median from bin shares (bin k = ``[edges[k-1], edges[k])``, outer bins open). ``lo``: the
    reference minimum, which bounds bin 0 for the reference itself (None for a window)."""
    cum = np.cumsum(shares)
    k = int(np.searchsorted(cum, 0.5 - 1e-12))
    k = min(k, shares.size - 1)
    if discrete:
        if k == 0:
            return num(lo) if lo is not None else f"below {num(float(edges[0]))}"
        return num(float(edges[k - 1])) if k < shares.size - 1 or lo is not None else f"≥ {num(float(edges[-1]))}"
    if k == shares.size - 1:
        return f"above {num(float(edges[-1]))}"
    if k == 0 and lo is None:
        return f"below {num(float(edges[0]))}"
    left = lo if k == 0 and lo is not None else float(edges[k - 1])
    right = float(edges[k])
    prior = float(cum[k - 1]) if k > 0 else 0.0
    frac = (0.5 - prior) / float(shares[k]) if shares[k] > 0 else 0.5
    return num(left + min(max(frac, 0.0), 1.0) * (right - left))


def _bin_labels(prof: NumericProfile) -> list[str]:
    """Value labels of a discrete feature's bins (bin 0 holds the reference minimum)."""
    e = prof.edges
    if prof.proportions[0] == 0.0:  # a constant feature: bin 0 is "below it"
        return [f"< {num(float(e[0]))}", num(float(e[0]))]
    return [num(prof.min), *(num(float(v)) for v in e[:-1]), num(float(e[-1]))]


def _top_changes(labels: list[str], ref: np.ndarray, win: np.ndarray, k: int = 2) -> str:
    diff = win - ref
    order = np.argsort(-np.abs(diff), kind="stable")
    gained = [i for i in order if diff[i] > 0.005][:k]
    lost = [i for i in order if diff[i] < -0.005][:k]
    parts = []
    if gained:
        parts.append("gained: " + ", ".join(f"{labels[i]} ({pct(ref[i])} → {pct(win[i])})" for i in gained))
    if lost:
        parts.append("lost: " + ", ".join(f"{labels[i]} ({pct(ref[i])} → {pct(win[i])})" for i in lost))
    return "; ".join(parts)


def numeric_moved(prof: NumericProfile, counts: np.ndarray, baseline: np.ndarray | None = None) -> str | None:
    """One line on how a numeric feature's window distribution differs from the reference (see module
    docstring); None for an empty window. ``counts``: the feature's row of fine-bin counts (padding
    beyond ``prof.proportions.size`` is ignored). ``baseline``: bin counts of a sample baseline on the same
    bins to compare with instead of the reference's proportions ("the baseline's p90")."""
    ref = np.asarray(prof.proportions, dtype=np.float64)
    c = np.asarray(counts[: ref.size], dtype=np.float64)
    n = float(c.sum())
    if n <= 0:
        return None
    lo: float | None = prof.min
    whose = "reference"
    if baseline is not None:
        base = np.asarray(baseline[: ref.size], dtype=np.float64)
        if base.sum() <= 0:
            return None
        ref, lo, whose = base / base.sum(), None, "baseline"
    win = c / n
    if prof.discrete and ref.size <= FEW_VALUES:
        moved = _top_changes(_bin_labels(prof), ref, win)
        return moved or None
    cum_ref, cum_win = np.cumsum(ref), np.cumsum(win)  # [j]: share below edges[j]
    cuts = sorted({int(np.argmin(np.abs(cum_ref[:-1] - level))) for level in LEVELS})
    bounds: list[int | None] = [None, *cuts, None]  # None: the open end
    best: tuple[float, str] | None = None
    for i, a in enumerate(bounds[:-1]):
        for b in bounds[i + 1:]:
            if a is None and b is None:
                continue
            r = (cum_ref[b] if b is not None else 1.0) - (cum_ref[a] if a is not None else 0.0)
            w = (cum_win[b] if b is not None else 1.0) - (cum_win[a] if a is not None else 0.0)
            score = abs(float(w) - float(r))
            if best is not None and score <= best[0] + 1e-12:
                continue
            if (a is None or b is None) and r > 0.5:  # a tail reads better from its smaller side
                a, b, r, w = b, a, 1.0 - r, 1.0 - w
            p = {j: f"p{round(100 * float(cum_ref[j]))}" for j in (a, b) if j is not None}
            v = {j: num(float(prof.edges[j])) for j in (a, b) if j is not None}
            if a is None:
                where = f"below the {whose}'s {p[b]} ({v[b]})"  # type: ignore[index]
            elif b is None:
                where = f"above the {whose}'s {p[a]} ({v[a]})"
            else:
                where = f"between the {whose}'s {p[a]} and {p[b]} ({v[a]}–{v[b]})"
            best = (score, f"share {where}: {pct(float(r))} → {pct(float(w))}")
    assert best is not None
    then = _median(prof.edges, ref, lo, prof.discrete)
    now = _median(prof.edges, win, None, prof.discrete)
    return f"{best[1]}; median {then} → {now}"


def categorical_moved(prof: CategoricalProfile, counts: np.ndarray, baseline: np.ndarray | None = None) -> str | None:
    """Categories that gained and lost most share (the unseen bucket as "categories new to the
    reference"); None for an empty window or no change of at least half a point. ``baseline``: category
    counts of a sample baseline to compare with instead of the reference's proportions.

    >>> p = CategoricalProfile("c", ("US", "DE"), np.array([0.6, 0.4, 0.0]), 100, 0.0)
    >>> categorical_moved(p, np.array([40, 40, 20]))
    'gained: categories new to the reference (0% → 20%); lost: "US" (60% → 40%)'
    """
    ref = np.asarray(prof.proportions, dtype=np.float64)
    c = np.asarray(counts[: ref.size], dtype=np.float64)
    n = float(c.sum())
    if n <= 0:
        return None
    if baseline is not None:
        base = np.asarray(baseline[: ref.size], dtype=np.float64)
        if base.sum() <= 0:
            return None
        ref = base / base.sum()
    labels = [f'"{cat}"' for cat in prof.categories] + ["categories new to the reference"]
    return _top_changes(labels, ref, c / n) or None


def _profile(ref: ReferenceProfile, name: str) -> NumericProfile | CategoricalProfile | None:
    if name == "__score__":
        return ref.score
    if name == "__prediction__":
        return ref.prediction
    return ref.numeric.get(name) or ref.categorical.get(name)


def what_moved(ref: ReferenceProfile | None, numeric_names: tuple[str, ...], num_counts: np.ndarray | None,
               categorical_names: tuple[str, ...], cat_counts: np.ndarray | None,
               features: Collection[str], base_num: np.ndarray | None = None,
               base_cat: np.ndarray | None = None) -> dict[str, str]:
    """"What moved" lines for ``features`` of one window, from its bin counts.

    ``numeric_names``/``categorical_names`` are the rows of ``num_counts``/``cat_counts``
    (:class:`~monitor.core.binning.FeatureBinner`'s layout); features without a row or a profile are
    left out. ``base_num``/``base_cat``: a sample baseline's counts in the same layout, compared with
    instead of the reference's proportions.
    """
    out: dict[str, str] = {}
    if ref is None or not features:
        return out
    for names, counts, base in ((numeric_names, num_counts, base_num), (categorical_names, cat_counts, base_cat)):
        if counts is None:
            continue
        for j, name in enumerate(names):
            if name not in features:
                continue
            prof = _profile(ref, name)
            row = None if base is None else base[j]
            line = (numeric_moved(prof, counts[j], row) if isinstance(prof, NumericProfile)
                    else categorical_moved(prof, counts[j], row) if isinstance(prof, CategoricalProfile)
                    else None)
            if line:
                out[name] = line
    return out


def errors_moved(error_top: Mapping[str, int], errors: int, k: int = 3) -> str | None:
    """The window's most frequent error messages with their share of the errors.

    >>> errors_moved({"upstream timeout": 75, "oom": 25}, 100)
    'top errors: "upstream timeout" 75 (75%), "oom" 25 (25%)'
    """
    if not error_top or errors <= 0:
        return None
    return "top errors: " + ", ".join(f'"{msg}" {n} ({pct(n / errors)})' for msg, n in topk.top(error_top, k))


def latency_moved(p95: float, baseline: float | None) -> str:
    """The window's p95 against its baseline (median p95 of the first windows, or none yet).

    >>> latency_moved(61.2, 20.4)
    'p95 61.2 ms vs baseline 20.4 ms (x3.0)'
    """
    if baseline is None or baseline <= 0:
        return f"p95 {p95:.1f} ms (no baseline yet)"
    return f"p95 {p95:.1f} ms vs baseline {baseline:.1f} ms (x{p95 / baseline:.1f})"
