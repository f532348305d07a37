"""Reference profiles: the distribution drift is measured against (docs/events.md, "Reference tables").

Numeric features get fine quantile bin edges fitted on the reference (open outer bins), reference
proportions per bin, coarse PSI bins aligned to the reference deciles, summary statistics and a sorted
sample for exact KS. Discrete features (few distinct values) get one bin per value; constant features
a single edge. Categorical features get category frequencies plus an unseen bucket. The JSON file is
versioned (``format_version``) and parsed without eval or pickle.

Format 2 (this version) adds, per feature, the null distribution of each drift statistic as a function
of the window size (``null``, see :mod:`monitor.core.calibration`) and a ``multivariate`` section (the
PCA reconstruction model, :mod:`monitor.core.multivariate`). Format 1 files still load: they have
neither, so the policy falls back to fixed effect floors and a warning asks for a rebuild.
docs/reference.md describes the file.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import orjson

from monitor.core import calibrate_profile, calibration, multivariate
from monitor.core.calibration import NullModel, nulls_from_dict, nulls_to_dict
from monitor.core.multivariate import MultivariateProfile
from monitor.core.tables import OUTPUTS as OUTPUTS
from monitor.core.tables import read_table as read_table
from monitor.lazy import lazy_module
from monitor.names import check_name

if TYPE_CHECKING:
    import pandas as pd
else:
    pd = lazy_module("pandas")

FORMAT_VERSION = 2
#: formats this version reads (1: no calibration, no multivariate model)
READABLE_VERSIONS = (1, 2)
log = logging.getLogger(__name__)
IGNORED = ("request_id", "timestamp", "model", "model_version", "latency_ms", "error")


@dataclass(frozen=True)
class NumericProfile:
    """Reference of one numeric feature. Bin of ``x`` = ``np.searchsorted(edges, x, side="right")``."""

    name: str
    edges: np.ndarray
    proportions: np.ndarray
    psi_starts: np.ndarray
    count: int
    missing_rate: float
    min: float
    max: float
    mean: float
    std: float
    ks_sample: np.ndarray
    discrete: bool
    #: per method, the statistic's null distribution as a function of the window size (format 2)
    null: Mapping[str, NullModel] | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {"kind": "numeric", "name": self.name, "edges": self.edges.tolist(),
               "proportions": self.proportions.tolist(), "psi_starts": self.psi_starts.tolist(),
               "count": self.count, "missing_rate": self.missing_rate, "min": self.min, "max": self.max,
               "mean": self.mean, "std": self.std, "ks_sample": self.ks_sample.tolist(),
               "discrete": self.discrete}
        if self.null is not None:
            out["null"] = nulls_to_dict(self.null)
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> NumericProfile:
        edges = np.asarray(d["edges"], dtype=np.float64)
        props = np.asarray(d["proportions"], dtype=np.float64)
        starts = np.asarray(d["psi_starts"], dtype=np.int64)
        name = str(d["name"])
        if edges.ndim != 1 or props.shape != (edges.size + 1,):
            raise ValueError(f"feature {name!r}: proportions must have len(edges)+1 entries")
        if edges.size > 1 and not np.all(np.diff(edges) > 0):
            raise ValueError(f"feature {name!r}: edges must be strictly increasing")
        if starts.size == 0 or starts[0] != 0 or np.any(np.diff(starts) <= 0) or starts[-1] >= props.size:
            raise ValueError(f"feature {name!r}: psi_starts must start at 0 and increase within the bins")
        _check_proportions(name, props)
        sample = np.asarray(d["ks_sample"], dtype=np.float64)
        if sample.ndim != 1 or sample.size == 0 or not np.all(np.isfinite(sample)):
            raise ValueError(f"feature {name!r}: ks_sample must be a non-empty list of finite numbers")
        if not np.all(np.isfinite(edges)):
            raise ValueError(f"feature {name!r}: edges must be finite")
        return cls(name=name, edges=edges, proportions=props, psi_starts=starts, count=int(d["count"]),
                   missing_rate=float(d["missing_rate"]), min=float(d["min"]), max=float(d["max"]),
                   mean=float(d["mean"]), std=float(d["std"]),
                   ks_sample=np.sort(sample),
                   discrete=bool(d["discrete"]),
                   null=nulls_from_dict(d["null"], f"feature {name!r}") if d.get("null") else None)


@dataclass(frozen=True)
class CategoricalProfile:
    """Reference of one categorical feature; the last proportion is the unseen bucket."""

    name: str
    categories: tuple[str, ...]
    proportions: np.ndarray
    count: int
    missing_rate: float
    null: Mapping[str, NullModel] | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {"kind": "categorical", "name": self.name, "categories": list(self.categories),
               "proportions": self.proportions.tolist(), "count": self.count,
               "missing_rate": self.missing_rate}
        if self.null is not None:
            out["null"] = nulls_to_dict(self.null)
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CategoricalProfile:
        cats = tuple(str(c) for c in d["categories"])
        props = np.asarray(d["proportions"], dtype=np.float64)
        if props.shape != (len(cats) + 1,):
            raise ValueError(f"feature {d['name']!r}: proportions must have len(categories)+1 entries")
        if len(set(cats)) != len(cats):
            raise ValueError(f"feature {d['name']!r}: categories must be distinct")
        _check_proportions(str(d["name"]), props)
        null = nulls_from_dict(d["null"], f"feature {d['name']!r}") if d.get("null") else None
        return cls(str(d["name"]), cats, props, int(d["count"]), float(d["missing_rate"]), null)


Profile = NumericProfile | CategoricalProfile


def _check_proportions(name: str, props: np.ndarray) -> None:
    if not np.all(np.isfinite(props)) or np.any(props < 0) or abs(float(props.sum()) - 1.0) > 1e-6:
        raise ValueError(f"feature {name!r}: proportions must be non-negative and sum to 1")


def _profile_from_dict(d: Mapping[str, Any]) -> Profile:
    kind = d.get("kind")
    if kind == "numeric":
        return NumericProfile.from_dict(d)
    if kind == "categorical":
        return CategoricalProfile.from_dict(d)
    raise ValueError(f"unknown feature kind {kind!r}")


@dataclass(frozen=True)
class ReferenceProfile:
    """Reference of one model: features, prediction, score and baseline performance."""

    model: str
    built_at: str
    rows: int
    numeric: Mapping[str, NumericProfile]
    categorical: Mapping[str, CategoricalProfile]
    prediction: Profile | None = None
    score: NumericProfile | None = None
    task: Literal["classification", "regression"] | None = None
    performance: Mapping[str, float] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION
    #: per segment feature, per value (most frequent first, then ``__other__``) the profile of the reference
    #: rows with that value (:mod:`monitor.core.segment_profiles`); empty: built without segments
    segments: Mapping[str, Mapping[str, ReferenceProfile]] = field(default_factory=dict)
    multivariate: MultivariateProfile | None = None

    @property
    def calibrated(self) -> bool:
        """Whether every feature carries its null distributions (format 2 built with calibration)."""
        profs = [*self.numeric.values(), *self.categorical.values(), self.score, self.prediction]
        return all(p.null is not None for p in profs if p is not None)

    def feature(self, name: str) -> Profile | None:
        """The profile of a feature, ``__score__`` or ``__prediction__``."""
        if name == "__score__":
            return self.score
        if name == "__prediction__":
            return self.prediction
        return self.numeric.get(name) or self.categorical.get(name)

    def null_threshold(self, feature: str, method: str, n: int, level: float) -> float | None:
        """Calibrated threshold of ``method`` on ``feature`` for a window of ``n`` values (None: uncalibrated)."""
        if feature == multivariate.FEATURE:
            mv = self.multivariate
            return mv.threshold(n, level) if mv is not None and method == multivariate.METHOD else None
        prof = self.feature(feature)
        model = prof.null.get(method) if prof is not None and prof.null is not None else None
        return None if model is None else model.threshold(n, level)

    def __post_init__(self) -> None:
        # these names become InfluxDB tags: refuse what the line protocol cannot carry (monitor.names)
        if not self.model:
            raise ValueError("the model name is empty")
        check_name(self.model, "model name")
        for name in (*self.numeric, *self.categorical):
            if not name:
                raise ValueError("a feature name is empty")
            check_name(name, "feature name")

    def null_thresholds(self, requests: Sequence[tuple[str, str, int]], level: float) -> list[float | None]:
        """:meth:`null_threshold` for many ``(feature, method, n)`` at once (one vectorised quantile call)."""
        out: list[float | None] = [None] * len(requests)
        batch: list[tuple[NullModel, float]] = []
        where: list[int] = []
        for i, (feature, method, n) in enumerate(requests):
            if feature == multivariate.FEATURE:
                out[i] = self.null_threshold(feature, method, n, level)
                continue
            prof = self.feature(feature)
            model = prof.null.get(method) if prof is not None and prof.null is not None else None
            if model is not None:
                batch.append((model, float(n)))
                where.append(i)
        for i, t in zip(where, calibration.thresholds(batch, level), strict=True):
            out[i] = t
        return out

    def to_dict(self) -> dict[str, Any]:
        out = {
            "format_version": self.format_version, "model": self.model, "built_at": self.built_at,
            "rows": self.rows, "task": self.task, "performance": dict(self.performance),
            "numeric": [p.to_dict() for p in self.numeric.values()],
            "categorical": [p.to_dict() for p in self.categorical.values()],
            "prediction": self.prediction.to_dict() if self.prediction is not None else None,
            "score": self.score.to_dict() if self.score is not None else None,
            "multivariate": self.multivariate.to_dict() if self.multivariate is not None else None,
        }
        if self.segments:  # only when present: a profile without segments keeps its content hash
            out["segments"] = {feature: [{"value": value, "profile": prof.to_dict()} for value, prof in values.items()]
                               for feature, values in self.segments.items()}
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], quiet: bool = False) -> ReferenceProfile:
        """A profile from its JSON form (``quiet``: no warning for an uncalibrated profile — segment profiles,
        whose thresholds come from the model's policy with noise margins)."""
        if not isinstance(d, Mapping):
            raise ValueError("a reference profile must be a JSON object")
        version = d.get("format_version")
        if version not in READABLE_VERSIONS:
            raise ValueError(f"unsupported reference format_version {version!r} (this Driftline reads "
                             f"{', '.join(map(str, READABLE_VERSIONS))}); rebuild it with `monitor reference build`")
        try:
            numeric = {p["name"]: NumericProfile.from_dict(p) for p in d["numeric"]}
            categorical = {p["name"]: CategoricalProfile.from_dict(p) for p in d["categorical"]}
            pred = _profile_from_dict(d["prediction"]) if d.get("prediction") else None
            score = NumericProfile.from_dict(d["score"]) if d.get("score") else None
            if d.get("score") and d["score"].get("kind") != "numeric":
                raise ValueError("the score profile must be numeric")
            task = d.get("task")
            if task not in (None, "classification", "regression"):
                raise ValueError(f"unknown task {task!r}")
            mv = MultivariateProfile.from_dict(d["multivariate"]) if d.get("multivariate") else None
            prof = cls(model=str(d["model"]), built_at=str(d["built_at"]), rows=int(d["rows"]),
                       numeric=numeric, categorical=categorical, prediction=pred, score=score, task=task,
                       performance={str(k): float(v) for k, v in (d.get("performance") or {}).items()},
                       segments=_segments_from_dict(d.get("segments")),
                       format_version=int(version), multivariate=mv)
            if not prof.calibrated and not quiet:
                log.warning("reference profile of model %r (format %s) has no calibrated thresholds: fixed "
                            "effect floors are used and there is no multivariate drift; rebuild it with "
                            "`monitor reference build`", prof.model, version)
            return prof
        except KeyError as exc:
            raise ValueError(f"reference profile is missing key {exc.args[0]!r}") from None
        except (TypeError, AttributeError) as exc:
            raise ValueError(f"reference profile has a malformed entry ({exc})") from None

    @functools.cached_property
    def content_hash(self) -> str:
        """``sha256:<hex>`` of the profile's canonical JSON (sorted keys) without ``built_at``: the same
        reference data profiled the same way has the same id, whenever it was built; a saved and reloaded
        profile keeps its id. Retraining events name the profile they compared against with it."""
        body = self.to_dict()
        body.pop("built_at", None)
        canon = orjson.dumps(body, option=orjson.OPT_SORT_KEYS | orjson.OPT_SERIALIZE_NUMPY)
        return "sha256:" + hashlib.sha256(canon).hexdigest()

    def save(self, path: Path | str) -> None:
        Path(path).write_bytes(orjson.dumps(self.to_dict(), option=orjson.OPT_SERIALIZE_NUMPY))

    @classmethod
    def load(cls, path: Path | str) -> ReferenceProfile:
        try:
            data = orjson.loads(Path(path).read_bytes())
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"{path}: not a JSON reference profile ({exc})") from None
        try:
            return cls.from_dict(data)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None


