"""The records stage 1 and stage 2 exchange over the ``monitor.partials`` topic, in a compact binary form.

Stage 1 (every worker, for the input partitions it owns) publishes, per source partition:

* :class:`PartialRecord` — one closed *partial window*: the window state of one model version built from
  one source partition's events (bin counts, sketches and counters as raw numpy buffers in msgpack, not
  JSON lists of floats). Its identity is ``(model, version, start, source)``; ``(epoch, seq)`` orders its
  versions, so a re-sent partial *replaces* the earlier one and is never added twice. ``seq`` 0 carries
  the whole state; later ``seq`` carry only the parts that can still change after the partial closed
  (labels joined late, late and invalid events, duplicates: :data:`EXTRAS`).
* :class:`WatermarkRecord` — how far the source has progressed in event time, per model it carries and
  overall, so the owner of a model knows when every source has passed a window's end.

Both are keyed by model (watermarks are sent to every partition of the topic) and encoded with msgspec.
"""

from __future__ import annotations

import hashlib
from dataclasses import fields
from typing import Any

import msgspec
import numpy as np
import orjson

from monitor.core.aggregate import PerformanceState, WindowState
from monitor.core.reference import ReferenceProfile
from monitor.core.sketch import LatencySketch

#: the WindowState fields a partial may still change after it closed (sent alone in later generations)
EXTRAS = ("late", "invalid", "duplicates", "labels_unmatched", "perf")


class Array(msgspec.Struct, array_like=True):
    """A numpy array as dtype, shape and its raw little-endian buffer."""

    dtype: str
    shape: tuple[int, ...]
    data: bytes

    @classmethod
    def of(cls, a: np.ndarray) -> Array:
        a = np.ascontiguousarray(a)
        if a.dtype.byteorder == ">":
            a = a.astype(a.dtype.newbyteorder("<"))
        return cls(a.dtype.str, tuple(a.shape), a.tobytes())

    def array(self) -> np.ndarray:
        return np.frombuffer(self.data, dtype=np.dtype(self.dtype)).reshape(self.shape).copy()


def _arr(a: np.ndarray | None) -> Array | None:
    return None if a is None else Array.of(a)


def _np(a: Array | None) -> np.ndarray | None:
    return None if a is None else a.array()


Label = int | float | str | bool


class Performance(msgspec.Struct, array_like=True):
    """A :class:`PerformanceState`: confusion-matrix cells as ``(true, predicted, weight)`` plus sums."""

    cells: list[tuple[Label, Label, float]]
    n_reg: int
    abs_err: float
    sq_err: float

    @classmethod
    def of(cls, p: PerformanceState) -> Performance:
        cells = [(t, q, float(w)) for t, row in p.cm.data.items() for q, w in row.items() if w]
        cells.sort(key=lambda c: (repr(c[0]), repr(c[1])))
        return cls(cells, p.n_reg, p.abs_err, p.sq_err)

    def state(self) -> PerformanceState:
        out = PerformanceState(n_reg=self.n_reg, abs_err=self.abs_err, sq_err=self.sq_err)
        for t, q, w in self.cells:
            out.cm.update(t, q, w)
        return out


class Latency(msgspec.Struct, array_like=True):
    nonzero: Array  # indices of non-empty buckets
    counts: Array
    count: int
    sum_us: int
    max: float

    @classmethod
    def of(cls, s: LatencySketch) -> Latency:
        nz = np.flatnonzero(s.buckets).astype(np.int32)
        return cls(Array.of(nz), Array.of(s.buckets[nz]), s.count, s.sum_us, s.max)

    def sketch(self) -> LatencySketch:
        sk = LatencySketch()
        sk.buckets[self.nonzero.array()] = self.counts.array()
        sk.count, sk.sum_us, sk.max = self.count, self.sum_us, self.max
        return sk


class State(msgspec.Struct, array_like=True, omit_defaults=True):
    """A whole :class:`WindowState` (see :func:`state_to_wire`)."""

    events: int = 0
    errors: int = 0
    est_correct_nano: int = 0
    est_n: int = 0
    late: int = 0
    invalid: int = 0
    duplicates: int = 0
    labels_unmatched: int = 0
    latency: Latency | None = None
    perf: Performance | None = None
    num_counts: Array | None = None
    num_missing: Array | None = None
    num_oor: Array | None = None
    cat_counts: Array | None = None
    cat_missing: Array | None = None
    cat_unseen: Array | None = None
    raw: list[list[Array]] | None = None
    error_top: dict[str, int] | None = None
    #: per segment (``country=PL``) its own state (no segments of its own)
    segments: dict[str, State] | None = None
    num_mismatch: Array | None = None
    cat_mismatch: Array | None = None
    #: multivariate drift sums (appended last: array_like structs of an older version still decode)
    mv_n: int = 0
    mv_sum_micro: int = 0
    mv_sumsq_micro: int = 0


class Extras(msgspec.Struct, array_like=True):
    """The parts of a closed partial that can still change (:data:`EXTRAS`), as absolute values."""

    late: int
    invalid: int
    duplicates: int
    labels_unmatched: int
    perf: Performance
    #: per segment the labelled outcomes joined so far (the only segment part a closed partial can change)
    segments: dict[str, Performance] | None = None


