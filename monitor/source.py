"""Stage 1: one source's events → partial windows.

A *source* is one input partition number (its predictions and its labels, which are keyed alike and so
share the number). :class:`SourceAggregator` observes the source's events into per-(model, version,
window) partial :class:`~monitor.core.aggregate.WindowState` with the source's own watermarks, and closes
a partial window when the source's watermark for that model passes its end. A closed partial becomes a
:class:`~monitor.wire.PartialRecord` for the model's owner (stage 2, :mod:`monitor.owner`), which merges
the partials of every source and finalizes the window. Pure: no I/O, no clock (``now`` is passed in).

Watermarks, per source:

* per model: ``robust max event time − allowed_lateness``. The *robust* maximum is the
  ``ROBUST_K``-th largest event time seen, so a handful of events from the future cannot move it; an event
  more than ``max_future_skew`` ahead of it is held back (quarantined, not observed) until enough others
  confirm that the stream really moved on (then it is observed), or it is evicted to the dead-letter queue
  (when the quarantine is full, or at the end of a replay).
* overall: the same over all the source's models — what the source promises for models it has not seen.
* idle: after ``idle_timeout`` of wall time without events a watermark follows the wall clock (as a
  model's did before); a source that never had an event says it is idle and holds nothing back.

Late labels and late or invalid events change a closed partial after it was published: it is re-sent with
a higher ``seq`` carrying only its :data:`~monitor.wire.EXTRAS` (a re-sent partial replaces the earlier
one, it is never added twice). Labels join their prediction within the source (labels are keyed like
their predictions); a label that finds no prediction within ``label_grace`` is counted as unmatched.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np

from monitor import segments
from monitor.config import MonitorSettings
from monitor.core.aggregate import Batch, WindowState, outcome
from monitor.core.binning import FeatureBinner
from monitor.core.held import HeldPredictions, hash_keys
from monitor.core.reference import ReferenceProfile
from monitor.core.rows import Rows
from monitor.core.windows import WindowSpec, idle_watermark
from monitor.types import UNKNOWN_MODEL, LabelEvent, PredictionEvent, Rejection
from monitor.wire import PartialRecord, WatermarkRecord, extras_of, profile_id, state_to_wire

#: the robust maximum event time is the K-th largest seen (K − 1 outliers cannot move a watermark)
ROBUST_K = 5
#: events held back for being far ahead of their stream, per source, before the oldest is evicted
QUARANTINE_CAP = 1_000
#: a held event is dead-lettered once this many later events of its model stayed behind it, or once its
#: stream moved on by HOLD_WINDOWS windows of event time without catching up with it
HOLD_EVENTS = 1_000
HOLD_WINDOWS = 2

WindowKey = tuple[str | None, float]  # (model version, window start)
#: what :meth:`SourceAggregator.observe` did with each event
OBSERVED, HELD, REFUSED = 0, 1, 2
#: what the caller hands in per event to identify it later (e.g. its Kafka offset); None in tests
Origin = Any


@dataclass
class _Closed:
    """A published partial kept for ``label_grace`` so late labels and counts can still reach it."""

    state: WindowState
    seq: int = 0
    dirty: bool = False


@dataclass
class _Held:
    """A quarantined event: far ahead of its stream's robust maximum."""

    event: PredictionEvent
    origin: Origin
    waited: int = 0  # events of the same model observed since it was held
    since: float | None = None  # the stream's robust max event time when it was held


class RobustMax:
    """The ``k``-th largest of the values added (the smallest while fewer than ``k`` were added).

    >>> r = RobustMax(3)
    >>> for v in (10.0, 5000.0, 11.0, 12.0):
    ...     r.add(v)
    >>> r.value
    11.0
    """

    __slots__ = ("k", "top")

    def __init__(self, k: int = ROBUST_K) -> None:
        self.k = k
        self.top: list[float] = []  # ascending, at most k values

    def add(self, v: float) -> None:
        top = self.top
        if len(top) < self.k:
            bisect.insort(top, v)
        elif v > top[0]:
            top.pop(0)
            bisect.insort(top, v)

    def add_many(self, values: np.ndarray) -> None:
        if values.size > self.k:
            values = np.partition(values, values.size - self.k)[-self.k:]
        for v in values.tolist():
            self.add(v)

    @property
    def value(self) -> float | None:
        """The ``k``-th largest value, or the smallest while fewer than ``k`` were added (a first event from
        the future cannot move it either)."""
        return self.top[0] if self.top else None