def _segments_from_dict(d: Any) -> dict[str, dict[str, ReferenceProfile]]:
    """The nested segment profiles of a profile's JSON (``{feature: [{"value", "profile"}, …]}``)."""
    if d is None:
        return {}
    if not isinstance(d, Mapping):
        raise ValueError("segments must be an object of feature → list of {value, profile}")
    out: dict[str, dict[str, ReferenceProfile]] = {}
    for feature, values in d.items():
        if not isinstance(values, list):
            raise ValueError(f"segments of {feature!r} must be a list")
        out[str(feature)] = {}
        for entry in values:
            value = str(entry["value"])
            check_name(f"{feature}={value}", "segment")  # the value becomes a tag: segment=<feature>=<value>
            try:
                prof = ReferenceProfile.from_dict(entry["profile"], quiet=True)
            except ValueError as exc:
                raise ValueError(f"segment {feature}={value}: {exc}") from None
            if prof.segments:
                raise ValueError(f"segment {feature}={value}: a segment profile cannot have segments")
            out[str(feature)][value] = prof
    return out


# -- building --------------------------------------------------------------------------------------
def _is_categorical(s: pd.Series) -> bool:
    return not (pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s))


def _categorical_values(s: pd.Series) -> pd.Series:
    def conv(v: object) -> str | None:
        if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA:
            return None
        if isinstance(v, bool | np.bool_):
            return "true" if v else "false"
        if isinstance(v, float) and v.is_integer():
            return str(int(v))
        return str(v)

    return s.map(conv)


