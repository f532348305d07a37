"""Calibration at ``reference build``: the glue between the profile builder and
:mod:`monitor.core.calibration` / :mod:`monitor.core.multivariate` (see those for the maths)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from monitor.core import calibration, multivariate
from monitor.core.multivariate import MultivariateProfile
from monitor.lazy import lazy_module

if TYPE_CHECKING:
    import pandas as pd
else:
    pd = lazy_module("pandas")

if TYPE_CHECKING:
    from monitor.core.reference import CategoricalProfile, NumericProfile

log = logging.getLogger("monitor.core.reference")


def numeric_nulls(prof: NumericProfile, ordered: np.ndarray, resamples: int,
                  rng: np.random.Generator) -> NumericProfile:
    """``prof`` with the null distributions of its statistics (``ordered``: its values in time order)."""
    fns = calibration.numeric_stats(prof.proportions, prof.psi_starts, prof.edges, prof.std)
    nulls = calibration.simulate(prof.proportions, prof.count, fns, resamples=resamples, rng=rng)
    bins = np.searchsorted(prof.edges, ordered, side="right")
    chunks = calibration.chunk_counts(bins, prof.proportions.size)
    return replace(prof, null=calibration.time_floors(prof.proportions, chunks, fns, nulls))


def categorical_nulls(prof: CategoricalProfile, ordered: pd.Series, resamples: int,
                      rng: np.random.Generator) -> CategoricalProfile:
    """``prof`` with the null distributions of its statistics (``ordered``: its values in time order)."""
    fns = calibration.categorical_stats(prof.proportions)
    nulls = calibration.simulate(prof.proportions, prof.count, fns, resamples=resamples, rng=rng)
    index = {c: i for i, c in enumerate(prof.categories)}
    bins = np.fromiter((index.get(v, len(index)) for v in ordered.dropna()), dtype=np.int64)
    chunks = calibration.chunk_counts(bins, prof.proportions.size)
    return replace(prof, null=calibration.time_floors(prof.proportions, chunks, fns, nulls))


def multivariate_model(table: pd.DataFrame, numeric: Mapping[str, NumericProfile],
                       categorical: Mapping[str, CategoricalProfile], cat_values: Mapping[str, pd.Series],
                       resamples: int, rng: np.random.Generator) -> MultivariateProfile | None:
    """The multivariate reconstruction model of a reference table (None with fewer than 2 features)."""
    names = list(numeric)
    x = np.column_stack([table[n].to_numpy(dtype=np.float64, na_value=np.nan) for n in names]) if names \
        else np.zeros((len(table), 0))
    cats = list(categorical)
    freqs = [dict(zip(categorical[c].categories, categorical[c].proportions[:-1].tolist(), strict=True))
             for c in cats]
    other = [float(categorical[c].proportions[-1]) for c in cats]
    cols = [cat_values[c].tolist() for c in cats]
    try:
        return multivariate.fit(names, x, cats, cols, freqs, other, resamples=resamples, rng=rng)
    except ValueError as exc:
        log.info("no multivariate drift model: %s", exc)
        return None
