"""Per-window state and its aggregation: bin counts and sketches, never raw values (except in exact-KS mode).

A :class:`WindowState` is mergeable: the state of two partitions' data merged equals the state of the
concatenated data, and merging is associative — so a window is split across workers (stage 1, one
partial per input partition) and combined by the model's owner (stage 2); :mod:`monitor.wire` encodes it.
:func:`ingest` updates a state from a vectorised batch (:class:`Batch`); :func:`performance_values`
and friends read results out of a state.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain
from operator import itemgetter
from typing import Any, Protocol

import numpy as np
from river import metrics as rmetrics

from monitor.core import topk
from monitor.core.binning import FeatureBinner
from monitor.core.multivariate import accumulate
from monitor.core.sketch import LatencySketch
from monitor.types import PREDICTION_FEATURE, PSEUDO_FEATURES, SCORE_FEATURE, FeatureValue, PredictionEvent

NAN = math.nan


def _to_float(v: object) -> float:
    """A numeric feature's value: numbers as they are; a string that spells a finite number is coerced (and
    counted as a type mismatch, :func:`_mismatched_number`); anything else is missing (NaN)."""
    if v is None or isinstance(v, bool):
        return NAN
    if isinstance(v, str):
        try:
            f = float(v)
        except ValueError:
            return NAN
        return f if math.isfinite(f) else NAN
    try:
        return float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return NAN


def _mismatched_number(v: object) -> bool:
    """A numeric feature sent as a string or a boolean."""
    return isinstance(v, str | bool)


def _mismatched_category(v: object) -> bool:
    """A categorical feature sent as a number (booleans are categories: ``"true"``/``"false"``)."""
    return isinstance(v, int | float) and not isinstance(v, bool)


def _to_category(v: object) -> str | None:
    if v is None:
        return None
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def is_positive(prediction: object) -> bool | None:
    """Whether a binary prediction is the positive class (None when it is not binary-looking)."""
    if isinstance(prediction, bool):
        return prediction
    if isinstance(prediction, int | float):
        if prediction in (0, 1):
            return bool(prediction)
        return None
    if isinstance(prediction, str):
        low = prediction.strip().lower()
        if low in ("1", "true", "yes", "positive", "pos"):
            return True
        if low in ("0", "false", "no", "negative", "neg"):
            return False
    return None


class PredictionLike(Protocol):
    """What :class:`Batch` reads of a prediction: a :class:`PredictionEvent`, or a decoded record with the
    same fields whose ``features`` are not parsed yet (:mod:`monitor.fastdecode`)."""

    @property
    def timestamp(self) -> float: ...
    @property
    def prediction(self) -> FeatureValue | int: ...
    @property
    def score(self) -> float | None: ...
    @property
    def latency_ms(self) -> float | None: ...
    @property
    def error(self) -> str | None: ...


@dataclass(slots=True)
class FeatureBlock:
    """The features of N predictions, binned for one :class:`FeatureBinner`."""

    numeric: np.ndarray  # (N, F_num) float, NaN = missing
    #: (N, F_cat) category bin per value (FeatureBinner.category_codes), -1 = missing
    cat_codes: np.ndarray
    #: (N, F_num)/(N, F_cat) bool: the value had the wrong JSON type (None: no such value)
    num_mismatch: np.ndarray | None = None
    cat_mismatch: np.ndarray | None = None

    @classmethod
    def of_events(cls, events: Sequence[PredictionEvent], binner: FeatureBinner) -> FeatureBlock:
        feats = [e.features for e in events]
        numeric, num_mismatch = _numeric_block(events, feats, binner.numeric_names)
        values, cat_mismatch = category_values(_columns(events, feats, binner.categorical_names))
        return cls(numeric, binner.category_codes(values), num_mismatch, cat_mismatch)

    def take(self, rows: np.ndarray) -> FeatureBlock:
        return FeatureBlock(self.numeric[rows], self.cat_codes[rows],
                            None if self.num_mismatch is None else self.num_mismatch[rows],
                            None if self.cat_mismatch is None else self.cat_mismatch[rows])


@dataclass(slots=True)
class Batch:
    """A batch of one model version's predictions as columns (built once, sliced per window)."""

    events: Sequence[PredictionEvent]
    ts: np.ndarray
    numeric: np.ndarray | None  # (N, F_num) float, NaN = missing
    #: (N, F_cat) category bin per value (FeatureBinner.category_codes), -1 = missing
    cat_codes: np.ndarray | None
    latency: np.ndarray  # NaN = absent
    error: np.ndarray  # bool
    p_correct: np.ndarray  # CBPE probability the prediction is right, NaN without a score
    #: (N, F_num)/(N, F_cat) bool: the value had the wrong JSON type (None: no such value in the batch)
    num_mismatch: np.ndarray | None = None
    cat_mismatch: np.ndarray | None = None
    #: error message per row (None: no error)
    error_text: Sequence[str | None] | None = None
    recon: np.ndarray | None = None  # multivariate reconstruction error per event (None: off)

    @classmethod
    def build(cls, events: Sequence[PredictionEvent], binner: FeatureBinner | None,
              items: Sequence[PredictionLike] | None = None, block: FeatureBlock | None = None,
              ts: np.ndarray | None = None, predictions: Sequence[Any] | None = None) -> Batch:
        """Columns of ``events``; with ``items`` (the same predictions as decoded records) the columns are
        read from those; ``block`` (their features binned for ``binner``), ``ts`` (their event times) and
        ``predictions`` replace reading those again."""
        rows: Sequence[PredictionLike] = items if items is not None else events
        n = len(rows)
        if ts is None:
            ts = np.fromiter((e.timestamp for e in rows), dtype=np.float64, count=n)
        latency = _optional_floats([e.latency_ms for e in rows])
        errors = [e.error for e in rows]
        error = np.fromiter((m is not None for m in errors), dtype=bool, count=n)
        p_correct = _p_correct_column(predictions if predictions is not None else [e.prediction for e in rows],
                                      [e.score for e in rows], error)
        if binner is not None and block is None:
            block = FeatureBlock.of_events(events, binner)
        if binner is None or block is None:
            return cls(events, ts, None, None, latency, error, p_correct, error_text=errors)
        recon = binner.reconstruction_errors(block.numeric, block.cat_codes)
        return cls(events, ts, block.numeric, block.cat_codes, latency, error, p_correct, block.num_mismatch,
                   block.cat_mismatch, errors, recon)