@dataclass
class ModelPartials:
    """One model in one source: open and recently closed partial windows, label join, watermark."""

    name: str
    settings: MonitorSettings
    spec: WindowSpec
    reference: ReferenceProfile | None = None
    binner: FeatureBinner | None = None
    profile: str | None = None
    segmenter: segments.Segmenter | None = None
    open: dict[WindowKey, WindowState] = field(default_factory=dict)
    #: events of windows opened before a reference was known, binned at close if one is known by then
    unbinned: dict[WindowKey, list[PredictionEvent]] = field(default_factory=dict)
    closed: dict[WindowKey, _Closed] = field(default_factory=dict)
    top: RobustMax = field(default_factory=RobustMax)
    last_wall: float | None = None
    closed_until: float | None = None
    #: predictions held for duplicate detection and the label join (monitor.core.held), created on use
    held: HeldPredictions | None = None
    #: model version → its code in ``held``
    version_ids: dict[str | None, int] = field(default_factory=dict)
    #: a held prediction's segment keys → their code in ``held``
    segment_ids: dict[segments.RowKeys, int] = field(default_factory=dict)
    #: labels waiting for their prediction, by request-id key: (label, replayed)
    early_labels: dict[int, tuple[LabelEvent, bool]] = field(default_factory=dict)
    #: warm-up rows sent to the owner so far (models without a reference)
    warmup_sent: int = 0
    unattributed_late: int = 0
    unattributed_invalid: int = 0
    unattributed_unmatched: int = 0
    late_events: int = 0

    #: the binner of a reference (shared, so rows binned ahead of observing are binned for the same binner)
    binners: Callable[[ReferenceProfile], FeatureBinner] | None = None

    def __post_init__(self) -> None:
        self.use(self.reference)

    def use(self, reference: ReferenceProfile | None) -> None:
        """Bin with ``reference`` from now on (windows already open keep their rows and are binned at close)."""
        self.reference = reference
        if reference is None:
            self.binner = None
        else:
            self.binner = self.binners(reference) if self.binners is not None else \
                FeatureBinner(reference, multivariate_on(self.settings))
        self.profile = profile_id(reference) if reference is not None else None
        self.segmenter = segments.segmenter_for(self.binner, self.settings)

    @property
    def max_ts(self) -> float | None:
        return self.top.value

    def watermark(self, now: float | None) -> float | None:
        mx = self.max_ts
        event_wm = None if mx is None else mx - self.settings.allowed_lateness_s
        wm = idle_watermark(event_wm, self.last_wall, now, self.settings.idle_timeout_s)
        if self.closed_until is not None and (wm is None or wm < self.closed_until):
            return self.closed_until
        return wm