def numeric_profile(name: str, values: np.ndarray, total: int, *, fine_bins: int = 100, psi_bins: int = 10,
                    ks_sample_size: int = 5000) -> NumericProfile:
    """Profile of one numeric column (``values`` without missing entries)."""
    v = np.sort(np.asarray(values, dtype=np.float64))
    v = v[np.isfinite(v)]
    missing = 1.0 - v.size / total if total else 0.0
    if v.size == 0:
        raise ValueError(f"feature {name!r} has no finite values in the reference")
    distinct = np.unique(v)
    discrete = distinct.size <= fine_bins
    if discrete:
        # one bin per value: bin 0 = (-inf, d1) holds d0; a constant c gets edges [c]: (-inf, c), [c, inf)
        edges = distinct[1:] if distinct.size > 1 else distinct
        quantile_edges = np.unique(np.quantile(v, np.arange(1, psi_bins) / psi_bins, method="higher"))
        coarse = quantile_edges[np.isin(quantile_edges, edges)]
    else:
        fine_q = np.quantile(v, np.arange(1, fine_bins) / fine_bins)
        edges = np.unique(fine_q)
        # coarse boundary j = the fine quantile whose level k/fine_bins is nearest j/psi_bins (exactly
        # the reference decile when psi_bins divides fine_bins); it is a fine edge by construction
        k = np.rint(np.arange(1, psi_bins) * fine_bins / psi_bins).astype(np.int64) - 1
        coarse = np.unique(fine_q[k])
    counts = np.bincount(np.searchsorted(edges, v, side="right"), minlength=edges.size + 1)
    props = counts / v.size
    starts = np.concatenate([[0], np.searchsorted(edges, coarse, side="left") + 1]).astype(np.int64)
    starts = np.unique(starts[starts < props.size])
    if v.size > ks_sample_size:
        idx = np.round(np.linspace(0, v.size - 1, ks_sample_size)).astype(np.int64)
        sample = v[idx]
    else:
        sample = v
    return NumericProfile(name=name, edges=edges.astype(np.float64), proportions=props,
                          psi_starts=starts, count=int(v.size), missing_rate=float(missing),
                          min=float(v[0]), max=float(v[-1]), mean=float(v.mean()), std=float(v.std()),
                          ks_sample=sample, discrete=bool(discrete))