def _optional_floats(values: list[float | None]) -> np.ndarray:
    """Floats with None → NaN (one C-level conversion: numpy turns None into NaN for float64)."""
    return np.array(values, dtype=np.float64)


def _p_correct_column(predictions: Sequence[Any], scores: list[float | None], error: np.ndarray) -> np.ndarray:
    """:func:`_p_correct` for every row, vectorised: ``score`` when the prediction is the positive class
    (a 1, or ``score >= 0.5`` when the prediction does not say), else ``1 - score``; NaN without a score or
    with an error."""
    score = _optional_floats(scores)
    if set(map(type, predictions)) <= {int, float, type(None)}:
        pred = np.array(predictions, dtype=np.float64)
        with np.errstate(invalid="ignore"):
            pos = np.where(pred == 1, True, np.where(pred == 0, False, score >= 0.5))
    else:
        says = [is_positive(p) for p in predictions]
        with np.errstate(invalid="ignore"):
            guess = score >= 0.5
        pos = np.array([g if s is None else s for s, g in zip(says, guess.tolist(), strict=True)], dtype=bool)
    out = np.where(pos, score, 1.0 - score)
    out[error] = NAN
    return out


def category_values(columns: Sequence[Sequence[Any]]) -> tuple[list[Sequence[str | None]], np.ndarray | None]:
    """Categorical columns as category strings (``_to_category``), and where a value was a number
    (``(N, F)`` bool, None when none was)."""
    out: list[Sequence[str | None]] = []
    mismatch: np.ndarray | None = None
    for j, col in enumerate(columns):
        kinds = set(map(type, col))
        if kinds <= {str, type(None)}:
            out.append(col)
            continue
        out.append([v if type(v) is str else _to_category(v) for v in col])
        if not kinds <= {str, bool, type(None)}:
            wrong = np.fromiter(map(_mismatched_category, col), dtype=bool, count=len(col))
            if wrong.any():
                if mismatch is None:
                    mismatch = np.zeros((len(col), len(columns)), dtype=bool)
                mismatch[:, j] = wrong
    return out, mismatch