class SourceAggregator:
    """Stage 1 for one source (see the module docstring).

    ``references(model)`` returns the model's reference profile or None (it may change while running:
    a warm-up profile built by the model's owner). ``epoch`` orders this aggregator's records against a
    previous owner's of the same source (the worker uses the consumer group generation).
    """

    def __init__(self, source: int, settings: MonitorSettings, references: Callable[[str], ReferenceProfile | None],
                 epoch: int = 0, now: float | None = None) -> None:
        self.source = source
        self.settings = settings
        self.references = references
        self.epoch = epoch
        self.spec = WindowSpec(settings.window_s, settings.hop_s if settings.hop else None)
        self.models: dict[str, ModelPartials] = {}
        self.top = RobustMax()
        self.last_wall: float | None = None
        self.started_wall = now
        self.overall_closed: float | None = None
        self.seq = 0
        self.held: list[_Held] = []
        #: released quarantined events: (origin, model, last window end) — done once that window closed
        self.released: list[tuple[Origin, str, float]] = []
        #: events refused or evicted from the quarantine: (origin, event, reason) — the caller dead-letters
        #: them (they are already counted as invalid in their model's data quality)
        self.dead: list[tuple[Origin, PredictionEvent | LabelEvent, str]] = []
        self.declared = frozenset(settings.models) if settings.models else None
        #: offsets below these were observed by a previous owner (checkpoint): their closed windows are done
        self.replayed_below: dict[str, int] = {}
        self.unmatched_labels = 0
        self.empty = False
        #: how long a prediction is held after its event time (duplicate detection, label join)
        self.hold_s = hold_horizon(settings, self.spec.size)
        self._binners: dict[int, tuple[ReferenceProfile, FeatureBinner]] = {}

    # -- ingestion ------------------------------------------------------------------------------
    def binner_for(self, model: str) -> FeatureBinner | None:
        """The binner ``model``'s next rows will be binned with (a batch decoder bins them ahead)."""
        mp = self.models.get(model)
        if mp is not None:
            return mp.binner
        ref = self.references(model)
        return _cached_binner(self._binners, ref, multivariate_on(self.settings)) if ref is not None else None

    def model(self, name: str) -> ModelPartials:
        mp = self.models.get(name)
        if mp is None:
            mp = self.models[name] = ModelPartials(name, self.settings, self.spec, reference=self.references(name),
                                                   binners=partial(_cached_binner, self._binners,
                                                                   multivariate=multivariate_on(self.settings)))
        return mp

    def observe(self, events: Sequence[PredictionEvent | LabelEvent], now: float | None = None,
                origins: Sequence[Origin] | None = None, topic: str = "",
                offsets: Sequence[int] | None = None) -> list[int]:
        """Observe one batch of this source's events (in offset order). Returns per event what happened:
        :data:`OBSERVED`, :data:`HELD` (quarantined: its ``origin`` comes back in :attr:`released` or
        :attr:`dead`) or :data:`REFUSED` (undeclared model or too many models: in :attr:`dead`)."""
        preds: dict[str, list[int]] = {}
        labels: list[tuple[int, LabelEvent]] = []
        for i, e in enumerate(events):
            if isinstance(e, LabelEvent):
                labels.append((i, e))
            else:
                preds.setdefault(e.model, []).append(i)
        groups = {name: (Rows(name, [events[i] for i in idx]), np.array(idx, dtype=np.int64))
                  for name, idx in preds.items()}
        status = self.observe_rows(groups, labels, len(events), now, origins.__getitem__ if origins is not None
                                   else None, topic, np.asarray(offsets, dtype=np.int64) if offsets is not None else None)
        return status.tolist()  # type: ignore[no-any-return]

    def observe_rows(self, groups: dict[str, tuple[Rows, np.ndarray]], labels: Sequence[tuple[int, LabelEvent]],
                     n: int, now: float | None = None, origin: Callable[[int], Origin] | None = None,
                     topic: str = "", offsets: np.ndarray | None = None) -> np.ndarray:
        """:meth:`observe` for a batch of ``n`` records already split by model: ``groups`` maps a model to
        its predictions and their positions in the batch, ``labels`` are ``(position, label)``. ``origin``
        names the record at a position (for :attr:`dead` and :attr:`released`); ``offsets`` are the records'
        offsets in ``topic``. Returns the status per position (rejected records, absent here, stay
        :data:`OBSERVED`)."""
        status = np.full(n, OBSERVED, dtype=np.int8)

        def origin_of(p: int) -> Origin:
            return origin(p) if origin is not None else None

        # refusals are decided for the whole batch before any new model is created (as max_models counts)
        refused = {name: r for name in [*groups, *{lab.model for _, lab in labels}]
                   if (r := self._refusal(name)) is not None}
        below = self.replayed_below.get(topic) if offsets is not None else None
        for name, (rows, pos) in groups.items():
            if name in refused:
                status[pos] = REFUSED
                for j, p in enumerate(pos.tolist()):
                    self._dead(origin_of(p), rows[j], refused[name], now)
                continue
            mp = self.model(name)
            keep = self._admit(mp, rows, pos, origin_of, now)
            status[pos[~keep]] = HELD
            if keep.any():
                chosen = rows if keep.all() else rows.take(np.flatnonzero(keep))
                replayed = None
                if below is not None and offsets is not None:
                    replayed = offsets[pos[keep]] < below
                self._observe_model(mp, chosen, replayed)
            if now is not None:
                mp.last_wall = now
        by_model: dict[str, tuple[list[LabelEvent], list[bool]]] = {}
        for p, lab in labels:
            if lab.model in refused:
                status[p] = REFUSED
                self._dead(origin_of(p), lab, refused[lab.model], now)
                continue
            labs, replays = by_model.setdefault(lab.model, ([], []))
            labs.append(lab)
            replays.append(below is not None and offsets is not None and bool(offsets[p] < below))
        for name, (labs, replays) in by_model.items():
            self._labels(self.model(name), labs, replays)
        if groups and now is not None:
            self.last_wall = now
        return status

    def _refusal(self, model: str) -> str | None:
        if model == UNKNOWN_MODEL:
            return f"invalid event: model name {UNKNOWN_MODEL!r} is reserved (dead letters without a model)"
        if model in self.models:
            return None
        if self.declared is not None and model not in self.declared:
            return f"unknown model {model[:200]!r}: not among the declared models"
        if self.declared is None and len(self.models) >= self.settings.max_models:
            return f"too many models: {model[:200]!r} would be model {len(self.models) + 1} (max_models " \
                   f"{self.settings.max_models}); declare `models` or raise max_models"
        return None

    def _dead(self, origin: Origin, event: PredictionEvent | LabelEvent, reason: str, now: float | None) -> None:
        """Dead-letter an event the source will not observe, and count it as invalid."""
        self.dead.append((origin, event, reason))
        model = event.model if event.model in self.models else None
        self.reject([Rejection(reason, b"", model=model, timestamp=event.timestamp)], now)

    def _admit(self, mp: ModelPartials, rows: Rows, pos: np.ndarray, origin: Callable[[int], Origin],
               now: float | None) -> np.ndarray:
        """Quarantine events far ahead of the stream's robust maximum; release held ones it caught up with."""
        skew = self.settings.max_future_skew_s
        ts = rows.ts
        mp.top.add_many(ts)
        self.top.add_many(ts)
        ref = mp.max_ts if mp.max_ts is not None else self.top.value
        if ref is None or skew is None:
            return np.ones(ts.size, dtype=bool)
        keep: np.ndarray = ts <= ref + skew
        if keep.all() and not self.held:
            return keep
        for j in np.flatnonzero(~keep).tolist():
            self.held.append(_Held(rows[j], origin(int(pos[j])), since=ref))
        self._release(mp, int(keep.sum()), now)
        return keep

    def _release(self, mp: ModelPartials, observed: int, now: float | None) -> None:
        skew = self.settings.max_future_skew_s
        ref = mp.max_ts
        still: list[_Held] = []
        for h in self.held:
            if h.event.model != mp.name:
                still.append(h)
                continue
            if ref is not None and skew is not None and h.event.timestamp <= ref + skew:
                self._observe_model(mp, Rows(mp.name, [h.event]), None)
                self.released.append((h.origin, mp.name, self.spec.last_end(h.event.timestamp)))
                continue
            h.waited += observed
            moved = ref - h.since if ref is not None and h.since is not None else 0.0
            if h.waited >= HOLD_EVENTS or moved >= HOLD_WINDOWS * self.spec.size:
                self._dead(h.origin, h.event, self._far_ahead(h), now)  # the stream went on without it
                continue
            still.append(h)
        self.held = still
        while len(self.held) > QUARANTINE_CAP:
            h = self.held.pop(0)
            self._dead(h.origin, h.event, self._far_ahead(h), now)

    def _settle_held(self, now: float | None) -> None:
        """Held events when traffic stops: the idle watermark moves on with the wall clock, so an event it
        reaches is observed, and one it leaves HOLD_WINDOWS windows behind is dead-lettered."""
        skew = self.settings.max_future_skew_s or 0.0
        lateness = self.settings.allowed_lateness_s
        still: list[_Held] = []
        for h in self.held:
            mp = self.models[h.event.model]
            wm = mp.watermark(now)
            front = wm + lateness if wm is not None else None
            if front is not None and h.event.timestamp <= front + skew:
                self._observe_model(mp, Rows(mp.name, [h.event]), None)
                self.released.append((h.origin, mp.name, self.spec.last_end(h.event.timestamp)))
            elif front is not None and h.since is not None and front - h.since >= HOLD_WINDOWS * self.spec.size:
                self._dead(h.origin, h.event, self._far_ahead(h), now)
            else:
                still.append(h)
        self.held = still

    def _far_ahead(self, h: _Held) -> str:
        ref = self.models[h.event.model].max_ts if h.event.model in self.models else None
        ahead = h.event.timestamp - ref if ref is not None else math.nan
        return (f"invalid event: timestamp is {ahead:,.0f} s ahead of its stream (more than max_future_skew "
                f"{self.settings.max_future_skew}) and {h.waited} later events stayed behind it")

    def _observe_model(self, mp: ModelPartials, rows: Rows, replayed: np.ndarray | None) -> None:
        versions = rows.versions()
        first = versions[0]
        if versions.count(first) == len(versions):
            self._observe_version(mp, first, rows, replayed)
            return
        by_version: dict[str | None, list[int]] = {}
        for i, v in enumerate(versions):
            by_version.setdefault(v, []).append(i)
        for version, idx in by_version.items():
            sel = np.array(idx, dtype=np.int64)
            self._observe_version(mp, version, rows.take(sel), replayed[sel] if replayed is not None else None)

    def _observe_version(self, mp: ModelPartials, version: str | None, rows: Rows,
                         replayed: np.ndarray | None) -> None:
        spec, cu = self.spec, mp.closed_until
        ts = rows.ts
        if cu is not None:
            late = np.array([spec.last_end(t) <= cu for t in ts.tolist()], dtype=bool) if spec.hop is not None \
                else (np.floor(ts / spec.size) * spec.size + spec.size) <= cu
        else:
            late = np.zeros(ts.size, dtype=bool)
        if late.any():
            counted = late & ~replayed if replayed is not None else late  # a previous owner counted those
            if counted.any():
                mp.late_events += int(counted.sum())
                self._count_late(mp, version, ts[counted])
        table = mp.held
        if table is None:
            table = mp.held = HeldPredictions(with_predictions=bool(self.settings.labels_topic))
        dup = self._repeats(mp, version, rows, late, table)
        if dup is not None:
            keep = np.flatnonzero(~dup)
            rows, late = rows.take(keep), late[keep]
            ts = rows.ts
        batch = rows.batch(mp.binner) if mp.binner is not None else None
        assigned = mp.segmenter.assign(batch) if mp.segmenter is not None and batch is not None else None
        for start, idx in spec.starts(ts):
            if cu is not None and start + spec.size <= cu:
                continue
            key = (version, start)
            state = mp.open.get(key)
            if state is None:
                state = mp.open[key] = WindowState.empty(mp.binner, self.settings.exact_ks)
                if mp.binner is None:
                    mp.unbinned[key] = []
            if batch is None:
                batch = rows.batch(None)
            state.ingest(batch, idx, mp.binner)
            if assigned is not None and mp.segmenter is not None:
                mp.segmenter.ingest(state, idx, assigned)
            pending = mp.unbinned.get(key)
            if pending is not None:
                pending.extend(rows[i] for i in idx.tolist())
        fresh = np.flatnonzero(~late)
        if fresh.size:
            self._hold(mp, version, rows, fresh, assigned, table)
            if mp.early_labels:
                self._join_early(mp, rows.keys[fresh])

    def _repeats(self, mp: ModelPartials, version: str | None, rows: Rows, late: np.ndarray,
                 table: HeldPredictions) -> np.ndarray | None:
        """Repeats among the rows that are not late: a request id held already, or seen earlier in the batch,
        is a duplicate — counted in ``duplicates`` of its windows and in no other statistic. Returns their
        mask (None: none)."""
        cand = np.flatnonzero(~late)
        if cand.size == 0:
            return None
        keys = rows.keys if cand.size == late.size else rows.keys[cand]
        seen = table.contains(keys)
        if len(set(keys.tolist())) != keys.size:  # a request id twice in this batch: its later copies repeat
            _, first = np.unique(keys, return_index=True)
            repeat = np.ones(keys.size, dtype=bool)
            repeat[first] = False
            seen |= repeat
        if not seen.any():
            return None
        dup = np.zeros(late.size, dtype=bool)
        dup[cand[seen]] = True
        for t in rows.ts[dup].tolist():
            for w in self.spec.windows_of(t):
                key = (version, w.start)
                state = mp.open.get(key)
                if state is None:
                    closed = mp.closed.get(key)
                    if closed is not None:  # a hopping window that closed already
                        closed.state.duplicates += 1
                        closed.dirty = True
                        continue
                    if mp.closed_until is not None and w.end <= mp.closed_until:
                        continue
                    state = mp.open[key] = WindowState.empty(mp.binner, self.settings.exact_ks)
                    if mp.binner is None:
                        mp.unbinned[key] = []
                state.duplicates += 1
        return dup

    def _hold(self, mp: ModelPartials, version: str | None, rows: Rows, fresh: np.ndarray,
              assigned: segments.Assignment | None, table: HeldPredictions) -> None:
        """Hold the observed rows ``fresh`` (first copies, not late): for duplicate detection and, with a
        labels topic, with their prediction, version and segments for the label join."""
        predictions = groups = None
        if table.with_predictions:
            predictions = rows.predictions()
            if fresh.size != len(rows):
                predictions = [predictions[i] for i in fresh.tolist()]
            if assigned is not None and mp.segmenter is not None:
                ids = mp.segment_ids
                row_keys = mp.segmenter.row_keys(assigned)
                groups = np.array([ids.setdefault(row_keys[i], len(ids)) for i in fresh.tolist()], dtype=np.int32)
        code = mp.version_ids.setdefault(version, len(mp.version_ids))
        table.add(rows.keys[fresh], rows.ts[fresh], predictions, code, groups)

    def _count_late(self, mp: ModelPartials, version: str | None, ts: np.ndarray) -> None:
        for t in ts.tolist():
            closed = mp.closed.get((version, self.spec.windows_of(t)[-1].start))
            if closed is not None:
                closed.state.late += 1
                closed.dirty = True
            else:
                mp.unattributed_late += 1

    def _join_early(self, mp: ModelPartials, keys: np.ndarray) -> None:
        """Labels that arrived before their prediction: join those whose prediction was just held."""
        early = mp.early_labels
        for k in keys.tolist():
            waiting = early.pop(k, None)
            if waiting is not None:
                self._labels(mp, [waiting[0]], [waiting[1]])

    def _labels(self, mp: ModelPartials, labels: list[LabelEvent], replayed: list[bool]) -> None:
        """Join labels with their held predictions; a label whose prediction is not held (yet) waits up to
        ``label_grace`` for it."""
        keys = hash_keys([lab.request_id for lab in labels])
        table = mp.held
        if table is None or not table.with_predictions:
            for k, lab, r in zip(keys.tolist(), labels, replayed, strict=True):
                mp.early_labels[k] = (lab, r)
            return
        found, ts, predictions, versions, groups = table.take(keys)
        names = list(mp.version_ids)
        keys_of = list(mp.segment_ids)
        task = mp.reference.task if mp.reference is not None else None
        joined = iter(zip(ts.tolist(), predictions, versions.tolist(), groups.tolist(), strict=True))
        for k, ok, lab, r in zip(keys.tolist(), found.tolist(), labels, replayed, strict=True):
            if not ok:
                mp.early_labels[k] = (lab, r)
                continue
            t, prediction, v, g = next(joined)
            version = names[v]
            seg_keys = keys_of[g] if g >= 0 else segments.NO_KEYS
            out = outcome(lab.label, prediction, task)
            for w in self.spec.windows_of(t):
                key = (version, w.start)
                state = mp.open.get(key)
                if state is not None:
                    state.perf.add(out)
                    segments.label(state, seg_keys, out)
                    continue
                closed = mp.closed.get(key)
                if closed is not None:
                    closed.state.perf.add(out)
                    segments.label(closed.state, seg_keys, out)
                    closed.dirty = True

    def reject(self, rejections: Iterable[Rejection], now: float | None = None) -> None:
        """Count invalid events in their model's window: the window of their timestamp when it is open or
        recently closed, else the window being filled. Events with no usable model count under
        ``__unknown__``, whose windows follow the rejections' times (or the wall clock ``now``)."""
        size = self.spec.size
        for r in rejections:
            name = r.model if r.model is not None else UNKNOWN_MODEL
            mp = self.model(name)
            ts = r.timestamp
            if ts is None:
                ts = mp.max_ts if mp.max_ts is not None else self.top.value
                if ts is None:
                    ts = now
            if ts is None:
                mp.unattributed_invalid += 1
                continue
            start = self.spec.windows_of(ts)[-1].start
            if name == UNKNOWN_MODEL:
                mp.top.add(ts)
                if now is not None:
                    mp.last_wall = now
            state = next((st for key, st in mp.open.items() if key[1] == start), None)
            if state is None:
                closed = next((c for key, c in mp.closed.items() if key[1] == start), None)
                if closed is not None:
                    closed.state.invalid += 1
                    closed.dirty = True
                    continue
                if name == UNKNOWN_MODEL and (mp.closed_until is None or start + size > mp.closed_until):
                    state = mp.open[(None, start)] = WindowState.empty(None)
                elif mp.open:
                    state = mp.open[max(mp.open, key=_order)]
            if state is None:
                mp.unattributed_invalid += 1
            else:
                state.invalid += 1

    # -- closing ----------------------------------------------------------------------------------
    def advance(self, now: float | None = None) -> list[PartialRecord]:
        """Close every partial window the source's watermarks have passed; re-send changed closed ones."""
        out: list[PartialRecord] = []
        if self.held:
            self._settle_held(now)
        overall = self.overall_watermark(now)
        for mp in self.models.values():
            if mp.reference is None:
                ref = self.references(mp.name)
                if ref is not None:
                    mp.use(ref)
            wm = mp.watermark(now)
            if mp.max_ts is None and overall is not None and (wm is None or overall > wm):
                # no predictions of this model here (dead letters, or labels keyed unlike their predictions):
                # its windows follow the source's overall watermark, so unmatched labels expire and count
                wm = overall
            if wm is not None:
                for key in sorted((k for k in mp.open if k[1] + self.spec.size <= wm), key=_order):
                    out.append(self._close(mp, key))
                if mp.closed_until is None or wm > mp.closed_until:
                    mp.closed_until = wm
            out.extend(self._resend(mp))
            if wm is not None:
                self._expire(mp, wm)
        if overall is not None and (self.overall_closed is None or overall > self.overall_closed):
            self.overall_closed = overall
        return out

    def close_until(self, end: float) -> list[PartialRecord]:
        """Close every partial window ending at or before ``end`` (end of a replay, in window order)."""
        out: list[PartialRecord] = []
        for mp in self.models.values():
            if mp.reference is None and (ref := self.references(mp.name)) is not None:
                mp.use(ref)
            for key in sorted((k for k in mp.open if k[1] + self.spec.size <= end), key=_order):
                out.append(self._close(mp, key))
            if mp.closed_until is None or end > mp.closed_until:
                mp.closed_until = end
            out.extend(self._resend(mp))
        return out

    def open_ends(self) -> list[float]:
        return sorted({k[1] + self.spec.size for mp in self.models.values() for k in mp.open})

    def release_all(self, now: float | None = None) -> None:
        """End of input: held-back events are dead-lettered (nothing came to confirm them)."""
        held, self.held = self.held, []
        for h in held:
            self._dead(h.origin, h.event, self._far_ahead(h), now)

    def _close(self, mp: ModelPartials, key: WindowKey) -> PartialRecord:
        state = mp.open.pop(key)
        rows = mp.unbinned.pop(key, None)
        if rows and mp.binner is not None:  # a reference arrived while the window was open
            binned = WindowState.empty(mp.binner, self.settings.exact_ks)
            batch = Batch.build(rows, mp.binner)
            binned.ingest(batch, np.arange(len(rows)), mp.binner)
            if mp.segmenter is not None:  # segments of these rows (labels joined before are the model's only)
                mp.segmenter.ingest(binned, np.arange(len(rows)), mp.segmenter.assign(batch))
            state.num_counts, state.num_missing, state.num_oor = binned.num_counts, binned.num_missing, binned.num_oor
            state.cat_counts, state.cat_missing, state.cat_unseen = binned.cat_counts, binned.cat_missing, binned.cat_unseen
            state.num_mismatch, state.cat_mismatch = binned.num_mismatch, binned.cat_mismatch
            state.raw = binned.raw
            for seg_key, sub in (binned.segments or {}).items():  # labels already joined to a segment stay
                if state.segments is not None and seg_key in state.segments:
                    sub.perf = state.segments[seg_key].perf
            state.segments = binned.segments
            state.mv_n, state.mv_sum_micro, state.mv_sumsq_micro = binned.mv_n, binned.mv_sum_micro, binned.mv_sumsq_micro
        state.late += mp.unattributed_late
        state.invalid += mp.unattributed_invalid
        state.labels_unmatched += mp.unattributed_unmatched
        mp.unattributed_late = mp.unattributed_invalid = mp.unattributed_unmatched = 0
        version, start = key
        warmup = None
        need = self.settings.warmup_events - mp.warmup_sent
        if rows and mp.binner is None and need > 0:
            # the window's earliest rows by (time, request id): whatever the keying, the owner finds the
            # model's first warmup_events rows among the sources' rows
            chosen = sorted(rows, key=lambda e: (e.timestamp, e.request_id))[:need]
            warmup = [{**e.features, "prediction": e.prediction, "score": e.score, "timestamp": e.timestamp,
                       "request_id": e.request_id} for e in chosen]
            mp.warmup_sent += len(warmup)
        record = PartialRecord(model=mp.name, version=version, start=start, size=self.spec.size, source=self.source,
                               epoch=self.epoch, seq=0, profile=mp.profile if state.num_counts is not None else None,
                               state=state_to_wire(state), warmup=warmup)
        state.raw = None
        segments.trim(state)
        mp.closed[key] = _Closed(state)
        return record

    def _resend(self, mp: ModelPartials) -> list[PartialRecord]:
        out = []
        for (version, start), c in mp.closed.items():
            if c.dirty:
                c.seq += 1
                c.dirty = False
                out.append(PartialRecord(model=mp.name, version=version, start=start, size=self.spec.size,
                                         source=self.source, epoch=self.epoch, seq=c.seq, profile=None,
                                         state=None, extras=extras_of(c.state)))
        return out

    def _expire(self, mp: ModelPartials, wm: float) -> None:
        grace, size = self.settings.label_grace_s, self.spec.size
        for key in [k for k in mp.closed if k[1] + size + grace < wm]:
            del mp.closed[key]
        if mp.held is not None:
            mp.held.expire(wm, self.hold_s)
        if mp.early_labels:
            stale = [k for k, (lab, _) in mp.early_labels.items() if lab.timestamp + grace < wm]
            for k in stale:
                _, replayed = mp.early_labels.pop(k)
                if not replayed:  # a replayed label was already counted by the previous owner
                    self.unmatched_labels += 1
                    self._count_unmatched(mp, wm)

    def _count_unmatched(self, mp: ModelPartials, wm: float) -> None:
        """An unmatched label is counted in the window being filled (the newest open one, else the next)."""
        if mp.open:
            mp.open[max(mp.open, key=_order)].labels_unmatched += 1
        else:
            mp.unattributed_unmatched += 1

    # -- watermarks ---------------------------------------------------------------------------------
    def overall_watermark(self, now: float | None) -> float | None:
        mx = self.top.value
        event_wm = None if mx is None else mx - self.settings.allowed_lateness_s
        wm = idle_watermark(event_wm, self.last_wall, now, self.settings.idle_timeout_s)
        if self.overall_closed is not None and (wm is None or wm < self.overall_closed):
            return self.overall_closed
        return wm

    def idle(self, now: float | None) -> bool:
        """No event ever, and either the input is known to be read to its end (:meth:`drained`) or
        ``idle_timeout`` of wall time passed since this aggregator started."""
        if self.top.value is not None or self.overall_closed is not None:
            return False
        if self.empty:
            return True
        if now is None or self.started_wall is None:
            return False
        return now - self.started_wall > self.settings.idle_timeout_s

    def drained(self) -> None:
        """The caller read this source's input to its end (its high-water mark) and found no event: an
        empty partition says it is idle at once instead of after ``idle_timeout``."""
        self.empty = True

    def watermark_record(self, now: float | None) -> WatermarkRecord:
        """What this source promises now (send it after the partials :meth:`advance` returned)."""
        self.seq += 1
        models = {name: mp.closed_until for name, mp in self.models.items()
                  if mp.closed_until is not None and name != UNKNOWN_MODEL}
        return WatermarkRecord(source=self.source, epoch=self.epoch, seq=self.seq, overall=self.overall_closed,
                               idle=self.idle(now), models=models)

    def freeze_idle_clocks(self, now: float) -> None:
        """While not consuming (backpressure, rebalance), nothing is idle: restart the idle clocks."""
        if self.last_wall is not None:
            self.last_wall = now
        if self.started_wall is not None:
            self.started_wall = now
        for mp in self.models.values():
            if mp.last_wall is not None:
                mp.last_wall = now

    # -- checkpoints ----------------------------------------------------------------------------------
    def checkpoint(self, read_offsets: dict[str, int]) -> dict[str, Any]:
        """What a next owner of this source needs: per model how far windows are closed, and the offsets
        read so far (records below them were observed: their closed windows are already published)."""
        return {"source": self.source, "epoch": self.epoch, "overall": self.overall_closed,
                "models": {n: mp.closed_until for n, mp in self.models.items() if mp.closed_until is not None},
                "read": dict(read_offsets)}

    def restore(self, cp: dict[str, Any]) -> None:
        overall = cp.get("overall")
        if isinstance(overall, int | float):
            self.overall_closed = float(overall)
        for name, cu in (cp.get("models") or {}).items():
            if isinstance(name, str) and isinstance(cu, int | float):
                mp = self.model(name)
                if mp.closed_until is None or cu > mp.closed_until:
                    mp.closed_until = float(cu)
        for topic, off in (cp.get("read") or {}).items():
            if isinstance(topic, str) and isinstance(off, int):
                self.replayed_below[topic] = max(off, self.replayed_below.get(topic, 0))

    # -- observability ------------------------------------------------------------------------------
    def closed_until(self, model: str) -> float | None:
        mp = self.models.get(model)
        return None if mp is None else mp.closed_until

    def pending_labels(self) -> int:
        """Predictions held (for the label join and duplicate detection)."""
        return sum(len(m.held) for m in self.models.values() if m.held is not None)

    def held_bytes(self) -> int:
        """Memory of the held predictions' tables."""
        return sum(m.held.nbytes() for m in self.models.values() if m.held is not None)

    def open_windows(self) -> int:
        return sum(len(m.open) for m in self.models.values())

    def late_events(self) -> int:
        return sum(m.late_events for m in self.models.values())