def categorical_profile(name: str, values: pd.Series, total: int, *, max_categories: int = 200) -> CategoricalProfile:
    """Profile of one categorical column; categories beyond ``max_categories`` fold into the unseen bucket."""
    present = values.dropna()
    counted = present.value_counts()
    # most frequent first; ties broken by name so the profile does not depend on row order
    order = sorted(range(counted.size), key=lambda i: (-int(counted.iloc[i]), str(counted.index[i])))
    freq = counted.iloc[order]
    n = int(present.size)
    kept = freq.iloc[:max_categories]
    other = int(freq.iloc[max_categories:].sum())
    props = np.array([*kept.to_numpy(dtype=np.float64), float(other)]) / max(n, 1)
    return CategoricalProfile(name=name, categories=tuple(str(c) for c in kept.index), proportions=props,
                              count=n, missing_rate=1.0 - n / total if total else 0.0)


def _task(pred: pd.Series | None, label: pd.Series | None) -> Literal["classification", "regression"] | None:
    series = [s.dropna() for s in (pred, label) if s is not None]
    if not series:
        return None
    for s in series:
        if _is_categorical(s):
            return "classification"
    both = pd.concat(series)
    if both.size and np.all(np.mod(both.to_numpy(dtype=np.float64), 1) == 0) and both.nunique() <= 20:
        return "classification"
    return "regression"