def _numeric_block(events: Sequence[PredictionEvent], feats: list[Mapping[str, FeatureValue]],
                   names: Sequence[str]) -> tuple[np.ndarray, np.ndarray | None]:
    """(N, len(names)) float64, NaN = missing, and the type mismatches (None when there are none). When
    every event has every plain feature as a number (the common case) the rows go to numpy in one
    conversion; otherwise column by column."""
    out = np.empty((len(events), len(names)), dtype=np.float64)
    mismatch: np.ndarray | None = None
    plain = [j for j, name in enumerate(names) if name not in PSEUDO_FEATURES]
    block = None
    if len(plain) > 1:
        getter = itemgetter(*(names[j] for j in plain))
        try:
            rows = [getter(f) for f in feats]
            if set(map(type, chain.from_iterable(rows))) <= {float, int, type(None)}:
                block = np.array(rows, dtype=np.float64).reshape(len(events), len(plain))
        except (KeyError, TypeError, ValueError, OverflowError):  # a missing feature, a huge int: per column
            block = None
    if block is not None:
        out[:, plain] = block
    for j, name in enumerate(names):
        if block is not None and j in plain:
            continue
        out[:, j], wrong = _float_column(_column(events, feats, name))
        if wrong is not None:
            if mismatch is None:
                mismatch = np.zeros(out.shape, dtype=bool)
            mismatch[:, j] = wrong
    return out, mismatch


def _columns(events: Sequence[PredictionEvent], feats: list[Mapping[str, FeatureValue]],
             names: Sequence[str]) -> list[Sequence[Any]]:
    """One value sequence per name. When every event has every plain feature (the common case), rows are
    read with one ``itemgetter`` call per event and transposed in C, instead of one ``get`` per value."""
    plain = [name for name in names if name not in PSEUDO_FEATURES]
    by_name: dict[str, Sequence[Any]] = {}
    if len(plain) > 1:
        getter = itemgetter(*plain)
        try:
            rows = [getter(f) for f in feats]
        except KeyError:
            rows = None
        if rows is not None:
            by_name = dict(zip(plain, zip(*rows, strict=True), strict=True)) if rows else {k: () for k in plain}
    return [by_name[name] if name in by_name else _column(events, feats, name) for name in names]


def _column(events: Sequence[PredictionEvent], feats: list[Mapping[str, FeatureValue]],
            name: str) -> list[Any]:
    if name == PREDICTION_FEATURE:
        return [e.prediction for e in events]
    if name == SCORE_FEATURE:
        return [e.score for e in events]
    return [f.get(name) for f in feats]


def _float_column(values: Sequence[Any]) -> tuple[np.ndarray, np.ndarray | None]:
    """Numbers → float64 (None → NaN), and where a value was a string or a boolean (None: nowhere). The
    all-numeric case is one C-level conversion."""
    if set(map(type, values)) <= {float, int, type(None)}:
        try:
            return np.array(values, dtype=np.float64), None
        except (TypeError, ValueError, OverflowError):
            pass
    wrong = np.fromiter(map(_mismatched_number, values), dtype=bool, count=len(values))
    return np.fromiter(map(_to_float, values), dtype=np.float64, count=len(values)), wrong if wrong.any() else None


def _p_correct(e: PredictionEvent) -> float:
    if e.score is None or e.error is not None:
        return NAN
    pos = is_positive(e.prediction)
    if pos is None:
        pos = e.score >= 0.5
    return e.score if pos else 1.0 - e.score


@dataclass(slots=True)
class PerformanceState:
    """Labelled outcomes of one window: river metrics over a shared confusion matrix (classification)
    or sums of errors (regression). Mergeable."""

    cm: rmetrics.ConfusionMatrix = field(default_factory=rmetrics.ConfusionMatrix)
    n_reg: int = 0
    abs_err: float = 0.0
    sq_err: float = 0.0

    @property
    def n(self) -> int:
        """Labelled outcomes (the matrix's total weight: ``n_samples`` counts cells after a merge)."""
        return int(round(self.cm.total_weight)) + self.n_reg

    def update(self, label: object, prediction: object, task: str | None) -> None:
        self.add(outcome(label, prediction, task))

    def add(self, out: Outcome) -> None:
        """Count one labelled outcome (:func:`outcome`: computed once for a window and its segments)."""
        if out is None:
            return
        if isinstance(out, tuple):
            self.cm.update(out[0], out[1])
        else:
            self.n_reg += 1
            self.abs_err += abs(out)
            self.sq_err += out * out

    def merge_in(self, other: PerformanceState) -> None:
        for y_true, row in other.cm.data.items():
            for y_pred, w in row.items():
                self.cm.update(y_true, y_pred, w)
        self.n_reg += other.n_reg
        self.abs_err += other.abs_err
        self.sq_err += other.sq_err

    def values(self) -> dict[str, float]:
        out: dict[str, float] = {}
        if self.cm.n_samples:
            out["accuracy"] = rmetrics.Accuracy(cm=self.cm).get()
            classes = set(self.cm.classes)
            if classes <= {0, 1}:
                out["precision"] = rmetrics.Precision(cm=self.cm, pos_val=1).get()
                out["recall"] = rmetrics.Recall(cm=self.cm, pos_val=1).get()
                out["f1"] = rmetrics.F1(cm=self.cm, pos_val=1).get()
            else:
                out["f1"] = rmetrics.MacroF1(cm=self.cm).get()
        if self.n_reg:
            out["mae"] = self.abs_err / self.n_reg
            out["rmse"] = math.sqrt(self.sq_err / self.n_reg)
        return out