def multivariate_on(settings: MonitorSettings) -> bool:
    """Whether binners compute per-event multivariate reconstruction errors (``pca_recon`` is enabled)."""
    return "pca_recon" in settings.policy.enabled_methods


def _cached_binner(cache: dict[int, tuple[ReferenceProfile, FeatureBinner]], reference: ReferenceProfile,
                   multivariate: bool) -> FeatureBinner:
    """One binner per reference profile (a source's models and its batch decoder share it)."""
    got = cache.get(id(reference))
    if got is None or got[0] is not reference:
        got = cache[id(reference)] = (reference, FeatureBinner(reference, multivariate))
    return got[1]


def hold_horizon(settings: MonitorSettings, window: float) -> float:
    """How long after its event time a prediction's request id is held: ``window + label_grace`` with a
    labels topic (a label may still join it), else ``dedup_horizon`` (default ``window + allowed_lateness``);
    with both, the longer."""
    dedup = settings.dedup_horizon_s
    if dedup is None:
        dedup = window + settings.allowed_lateness_s
    if settings.labels_topic:
        return max(window + settings.label_grace_s, dedup) if settings.dedup_horizon is not None \
            else window + settings.label_grace_s
    return dedup


def _order(key: WindowKey) -> tuple[float, str]:
    return key[1], key[0] or ""