#: binary class vocabulary (the same one the window aggregator uses for positive/negative)
_BINARY = {"1": True, "true": True, "yes": True, "positive": True, "pos": True,
           "0": False, "false": False, "no": False, "negative": False, "neg": False}


def _performance(pred: pd.Series, label: pd.Series, task: str | None) -> dict[str, float]:
    ok = pred.notna() & label.notna()
    if not ok.any():
        return {}
    p, y = pred[ok], label[ok]
    if task == "regression":
        err = p.to_numpy(dtype=np.float64) - y.to_numpy(dtype=np.float64)
        return {"mae": float(np.abs(err).mean()), "rmse": float(np.sqrt((err ** 2).mean()))}
    ps, ys = _categorical_values(p), _categorical_values(y)
    out = {"accuracy": float((ps == ys).mean())}
    bp, by = ps.str.strip().str.lower().map(_BINARY), ys.str.strip().str.lower().map(_BINARY)
    if bp.notna().all() and by.notna().all():
        pos_p = bp.astype(bool)
        pos_y = by.astype(bool)
        tp = float((pos_p & pos_y).sum())
        precision = tp / pos_p.sum() if pos_p.sum() else 0.0
        recall = tp / pos_y.sum() if pos_y.sum() else 0.0
        out.update(precision=precision, recall=recall,
                   f1=2 * precision * recall / (precision + recall) if precision + recall else 0.0)
    return out


