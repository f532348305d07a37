"""Decoding a fetched batch of input records straight into per-model columns (the worker's hot path).

:func:`decode_batch` gives, for a batch of raw Kafka values, exactly what :func:`monitor.events.decode_any`
gives record by record — the same accept/reject decisions, the same values (tests/test_fastdecode.py) —
but without an event object per record:

1. every record is decoded into a :class:`Record` (msgspec, the limits of ``decode_any``'s one-pass
   decoder) whose ``features`` stay raw JSON; its timestamp is checked and normalised (RFC 3339 parsed);
2. predictions are grouped by model, and a model's raw features are decoded in one msgspec call into a
   struct type made for its reference profile (one typed field per reference feature: a number for a
   numeric feature, a string or bool for a categorical one, no other feature). Binning then needs no
   per-value Python beyond the category lookups: the rows become a :class:`~monitor.core.aggregate.FeatureBlock`;
3. anything unusual — a record the one-pass decoder refuses, a feature outside the reference or of the
   wrong type — takes the validating path: ``decode_any`` for the record, or the feature dict for its
   features. Python objects are made only for those rows, labels and rejections.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Annotated, Any, get_args

import msgspec
import numpy as np

from monitor.core.aggregate import FeatureBlock, _float_column, category_values
from monitor.core.binning import FeatureBinner
from monitor.core.rows import Rows
from monitor.events import DEFAULT_OPTIONS, MAX_FEATURES, MAX_STRING, DecodeOptions, _Fast, _suspect, decode_any
from monitor.timestamps import _DIVISOR, MAX_TS, MIN_TS, TimestampUnit, parse_timestamp
from monitor.types import PREDICTION_FEATURE, PSEUDO_FEATURES, SCORE_FEATURE, LabelEvent, PredictionEvent, Rejection


class _RecordMethods:
    """Behaviour of :class:`Record` (a msgspec struct type built from ``decode_any``'s one-pass decoder)."""

    __slots__ = ()
    model: str
    request_id: str
    timestamp: Any
    features: Any
    prediction: Any
    model_version: str | None
    score: float | None
    latency_ms: float | None
    error: str | None

    def event(self) -> PredictionEvent:
        """This prediction as an event (its features parsed into a dict, as ``decode_any`` gives them)."""
        return PredictionEvent(model=self.model, request_id=self.request_id, timestamp=self.timestamp,
                               features=_features_decoder.decode(self.features), prediction=self.prediction,
                               model_version=self.model_version, score=self.score, latency_ms=self.latency_ms,
                               error=self.error)


def _record_type() -> type:
    """``decode_any``'s one-pass struct with ``features`` left as raw JSON (whatever limits that struct
    gets, this one has too)."""
    fields = []
    for f in msgspec.structs.fields(_Fast):
        if f.name == "features":
            fields.append((f.name, msgspec.Raw | msgspec.UnsetType, msgspec.UNSET))
        else:
            fields.append((f.name, f.type, f.default))
    # gc=False: records hold only strings, numbers and raw bytes (no cycles), so the collector need not track them
    return msgspec.defstruct("Record", fields, bases=(_RecordMethods, msgspec.Struct), forbid_unknown_fields=False,
                             gc=False)


Record: Any = _record_type()
_record_decoder = msgspec.json.Decoder(Record)
#: the features as decode_any validates them (the type of its one-pass decoder's ``features`` field)
_features_decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder(next(
    t for f in msgspec.structs.fields(_Fast) if f.name == "features" for t in get_args(f.type)
    if t is not msgspec.UnsetType))


class _FeatureCodec:
    """A reference profile's features as one struct type: numeric features ``float | None``, categorical
    ones ``str | bool | None``, no other field allowed — so a row it decodes has nothing that needs a
    type check. Built once per binner."""

    def __init__(self, binner: FeatureBinner) -> None:
        self.binner = binner
        numeric = [(j, n) for j, n in enumerate(binner.numeric_names) if n not in PSEUDO_FEATURES]
        categorical = [(j, n) for j, n in enumerate(binner.categorical_names) if n not in PSEUDO_FEATURES]
        self.names = names = [n for _, n in numeric] + [n for _, n in categorical]
        #: names decode_any would refuse (too long, empty) or too many features: every row goes the dict way
        self.usable = len(names) <= MAX_FEATURES and all(0 < len(n) <= 200 for n in names)
        self.num_cols = [j for j, _ in numeric]
        self.cat_cols = [j for j, _ in categorical]
        self.k = len(numeric)
        text = msgspec.Meta(max_length=MAX_STRING)
        fields: list[tuple[str, Any, Any]] = [(f"f{i}", float | None, None) for i in range(len(numeric))]
        fields += [(f"f{len(numeric) + i}", Annotated[str, text] | bool | None, None) for i in range(len(categorical))]
        rename = {f"f{i}": n for i, n in enumerate(names)}
        self.struct = msgspec.defstruct("Features", fields, rename=rename, forbid_unknown_fields=True, gc=False)
        self.one = msgspec.json.Decoder(self.struct)
        self.many = msgspec.json.Decoder(list[self.struct])  # type: ignore[name-defined]

    def decode(self, raws: Sequence[Any]) -> tuple[list[Any | None], bool]:
        """Each row's features struct, None where a row does not fit (then its dict is used); and whether
        every row fits."""
        if not self.usable:
            return [None] * len(raws), False
        try:  # each raw value is one complete JSON value (msgspec.Raw), so joining them cannot merge rows
            return self.many.decode(b"[" + b",".join(raws) + b"]"), True
        except msgspec.DecodeError:
            out: list[Any | None] = []
            for raw in raws:
                try:
                    out.append(self.one.decode(raw))
                except msgspec.DecodeError:
                    out.append(None)
            return out, False

    def block(self, structs: Sequence[Any], recs: Sequence[Any], predictions: Sequence[Any] | None = None
              ) -> FeatureBlock:
        """The features of rows decoded by :meth:`decode` (all of them), binned (``predictions``: the
        records' predictions, if already read)."""
        if predictions is None:
            predictions = [r.prediction for r in recs]
        binner = self.binner
        n = len(structs)
        cols = list(zip(*map(msgspec.structs.astuple, structs), strict=True)) if n else [()] * len(self.names)
        k = self.k
        # numeric: one (F, n) conversion of every column in binner order (None → NaN), used transposed
        numeric_cols: list[Any] = [()] * len(binner.numeric_names)
        num_mismatch = None
        for c, j in enumerate(self.num_cols):
            numeric_cols[j] = cols[c]
        for j, name in enumerate(binner.numeric_names):
            if name == SCORE_FEATURE:
                numeric_cols[j] = [r.score for r in recs]
            elif name == PREDICTION_FEATURE:
                numeric_cols[j], wrong = _float_column(predictions)
                if wrong is not None:
                    num_mismatch = np.zeros((n, len(numeric_cols)), dtype=bool)
                    num_mismatch[:, j] = wrong
        numeric = np.array(numeric_cols, dtype=np.float64).reshape(len(numeric_cols), n).T
        columns: list[Sequence[Any]] = [()] * len(binner.categorical_names)
        for c, j in enumerate(self.cat_cols):
            columns[j] = cols[k + c]
        for j, name in enumerate(binner.categorical_names):
            if name == PREDICTION_FEATURE:
                columns[j] = predictions
        values, cat_mismatch = category_values(columns)
        return FeatureBlock(numeric, binner.category_codes(values), num_mismatch, cat_mismatch)


_codecs: weakref.WeakKeyDictionary[FeatureBinner, _FeatureCodec] = weakref.WeakKeyDictionary()


def _codec(binner: FeatureBinner) -> _FeatureCodec:
    codec = _codecs.get(binner)
    if codec is None:
        codec = _codecs[binner] = _FeatureCodec(binner)
    return codec


@dataclass
class Decoded:
    """A decoded batch: predictions per model (rows and their positions in the batch), labels and
    rejections with their positions."""

    n: int
    groups: dict[str, tuple[Rows, np.ndarray]] = field(default_factory=dict)
    labels: list[tuple[int, LabelEvent]] = field(default_factory=list)
    rejected: list[tuple[int, Rejection]] = field(default_factory=list)


@dataclass(frozen=True)
class _Batch:
    """What a batch's records are decoded with, and how one goes the validating way (``decode_any``)."""

    values: Sequence[bytes]
    options: DecodeOptions
    now: float | None
    record_ms: Sequence[int] | None
    topic: str
    partition: int
    offsets: Sequence[int] | None

    def validate(self, i: int) -> PredictionEvent | LabelEvent | Rejection:
        return decode_any(self.values[i], topic=self.topic, partition=self.partition,
                          offset=self.offsets[i] if self.offsets is not None else -1, options=self.options,
                          now=self.now, record_timestamp_ms=self.record_ms[i] if self.record_ms is not None else None)


def decode_batch(values: Sequence[bytes], *, binner_of: Callable[[str], FeatureBinner | None],
                 options: DecodeOptions | None = None, now: float | None = None,
                 record_timestamps_ms: Sequence[int] | None = None, topic: str = "", partition: int = -1,
                 offsets: Sequence[int] | None = None, max_bytes: int | None = None,
                 models: frozenset[str] | None = None) -> Decoded:
    """Decode a batch of raw values as ``decode_any`` does each (same ``options``, ``now`` and Kafka
    record timestamps; ``max_bytes``/``models`` override the options'). ``binner_of(model)``: the binner
    the model's rows will be binned with (None: no reference; the rows keep their feature dicts)."""
    opts = options if options is not None else DEFAULT_OPTIONS
    if max_bytes is not None or models is not None:
        opts = replace(opts, max_bytes=opts.max_bytes if max_bytes is None else max_bytes,
                       models=opts.models if models is None else frozenset(models))
    ctx = _Batch(values, opts, now, record_timestamps_ms, topic, partition, offsets)
    out = Decoded(len(values))
    if opts.mapped:  # producers' own field names or the record's time: every record the validating way
        recs: list[Any] = []
        pos, slow = np.zeros(0, dtype=np.int64), list(range(len(values)))
    else:
        recs, pos, slow = _records(values, opts.max_bytes)
    ts, ok = _times(recs, opts, now)
    unset = msgspec.UNSET
    clean = [r.label is unset and r.features is not unset and r.prediction is not unset
             and (r.prediction is not None or r.error is not None) for r in recs]
    names = [r.model for r in recs]
    declared = opts.models
    if recs and not _plain(values):  # a name could hold a control character: such records go the validating way
        ok &= np.fromiter((not _suspect(values[i]) for i in pos.tolist()), dtype=bool, count=len(recs))
    if not slow and names and all(clean) and bool(ok.all()):
        present = list(dict.fromkeys(names))  # in order of first appearance
        if declared is None or all(m in declared for m in present):
            # the common case: clean predictions of one model (a partition of a topic keyed by model) or a few
            if len(present) == 1:
                out.groups[present[0]] = _group(present[0], recs, pos, ts, [], binner_of(present[0]), out, ctx)
                return out
            which = np.array(names, dtype=object)
            for m in present:
                sel = np.flatnonzero(which == m)
                out.groups[m] = _group(m, [recs[j] for j in sel.tolist()], pos[sel], ts[sel], [], binner_of(m), out,
                                       ctx)
            return out
    by_model: dict[str, list[int]] = {}
    labels: list[tuple[int, Any]] = []
    for j, (i, r, good, fine) in enumerate(zip(pos.tolist(), recs, ok.tolist(), clean, strict=True)):
        if not good or (declared is not None and r.model not in declared):
            slow.append(i)
        elif fine:
            by_model.setdefault(r.model, []).append(j)
        elif r.label is not unset:
            labels.append((i, r))
        else:
            slow.append(i)
    out.labels = [(i, LabelEvent(model=r.model, request_id=r.request_id, timestamp=r.timestamp, label=r.label))
                  for i, r in labels]
    extra: dict[str, list[tuple[int, PredictionEvent]]] = {}
    if slow:
        slow.sort()
        for i in slow:
            got = ctx.validate(i)
            if isinstance(got, Rejection):
                out.rejected.append((i, got))
            elif isinstance(got, LabelEvent):
                out.labels.append((i, got))
            else:
                extra.setdefault(got.model, []).append((i, got))
        out.labels.sort(key=lambda x: x[0])
    first = {m: int(pos[idx[0]]) for m, idx in by_model.items()}
    for m, evs in extra.items():
        first[m] = min(first.get(m, evs[0][0]), evs[0][0])
    for model in sorted(first, key=first.__getitem__):  # in order of first appearance, as observe() groups
        sel = np.array(by_model.get(model, []), dtype=np.int64)
        out.groups[model] = _group(model, [recs[j] for j in sel.tolist()], pos[sel], ts[sel], extra.get(model, []),
                                   binner_of(model), out, ctx)
    return out


def _plain(values: Sequence[bytes]) -> bool:
    """No record of the batch can decode to a name with a control character or a backslash (the check
    ``decode_any`` makes per record, once for the batch: ASCII, no JSON escape, no DEL)."""
    joined = b"".join(values)
    return joined.isascii() and b"\\" not in joined and b"\x7f" not in joined


def _records(values: Sequence[bytes], max_bytes: int) -> tuple[list[Any], np.ndarray, list[int]]:
    """Every value decoded as a :class:`Record`: ``(records, their positions, positions that failed)``."""
    decode = _record_decoder.decode
    if values and max(map(len, values)) <= max_bytes:
        try:
            return list(map(decode, values)), np.arange(len(values)), []
        except (msgspec.DecodeError, RecursionError):  # ValidationError is a DecodeError
            pass
    recs: list[Any] = []
    pos: list[int] = []
    slow: list[int] = []
    for i, raw in enumerate(values):
        if len(raw) > max_bytes:
            slow.append(i)
            continue
        try:
            recs.append(decode(raw))
        except (msgspec.DecodeError, RecursionError):
            slow.append(i)
            continue
        pos.append(i)
    return recs, np.array(pos, dtype=np.int64), slow


def _times(recs: list[Any], opts: DecodeOptions, now: float | None) -> tuple[np.ndarray, np.ndarray]:
    """Event times in seconds, as ``decode_any``'s one-pass decoder reads them (epoch numbers in
    ``timestamp_unit``, RFC 3339 or numeric strings parsed; written back to their records), and which it
    accepts: in 1970..2200 and, with ``now``, within ``max_future_skew`` / ``max_event_age`` of it."""
    stamps = [r.timestamp for r in recs]
    unit = opts.timestamp_unit
    kinds = set(map(type, stamps))
    ts = np.array(stamps if kinds <= {float} else [t if type(t) is float else math.nan for t in stamps],
                  dtype=np.float64)
    scaled = unit not in ("s", "auto")
    if unit == "auto":
        with np.errstate(invalid="ignore"):
            a = np.abs(ts)
            big = ~(a < 1e11)  # NaN: a string, parsed below
        if big.any():
            ts = np.where(big, ts / np.where(a < 1e14, 1e3, np.where(a < 1e17, 1e6, 1e9)), ts)
            scaled = True
    elif scaled:
        ts = ts / _DIVISOR[unit]
    if not kinds <= {float}:
        for j, t in enumerate(stamps):
            if type(t) is not float:
                ts[j] = _parse(t, unit)
    if scaled or not kinds <= {float}:
        for r, t in zip(recs, ts.tolist(), strict=True):
            r.timestamp = t
    with np.errstate(invalid="ignore"):
        ok: np.ndarray = (ts >= MIN_TS) & (ts < MAX_TS)  # NaN (unparsable) is not
        if now is not None and opts.max_future_skew_s is not None:
            ok &= ~(ts > now + opts.max_future_skew_s)
        if now is not None and opts.max_event_age_s is not None:
            ok &= ~(ts < now - opts.max_event_age_s)
    return ts, ok


def _parse(t: object, unit: TimestampUnit) -> float:
    try:
        return parse_timestamp(t, unit)  # type: ignore[arg-type]
    except (ValueError, TypeError, OverflowError):
        return math.nan


def _group(model: str, recs: list[Any], pos: np.ndarray, ts: np.ndarray, extra: list[tuple[int, PredictionEvent]],
           binner: FeatureBinner | None, out: Decoded, ctx: _Batch) -> tuple[Rows, np.ndarray]:
    """One model's rows: records whose features fit the reference struct stay records; the others become
    events (their features as a validated dict, or ``decode_any`` when even that fails)."""
    structs: list[Any | None] = [None] * len(recs)
    if binner is not None and recs:
        codec = _codec(binner)
        structs, fit = codec.decode([r.features for r in recs])
        if fit and not extra:  # the common case: every row fits the reference
            rows = Rows(model, recs, ts, binner=binner)
            rows.block = codec.block(structs, recs, rows.predictions())
            return rows, pos
    items: list[tuple[int, Any]] = []
    fast: list[tuple[int, Any, Any]] = []
    for i, r, s in zip(pos.tolist(), recs, structs, strict=True):
        if s is not None:
            fast.append((i, r, s))
            continue
        try:
            feats = _features_decoder.decode(r.features)
        except (msgspec.DecodeError, RecursionError):
            got = ctx.validate(i)
            if isinstance(got, Rejection):
                out.rejected.append((i, got))
                out.rejected.sort(key=lambda x: x[0])
            elif isinstance(got, PredictionEvent):
                items.append((i, got))
            continue
        items.append((i, PredictionEvent(model=r.model, request_id=r.request_id, timestamp=r.timestamp,
                                         features=feats, prediction=r.prediction, model_version=r.model_version,
                                         score=r.score, latency_ms=r.latency_ms, error=r.error)))
    items.extend(extra)
    merged = sorted([*[(i, r) for i, r, _ in fast], *items], key=lambda x: x[0])
    rows = Rows(model, [r for _, r in merged], np.array([r.timestamp for _, r in merged], dtype=np.float64))
    if binner is not None and merged:
        block = FeatureBlock.of_events([r if type(r) is PredictionEvent else r.event() for _, r in merged], binner) \
            if not fast else _merged_block(binner, merged, fast)
        rows.block, rows.binner = block, binner
    return rows, np.array([i for i, _ in merged], dtype=np.int64)


def _merged_block(binner: FeatureBinner, merged: list[tuple[int, Any]], fast: list[tuple[int, Any, Any]]) -> FeatureBlock:
    """A block for rows of which some fit the reference struct (``fast``) and some are events."""
    at = {i: k for k, (i, _) in enumerate(merged)}
    fast_rows = np.array([at[i] for i, _, _ in fast], dtype=np.int64)
    slow_rows = np.array([k for k, (_, r) in enumerate(merged) if type(r) is PredictionEvent], dtype=np.int64)
    a = _codec(binner).block([s for _, _, s in fast], [r for _, r, _ in fast])
    b = FeatureBlock.of_events([merged[k][1] for k in slow_rows.tolist()], binner)
    n = len(merged)
    numeric = np.empty((n, a.numeric.shape[1]), dtype=np.float64)
    numeric[fast_rows], numeric[slow_rows] = a.numeric, b.numeric
    codes = np.empty((n, a.cat_codes.shape[1]), dtype=np.int64)
    codes[fast_rows], codes[slow_rows] = a.cat_codes, b.cat_codes
    masks: list[np.ndarray | None] = []
    for x, y, width in ((a.num_mismatch, b.num_mismatch, numeric.shape[1]), (a.cat_mismatch, b.cat_mismatch,
                                                                             codes.shape[1])):
        if x is None and y is None:
            masks.append(None)
            continue
        m = np.zeros((n, width), dtype=np.bool_)
        if x is not None:
            m[fast_rows] = x
        if y is not None:
            m[slow_rows] = y
        masks.append(m)
    return FeatureBlock(numeric, codes, masks[0], masks[1])