#: one labelled outcome: (true class, predicted class), a regression error (prediction − label), or None
Outcome = tuple[Any, Any] | float | None


def outcome(label: object, prediction: object, task: str | None) -> Outcome:
    """What a label and its prediction add to a :class:`PerformanceState`."""
    if prediction is None:
        return None
    numeric = isinstance(label, int | float) and not isinstance(label, bool) and isinstance(
        prediction, int | float) and not isinstance(prediction, bool)
    if task == "regression" or (task is None and numeric and not _looks_like_class(label, prediction)):
        return float(prediction) - float(label) if numeric else None  # type: ignore[arg-type]
    return _class(label), _class(prediction)


def _looks_like_class(label: object, prediction: object) -> bool:
    return all(isinstance(v, int | float) and float(v).is_integer() and 0 <= v <= 1  # type: ignore[operator]
               for v in (label, prediction))


def _class(v: object) -> Any:
    pos = is_positive(v)
    if pos is not None:
        return int(pos)
    return v


@dataclass(slots=True)
class WindowState:
    """Everything one window of one model version accumulates. Size is independent of the row count
    (unless ``raw`` exact-KS values are kept)."""

    num_counts: np.ndarray | None = None
    num_missing: np.ndarray | None = None
    num_oor: np.ndarray | None = None
    cat_counts: np.ndarray | None = None
    cat_missing: np.ndarray | None = None
    cat_unseen: np.ndarray | None = None
    #: per feature (binner order): values sent with the wrong JSON type (a number as a string, a category
    #: as a number); they are still coerced for the statistics
    num_mismatch: np.ndarray | None = None
    cat_mismatch: np.ndarray | None = None
    events: int = 0
    errors: int = 0
    latency: LatencySketch = field(default_factory=LatencySketch)
    #: CBPE: sum of P(prediction correct) in units of 1e-9 (integer: exact and order-independent)
    est_correct_nano: int = 0
    est_n: int = 0
    late: int = 0
    invalid: int = 0
    duplicates: int = 0
    labels_unmatched: int = 0
    perf: PerformanceState = field(default_factory=PerformanceState)
    #: error message → count, at most topk.CAP messages (space-saving; see monitor/core/topk.py)
    error_top: dict[str, int] = field(default_factory=dict)
    #: exact-KS mode only: raw numeric values per feature
    raw: list[list[np.ndarray]] | None = None
    #: per segment (``country=PL``) the state of the window's events in it (monitor/segments.py); None: none
    segments: dict[str, WindowState] | None = None
    #: multivariate drift: events, Σ error and Σ error² in units of 1e-6 (integers: exact, order-independent)
    mv_n: int = 0
    mv_sum_micro: int = 0
    mv_sumsq_micro: int = 0

    @classmethod
    def empty(cls, binner: FeatureBinner | None, exact: bool = False) -> WindowState:
        s = cls()
        if binner is not None:
            f_num, f_cat = len(binner.numeric_names), len(binner.categorical_names)
            s.num_counts = binner.empty_numeric()
            s.num_missing = np.zeros(f_num, dtype=np.int64)
            s.num_oor = np.zeros(f_num, dtype=np.int64)
            s.cat_counts = binner.empty_categorical()
            s.cat_missing = np.zeros(f_cat, dtype=np.int64)
            s.cat_unseen = np.zeros(f_cat, dtype=np.int64)
            s.num_mismatch = np.zeros(f_num, dtype=np.int64)
            s.cat_mismatch = np.zeros(f_cat, dtype=np.int64)
            if exact:
                s.raw = [[] for _ in range(f_num)]
        return s

    @property
    def estimated_accuracy(self) -> float | None:
        return self.est_correct_nano / 1e9 / self.est_n if self.est_n else None

    def ingest(self, batch: Batch, rows: np.ndarray, binner: FeatureBinner | None) -> None:
        """Add the batch rows ``rows`` (indices) to this window: vectorised over the rows."""
        n = int(rows.size)
        if n == 0:
            return
        self.events += n
        err = batch.error[rows]
        n_err = int(err.sum())
        if n_err:
            self.errors += n_err
            if batch.error_text is not None:
                text = batch.error_text
                topk.add_strings(self.error_top, (text[i] or "" for i in rows[err].tolist()))
            else:
                events = batch.events
                topk.add_strings(self.error_top, (events[i].error or "" for i in rows[err].tolist()))
        lat = batch.latency[rows]
        lat = lat[~np.isnan(lat)]
        if lat.size:
            self.latency.add(lat)
        pc = batch.p_correct[rows]
        pc = pc[~np.isnan(pc)]
        self.est_correct_nano += int(np.round(pc * 1e9).astype(np.int64).sum())
        self.est_n += int(pc.size)
        if batch.recon is not None:
            mv_n, mv_sum, mv_sumsq = accumulate(batch.recon[rows] if n != len(batch.events) else batch.recon)
            self.mv_n += mv_n
            self.mv_sum_micro += mv_sum
            self.mv_sumsq_micro += mv_sumsq
        if binner is None or self.num_counts is None or batch.numeric is None:
            return
        assert self.num_missing is not None and self.num_oor is not None
        assert self.cat_counts is not None and self.cat_missing is not None and self.cat_unseen is not None
        whole = n == batch.ts.size
        if batch.numeric.shape[1]:
            values = batch.numeric if whole else batch.numeric[rows]
            counts, missing, oor = binner.numeric_counts(values)
            self.num_counts += counts
            self.num_missing += missing
            self.num_oor += oor
            if self.raw is not None:
                for j in range(values.shape[1]):
                    col = values[:, j]
                    self.raw[j].append(col[~np.isnan(col)])
        # a batch without category codes (a segment's view: its categories are counted by the segmenter)
        if batch.cat_codes is not None and batch.cat_codes.shape[1]:
            counts, missing, unseen = binner.code_counts(batch.cat_codes if whole else batch.cat_codes[rows])
            self.cat_counts += counts
            self.cat_missing += missing
            self.cat_unseen += unseen
        for mismatch, name in ((batch.num_mismatch, "num_mismatch"), (batch.cat_mismatch, "cat_mismatch")):
            if mismatch is not None:
                wrong = np.count_nonzero(mismatch if whole else mismatch[rows], axis=0)
                mine = getattr(self, name)
                setattr(self, name, wrong if mine is None else mine + wrong)

    def merge_in(self, other: WindowState) -> None:
        """Add ``other`` into this state (same model, same window, same reference)."""
        for name in ("num_counts", "num_missing", "num_oor", "cat_counts", "cat_missing", "cat_unseen",
                     "num_mismatch", "cat_mismatch"):
            mine, theirs = getattr(self, name), getattr(other, name)
            if theirs is None:
                continue
            setattr(self, name, theirs.copy() if mine is None else mine + theirs)
        for name in ("events", "errors", "est_n", "est_correct_nano", "late", "invalid", "duplicates",
                     "labels_unmatched", "mv_n", "mv_sum_micro", "mv_sumsq_micro"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.latency = self.latency.merge(other.latency)
        topk.add_counts(self.error_top, other.error_top)
        self.perf.merge_in(other.perf)
        if other.raw is not None:
            if self.raw is None:
                self.raw = [[] for _ in other.raw]
            for mine_list, theirs_list in zip(self.raw, other.raw, strict=True):
                mine_list.extend(theirs_list)
        if other.segments:
            mine = self.segments if self.segments is not None else {}
            for key, sub in other.segments.items():
                if key not in mine:
                    mine[key] = WindowState()  # a copy: merged states never share sub-states
                mine[key].merge_in(sub)
            self.segments = mine

    def nbytes(self) -> int:
        """Bytes held by the mergeable state (bin counts and sketches)."""
        total = sum(a.nbytes for a in (self.num_counts, self.num_missing, self.num_oor, self.cat_counts,
                                       self.cat_missing, self.cat_unseen, self.num_mismatch, self.cat_mismatch)
                    if a is not None)
        total += self.latency.nbytes() + 3 * 8  # + the multivariate n / Σ / Σ² (int64-sized)
        if self.raw is not None:
            total += sum(a.nbytes for col in self.raw for a in col)
        if self.segments:
            total += sum(sub.nbytes() for sub in self.segments.values())
        return total


def merged(states: Sequence[WindowState], binner: FeatureBinner | None) -> WindowState:
    """A new state equal to the merge of ``states`` (left to right)."""
    out = WindowState.empty(binner)
    for s in states:
        out.merge_in(s)
    return out