def build_profile(model: str, table: pd.DataFrame, *, fine_bins: int = 100, psi_bins: int = 10,
                  ks_sample_size: int = 5000, max_categories: int = 200,
                  built_at: str | None = None, calibrate: bool = True,
                  resamples: int = calibration.DEFAULT_RESAMPLES, seed: int = 0,
                  ignore: Collection[str] = (), kinds: Mapping[str, str] | None = None) -> ReferenceProfile:
    """Build a :class:`ReferenceProfile` from a table of reference rows.

    Columns ``score``, ``prediction`` and ``label`` are model outputs; ``request_id``, ``timestamp``,
    ``model``, ``model_version``, ``latency_ms`` and ``error`` are ignored; every other column is a
    feature — bool/string/object columns categorical (bools as ``"true"``/``"false"``, integral floats
    as integers: ``1.0`` → ``"1"``), numeric columns numeric. A column with no finite value at all is
    left out (its type is unknown); otherwise NaN and ±inf count as missing.

    Numeric fine edges are the reference quantiles at ``k/fine_bins`` (deduplicated); a feature with
    at most ``fine_bins`` distinct values gets one bin per value instead (``discrete``), a constant
    ``c`` the single edge ``[c]``. The coarse PSI bins group fine bins at the reference quantiles
    ``j/psi_bins``. ``task`` is ``"classification"`` when the prediction or label is a string/bool
    or both are integers with at most 20 classes, else ``"regression"``; ``performance`` is computed
    on rows with both prediction and label (accuracy, plus precision/recall/f1 when every value is
    binary-looking; or mae/rmse).

    Parameters
    ----------
    model : str
        Model name.
    table : pandas.DataFrame
        Reference rows (see :func:`read_table`).
    fine_bins, psi_bins : int
        Fine quantile bins for KS/Wasserstein/window counts, coarse bins for PSI (``2 <= psi_bins <=
        fine_bins``).
    ks_sample_size : int
        At most this many evenly spaced order statistics are kept for exact KS.
    max_categories : int
        Most frequent categories kept per categorical feature; the rest fold into the unseen bucket.
    built_at : str, optional
        RFC 3339 build time (default: now).
    calibrate : bool
        Simulate each statistic's null distribution at the window sizes of
        :data:`~monitor.core.calibration.GRID` (``resamples`` draws each, seeded by ``seed``; rows in
        ``timestamp`` order when that column exists, else in table order, for the time-structure check)
        and fit the multivariate reconstruction model. ``False`` gives a profile the policy treats like
        a format-1 one (fixed effect floors, no multivariate drift).
    ignore : collection of str
        Columns left out (``policy.features.<name>.ignore``).
    kinds : mapping of str to ``"numeric"`` or ``"categorical"``
        Columns read as that kind whatever their type (``policy.features.<name>.kind``): forced numeric,
        a value that is not a number is missing; forced categorical, numbers become category names.

    Raises
    ------
    ValueError
        On bad arguments or an empty table.

    Examples
    --------
    >>> t = pd.DataFrame({"x": [1.0, 2.0, 2.0, 3.0], "c": ["a", "b", "a", None]})
    >>> p = build_profile("m", t, built_at="2026-01-01T00:00:00Z")
    >>> p.numeric["x"].edges.tolist(), p.numeric["x"].proportions.tolist(), p.numeric["x"].discrete
    ([2.0, 3.0], [0.25, 0.5, 0.25], True)
    >>> p.categorical["c"].categories, p.categorical["c"].proportions.round(3).tolist()
    (('a', 'b'), [0.667, 0.333, 0.0])
    """
    if not (isinstance(fine_bins, int) and isinstance(psi_bins, int)) or not 2 <= psi_bins <= fine_bins:
        raise ValueError(f"need integers 2 <= psi_bins <= fine_bins, got psi_bins={psi_bins!r}, "
                         f"fine_bins={fine_bins!r}")
    if ks_sample_size < 1:
        raise ValueError(f"ks_sample_size must be >= 1, got {ks_sample_size!r}")
    if max_categories < 1:
        raise ValueError(f"max_categories must be >= 1, got {max_categories!r}")
    if len(table) == 0:
        raise ValueError("the reference table has no rows")
    if "timestamp" in table:
        ts = table["timestamp"]
        key = pd.to_datetime(ts, utc=True, errors="coerce") if not pd.api.types.is_numeric_dtype(ts) else ts
        table = table.iloc[np.argsort(key.to_numpy(), kind="stable")].reset_index(drop=True)
    rng = np.random.default_rng(seed)
    cat_values: dict[str, pd.Series] = {}
    total = len(table)
    numeric: dict[str, NumericProfile] = {}
    categorical: dict[str, CategoricalProfile] = {}
    kinds = dict(kinds or {})
    bad = {k: v for k, v in kinds.items() if v not in ("numeric", "categorical")}
    if bad:
        raise ValueError(f"feature kind must be 'numeric' or 'categorical', got {bad}")
    for col in table.columns:
        name = str(col)
        if name in OUTPUTS or name in IGNORED or name in ignore:
            continue
        s = table[col]
        if kinds.get(name) == "numeric":  # as at run time: only numbers count, anything else is missing
            s = pd.Series([float(v) if isinstance(v, int | float | np.number) and not isinstance(v, bool | np.bool_)
                           else np.nan for v in s], index=s.index, dtype=np.float64)
        if s.isna().all():
            continue  # nothing to learn from an all-missing column (its type is unknown, too)
        if kinds.get(name) == "categorical" or (kinds.get(name) is None and _is_categorical(s.dropna())):
            values = cat_values[name] = _categorical_values(s)
            cprof = categorical_profile(name, values, total, max_categories=max_categories)
            categorical[name] = calibrate_profile.categorical_nulls(cprof, values, resamples, rng) if calibrate else cprof
        else:
            vals = s.to_numpy(dtype=np.float64, na_value=np.nan)
            table = table if kinds.get(name) != "numeric" else table.assign(**{name: s})
            if not np.isfinite(vals).any():
                continue  # only NaN/inf: as good as all-missing
            finite = vals[np.isfinite(vals)]
            nprof = numeric_profile(name, finite, total, fine_bins=fine_bins, psi_bins=psi_bins,
                                    ks_sample_size=ks_sample_size)
            numeric[name] = calibrate_profile.numeric_nulls(nprof, finite, resamples, rng) if calibrate else nprof
    pred_col = table.get("prediction")
    label_col = table.get("label")
    prediction: Profile | None = None
    if pred_col is not None and pred_col.notna().any():
        pc = pred_col.dropna()
        if _is_categorical(pc):
            pvals = _categorical_values(pred_col)
            prediction = categorical_profile("__prediction__", pvals, total, max_categories=max_categories)
            if calibrate:
                prediction = calibrate_profile.categorical_nulls(prediction, pvals, resamples, rng)
        else:
            pv = pc.to_numpy(dtype=np.float64)
            prediction = numeric_profile("__prediction__", pv, total, fine_bins=fine_bins, psi_bins=psi_bins,
                                         ks_sample_size=ks_sample_size)
            if calibrate:
                prediction = calibrate_profile.numeric_nulls(prediction, pv[np.isfinite(pv)], resamples, rng)
    score = None
    if "score" in table and table["score"].notna().any():
        sc = table["score"].dropna().to_numpy(dtype=np.float64)
        score = numeric_profile("__score__", sc, total, fine_bins=fine_bins, psi_bins=psi_bins,
                                ks_sample_size=ks_sample_size)
        if calibrate:
            score = calibrate_profile.numeric_nulls(score, sc[np.isfinite(sc)], resamples, rng)
    mv = calibrate_profile.multivariate_model(table, numeric, categorical, cat_values, resamples, rng) if calibrate else None
    task = _task(pred_col, label_col)
    perf = _performance(pred_col, label_col, task) if pred_col is not None and label_col is not None else {}
    return ReferenceProfile(
        model=model, built_at=built_at or datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        rows=total, numeric=numeric, categorical=categorical, prediction=prediction, score=score, task=task,
        performance=perf, multivariate=mv)