_ARRAYS = ("num_counts", "num_missing", "num_oor", "cat_counts", "cat_missing", "cat_unseen", "num_mismatch",
           "cat_mismatch")
_INTS = ("events", "errors", "est_correct_nano", "est_n", "late", "invalid", "duplicates", "labels_unmatched",
         "mv_n", "mv_sum_micro", "mv_sumsq_micro")
#: every WindowState field and how it travels; tests/test_wire.py fails when a new field is missing here
WIRE_FIELDS = frozenset((*_ARRAYS, *_INTS, "latency", "perf", "raw", "error_top", "segments"))


def state_to_wire(s: WindowState) -> State:
    """A :class:`WindowState` as a msgspec struct (raw numpy buffers)."""
    out = State(
        latency=Latency.of(s.latency) if s.latency.count else None,
        perf=Performance.of(s.perf) if s.perf.n else None,
        raw=[[Array.of(a) for a in col] for col in s.raw] if s.raw is not None else None,
        error_top=dict(s.error_top) if s.error_top else None,
        segments={k: state_to_wire(v) for k, v in s.segments.items()} if s.segments else None,
    )
    for k in _INTS:
        setattr(out, k, getattr(s, k))
    for k in _ARRAYS:
        setattr(out, k, _arr(getattr(s, k)))
    return out


def state_from_wire(w: State) -> WindowState:
    s = WindowState()
    for k in _INTS:
        setattr(s, k, getattr(w, k))
    for k in _ARRAYS:
        setattr(s, k, _np(getattr(w, k)))
    if w.latency is not None:
        s.latency = w.latency.sketch()
    if w.perf is not None:
        s.perf = w.perf.state()
    if w.raw is not None:
        s.raw = [[a.array() for a in col] for col in w.raw]
    if w.error_top:
        s.error_top = dict(w.error_top)
    if w.segments:
        s.segments = {k: state_from_wire(v) for k, v in w.segments.items()}
    return s


def extras_of(s: WindowState) -> Extras:
    segments = {k: Performance.of(v.perf) for k, v in s.segments.items() if v.perf.n} if s.segments else None
    return Extras(s.late, s.invalid, s.duplicates, s.labels_unmatched, Performance.of(s.perf), segments or None)


def apply_extras(s: WindowState, e: Extras) -> None:
    """Replace ``s``'s :data:`EXTRAS` with ``e``'s (absolute values: a newer generation replaces)."""
    s.late, s.invalid, s.duplicates, s.labels_unmatched = e.late, e.invalid, e.duplicates, e.labels_unmatched
    s.perf = e.perf.state()
    for key, sub in (s.segments or {}).items():
        perf = (e.segments or {}).get(key)
        sub.perf = perf.state() if perf is not None else PerformanceState()


class PartialRecord(msgspec.Struct, tag="p", array_like=True):
    """One closed partial window of one source (see the module docstring)."""

    model: str
    version: str | None
    start: float
    size: float
    source: int
    epoch: int
    seq: int
    #: id of the reference profile the bins were built with (:func:`profile_id`); None: no bins
    profile: str | None
    #: seq 0: the whole state; later: None (only ``extras``)
    state: State | None
    extras: Extras | None = None
    #: warm-up rows (feature dicts with prediction/score) for models without a reference, else None
    warmup: list[dict[str, Any]] | None = None

    @property
    def end(self) -> float:
        return self.start + self.size


class WatermarkRecord(msgspec.Struct, tag="w", array_like=True):
    """How far ``source`` has progressed: per model it carries (``models``) and overall (``overall``).

    ``overall`` None with ``idle`` True: the source has had no event for ``idle_timeout`` and does not
    hold any window back (an idle input partition, as Flink's ``withIdleness``)."""

    source: int
    epoch: int
    seq: int
    overall: float | None
    idle: bool
    models: dict[str, float]


Record = PartialRecord | WatermarkRecord
_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Record)


def encode(record: Record) -> bytes:
    """msgpack bytes of a record.

    >>> r = WatermarkRecord(source=1, epoch=3, seq=0, overall=60.0, idle=False, models={"m": 30.0})
    >>> decode(encode(r)) == r
    True
    """
    return _encoder.encode(record)


def decode(raw: bytes) -> Record:
    """Inverse of :func:`encode`; raises ``msgspec.DecodeError``/``ValidationError`` on bad input."""
    return _decoder.decode(raw)


def profile_id(profile: ReferenceProfile) -> str:
    """A stable content hash of a reference profile (16 hex digits): partials built with different
    references are never merged."""
    canon = orjson.dumps(profile.to_dict(), option=orjson.OPT_SORT_KEYS | orjson.OPT_SERIALIZE_NUMPY)
    return hashlib.sha256(canon).hexdigest()[:16]


def window_state_fields() -> frozenset[str]:
    """The fields of :class:`WindowState` (for the completeness test of the wire format)."""
    return frozenset(f.name for f in fields(WindowState))


