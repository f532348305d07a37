"""Reference profiles per segment: the reference rows of each value of a categorical feature, profiled alone.

A *segment* is ``<feature>=<value>`` for a categorical *segment feature* (``segments: [country, device]``).
:func:`with_segments` adds to a model's profile, per segment feature, one nested profile for each of the
``max_values`` most frequent values of the feature's categories (ties by name, as the categories are
ordered) that have at least :data:`MIN_SEGMENT_ROWS` reference rows, and one for ``__other__``: the rows
of every other category the feature's profile knows. Rows whose value the profile does not know (beyond
its ``max_categories``) or is missing belong to no segment of the feature — at run time such values count
as unseen or missing for the feature, never as new segments. So a feature with 100,000 distinct values
gives at most ``max_values + 1`` segments.

A segment's profile has the same features, in the same order, as the model's (what the window state's
column layout relies on): numeric features get their own quantile bins from the segment's rows (or the
model's profile when the segment has no value of the feature), categorical ones — and a categorical
prediction — the model's categories with the segment's proportions, so a category is the same bin
everywhere.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from monitor.core.reference import (
    CategoricalProfile,
    NumericProfile,
    ReferenceProfile,
    _categorical_values,
    build_profile,
)
from monitor.lazy import lazy_module
from monitor.names import name_problem

if TYPE_CHECKING:
    import pandas as pd
else:
    pd = lazy_module("pandas")

log = logging.getLogger("driftline.reference")

#: the pool of a segment feature's values beyond the most frequent ones
OTHER = "__other__"
#: a value (or the pool) needs this many reference rows to be profiled as a segment
MIN_SEGMENT_ROWS = 100
#: reference values kept per numeric feature of a segment for exact KS (segments use binned KS)
SEGMENT_KS_SAMPLE = 200


def segment_key(feature: str, value: str) -> str:
    """The ``segment`` tag of a segment's points and alerts.

    >>> segment_key("country", "PL")
    'country=PL'
    """
    return f"{feature}={value}"


def _aligned_categorical(model: CategoricalProfile, values: pd.Series, total: int) -> CategoricalProfile:
    """The model's categories (same order, same unseen bucket) with the proportions of ``values``."""
    present = values.dropna()
    index = {c: i for i, c in enumerate(model.categories)}
    slots = np.fromiter((index.get(v, len(index)) for v in present), dtype=np.int64, count=len(present))
    counts = np.bincount(slots, minlength=len(index) + 1).astype(np.float64)
    n = int(present.size)
    props = counts / n if n else np.r_[np.zeros(len(index)), 1.0]
    return CategoricalProfile(model.name, model.categories, props, n, 1.0 - n / total if total else 0.0)


def _align(seg: ReferenceProfile, model: ReferenceProfile, rows: pd.DataFrame) -> ReferenceProfile:
    """``seg`` with exactly the model's features, in the model's order (see the module docstring)."""
    total = len(rows)
    numeric: dict[str, NumericProfile] = {}
    for name, prof in model.numeric.items():
        own = seg.numeric.get(name)
        numeric[name] = own if own is not None else prof
    categorical = {name: _aligned_categorical(prof, _categorical_values(rows[name]) if name in rows
                                              else pd.Series([None] * total, dtype=object), total)
                   for name, prof in model.categorical.items()}
    prediction = model.prediction
    if isinstance(model.prediction, CategoricalProfile):
        prediction = _aligned_categorical(model.prediction, _categorical_values(rows["prediction"]), total) \
            if "prediction" in rows else model.prediction
    elif isinstance(seg.prediction, NumericProfile):
        prediction = seg.prediction
    score = seg.score if seg.score is not None else model.score
    return replace(seg, numeric=numeric, categorical=categorical, prediction=prediction, score=score,
                   task=model.task if seg.task is None else seg.task)


def segment_values(model: ReferenceProfile, feature: str, max_values: int) -> tuple[list[str], list[str]]:
    """(values with their own segment, values pooled into ``__other__``) of a categorical feature.

    >>> t = pd.DataFrame({"c": ["a"] * 300 + ["b"] * 200 + ["c"] * 120 + ["d"] * 50 + ["e"] * 60})
    >>> p = build_profile("m", t, built_at="2026-01-01T00:00:00Z")
    >>> segment_values(p, "c", 2)
    (['a', 'b'], ['c', 'e', 'd'])
    >>> segment_values(p, "c", 5)  # d and e have fewer than MIN_SEGMENT_ROWS rows
    (['a', 'b', 'c'], ['e', 'd'])
    """
    cat = model.categorical[feature]
    counts = np.rint(cat.proportions[:-1] * cat.count).astype(np.int64)
    own: list[str] = []
    for c, n in zip(cat.categories, counts.tolist(), strict=True):
        if len(own) >= max_values or n < MIN_SEGMENT_ROWS:
            break
        if name_problem(segment_key(feature, c)) is None:  # a value the line protocol cannot carry as a tag pools
            own.append(c)
    return own, [c for c in cat.categories if c not in own]


def with_segments(profile: ReferenceProfile, table: pd.DataFrame, features: Sequence[str], max_values: int = 20,
                  *, strict: bool = True, **build: Any) -> ReferenceProfile:
    """``profile`` (built from ``table``) with nested profiles per segment of ``features`` (module docstring).

    ``build`` are :func:`~monitor.core.reference.build_profile`'s keyword arguments used for ``profile``
    (bins, categories); segments keep only :data:`SEGMENT_KS_SAMPLE` values for exact KS. ``strict``: a
    feature that is not a categorical feature of the profile is an error (``monitor reference build``);
    otherwise it is left out with a warning (a warm-up profile built from live traffic).

    Raises
    ------
    ValueError
        On ``max_values < 1`` or (``strict``) a feature that is missing or numeric in the reference.
    """
    if max_values < 1:
        raise ValueError(f"segment_max_values must be >= 1, got {max_values!r}")
    # segments are decided with the model's fixed floors raised by their own sampling noise
    # (monitor/segments.py noise_margins), not with calibrated thresholds: no calibration per segment
    build = {**build, "ks_sample_size": min(int(build.get("ks_sample_size", SEGMENT_KS_SAMPLE)), SEGMENT_KS_SAMPLE),
             "calibrate": False}
    out: dict[str, dict[str, ReferenceProfile]] = {}
    for feature in features:
        if feature not in profile.categorical:
            kind = "numeric" if feature in profile.numeric else "not in the reference"
            msg = (f"segment feature {feature!r} is {kind}: segments need a categorical feature of the reference "
                   f"(features: {', '.join([*profile.categorical, *profile.numeric]) or 'none'})")
            if strict:
                raise ValueError(msg)
            log.warning("event=segment_feature_skipped model=%s feature=%s reason=%r", profile.model, feature, msg)
            continue
        own, pooled = segment_values(profile, feature, max_values)
        values = _categorical_values(table[feature])
        groups: list[tuple[str, pd.Series]] = [(v, values == v) for v in own]
        if pooled:
            groups.append((OTHER, values.isin(pooled)))
        out[feature] = {}
        for value, mask in groups:
            rows = table[mask.to_numpy(dtype=bool)].reset_index(drop=True)
            if len(rows) < MIN_SEGMENT_ROWS:
                continue  # only the pool can be this small: its values belong to no segment
            seg = build_profile(profile.model, rows, built_at=profile.built_at, **build)
            out[feature][value] = _align(seg, profile, rows)
    return replace(profile, segments=out)
