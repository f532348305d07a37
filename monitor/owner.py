"""Stage 2: the owner of a model merges its partial windows from every source and finalizes each window once.

:class:`ModelOwner` receives :class:`~monitor.wire.PartialRecord` and :class:`~monitor.wire.WatermarkRecord`
(in the worker: from the ``monitor.partials`` partitions it owns; in ``monitor replay``: straight from the
one in-process source). A window of model ``m`` is finalized when every source has passed its end:

    watermark(m) = min over sources s of  (s's watermark for m  if s carries m  else  s's overall watermark)

A source that never had an event and has been idle for ``idle_timeout`` is left out (it holds nothing
back); a source that has not reported at all holds everything back. Finalizing merges the partials (each
source's newest generation, in source order) and runs :class:`~monitor.finalize.Finalizer`: statistics,
policy, points, alerts and retraining exactly once per window.

After a window is finalized its partials are kept for ``label_grace``: a newer generation of a partial
(late labels, late or invalid events) rewrites the window's ``performance`` and ``data_quality`` points
(same time and tags); a partial from a source that had not contributed arrives *late* and its events are
counted as late. Models without a reference profile build one from the first ``warmup_events`` rows their
sources send (in window, then source order: the same profile whatever the keying) and publish it, so the
sources bin with it from then on; a window's drift is computed only when every partial that has events
was binned with the same profile.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from monitor import segments
from monitor.config import MonitorSettings
from monitor.core.aggregate import PerformanceState, WindowState
from monitor.core.binning import FeatureBinner
from monitor.core.changepoint import ChangeDetector
from monitor.core.policy import Policy
from monitor.core.reference import ReferenceProfile, build_profile
from monitor.core.segment_profiles import with_segments
from monitor.finalize import Finalizer, Out
from monitor.lazy import lazy_module
from monitor.policy_state import policy_state_from_dict, policy_state_to_dict
from monitor.types import Emission, WindowRange, rfc3339
from monitor.wire import PartialRecord, Record, WatermarkRecord, apply_extras, extras_of, profile_id, state_from_wire

if TYPE_CHECKING:
    import pandas as pd
else:
    pd = lazy_module("pandas")

log = logging.getLogger("driftline.owner")

WindowKey = tuple[str | None, float]


class ReferenceBook:
    """Reference profiles by model and by content id, with their binners (shared by both stages).

    Profiles come from configuration, from warm-up (built by an owner) or, in the worker, from the
    ``monitor.references`` topic another worker published a warm-up profile to. Adding is atomic per
    dict assignment, so a reader thread may add while the event loop reads."""

    def __init__(self, profiles: Iterable[ReferenceProfile] = ()) -> None:
        self.by_model: dict[str, ReferenceProfile] = {}
        self.by_id: dict[str, ReferenceProfile] = {}
        self._binners: dict[str, FeatureBinner] = {}
        for p in profiles:
            self.add(p)

    def add(self, profile: ReferenceProfile) -> str:
        pid = profile_id(profile)
        self.by_id[pid] = profile
        self.by_model[profile.model] = profile
        return pid

    def get(self, model: str) -> ReferenceProfile | None:
        return self.by_model.get(model)

    def binner(self, pid: str) -> FeatureBinner | None:
        b = self._binners.get(pid)
        if b is None and pid in self.by_id:
            b = self._binners[pid] = FeatureBinner(self.by_id[pid])
        return b


@dataclass
class _Part:
    """One source's newest generation of one partial window."""

    epoch: int
    seq: int
    state: WindowState
    profile: str | None


@dataclass
class _Window:
    parts: dict[int, _Part] = field(default_factory=dict)
    warmup: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    final: WindowState | None = None  # merged, once finalized
    #: finalized by a previous owner (its partials are re-read after a takeover): never finalized again
    inherited: bool = False
    #: events of partials from sources that had not contributed when the window was finalized
    late_from: dict[int, int] = field(default_factory=dict)
    perf_dirty: bool = False
    quality_dirty: bool = False


@dataclass
class _Model:
    windows: dict[WindowKey, _Window] = field(default_factory=dict)
    closed_until: float | None = None
    warmup_rows: list[dict[str, Any]] = field(default_factory=list)
    late_partials: int = 0


@dataclass
class _SourceMark:
    epoch: int
    seq: int
    overall: float | None
    idle: bool
    models: dict[str, float]


class ModelOwner:
    """Stage 2 (see the module docstring). ``sources``: the input partition numbers every window waits for.

    ``publish_reference(profile)`` is called when a warm-up profile is built (the worker publishes it for
    the sources; in replay the one source reads the same :class:`ReferenceBook`)."""

    def __init__(self, settings: MonitorSettings, book: ReferenceBook, sources: Iterable[int],
                 publish_reference: Callable[[ReferenceProfile], None] | None = None) -> None:
        self.settings = settings
        self.book = book
        self.sources = frozenset(sources)
        self.publish_reference = publish_reference
        self.size = settings.window_s
        self.finalizer = Finalizer(settings, Policy(settings.policy, settings.external_url))
        self.models: dict[str, _Model] = {}
        #: per partials partition, each source's newest watermark record read from it
        self.marks: dict[int, dict[int, _SourceMark]] = {}
        #: the partials partition each model's partials arrive on
        self.home: dict[str, int] = {}

    # -- input ------------------------------------------------------------------------------------
    def receive(self, records: Iterable[Record], partition: int = 0) -> None:
        """Records read from one partition of the partials topic, in order. A source sends a model's partials
        and then its watermark to the same partition, so a model's windows are decided only on the marks of
        the partition its partials arrive on (marks on other partitions may overtake its partials)."""
        marks = self.marks.setdefault(partition, {})
        for r in records:
            if isinstance(r, WatermarkRecord):
                old = marks.get(r.source)
                if old is None or (old.epoch, old.seq) < (r.epoch, r.seq):
                    marks[r.source] = _SourceMark(r.epoch, r.seq, r.overall, r.idle, dict(r.models))
            else:
                self.home[r.model] = partition
                self._partial(r)

    def _partial(self, r: PartialRecord) -> None:
        if r.size != self.size:
            log.warning("event=partial_ignored model=%s reason=window_size size=%s expected=%s", r.model, r.size,
                        self.size)
            return
        m = self.models.setdefault(r.model, _Model())
        key = (r.version, r.start)
        w = m.windows.get(key)
        if w is None:
            cu = m.closed_until
            inherited = cu is not None and r.start + self.size <= cu
            if cu is not None and inherited and r.start + self.size + self.settings.label_grace_s < cu:
                m.late_partials += 1  # finalized and expired already: nothing left to rewrite
                return
            w = m.windows[key] = _Window(inherited=inherited)
        if w.final is not None and r.source not in w.parts:
            # a source that had not contributed when the window was finalized: its events came too late
            if r.state is not None:
                state = state_from_wire(r.state)
                w.late_from[r.source] = state.events + state.late
                m.late_partials += 1
                self._refresh_extras(w)
            return
        old = w.parts.get(r.source)
        if old is not None and (old.epoch, old.seq) >= (r.epoch, r.seq):
            return  # an older generation, or a duplicate delivery: the newer one is kept
        if r.state is not None:  # a whole partial (seq 0 of some epoch)
            state = state_from_wire(r.state)
            if w.final is not None and old is not None:
                # a new owner of the source rebuilt it from the same events: only the extras can differ
                apply_extras(old.state, extras_of(state))
                old.epoch, old.seq = r.epoch, r.seq
                self._refresh_extras(w)
                return
            w.parts[r.source] = _Part(r.epoch, r.seq, state, r.profile)
            if r.warmup:
                w.warmup[r.source] = list(r.warmup)
            return
        if old is None or r.extras is None or old.epoch != r.epoch:
            return  # extras of a generation whose whole partial we never had
        apply_extras(old.state, r.extras)
        old.seq = r.seq
        if w.final is not None:
            self._refresh_extras(w)

    def _refresh_extras(self, w: _Window) -> None:
        """Recompute a finalized window's extras (labels, late, invalid, duplicates) from its partials."""
        assert w.final is not None
        f = w.final
        parts = [w.parts[s].state for s in sorted(w.parts)]
        f.late = sum(p.late for p in parts) + sum(w.late_from.values())
        f.invalid = sum(p.invalid for p in parts)
        f.duplicates = sum(p.duplicates for p in parts)
        f.labels_unmatched = sum(p.labels_unmatched for p in parts)
        perf = PerformanceState()
        for p in parts:
            perf.merge_in(p.perf)
        f.perf = perf
        segments.refresh_perf(f, parts)
        w.perf_dirty = w.quality_dirty = True

    # -- watermarks -----------------------------------------------------------------------------------
    def watermark(self, model: str) -> float | None:
        """How far every source has passed for ``model`` (None: some source holds everything back)."""
        home = self.home.get(model)
        marks = self.marks.get(home, {}) if home is not None else {}
        wm = math.inf
        for s in self.sources:
            mark = marks.get(s)
            if mark is None:
                return None
            if mark.idle:
                continue
            v = mark.models.get(model, mark.overall)
            if v is None:
                return None
            wm = min(wm, v)
        return None if wm == math.inf else wm

    # -- finalizing -------------------------------------------------------------------------------------
    def advance(self) -> Emission:
        out = Out()
        for name, m in self.models.items():
            self._adopt(m)
            wm = self.watermark(name)
            if wm is not None:
                self._finalize_until(name, m, wm, out)
            self._rewrites(name, m, out)
            if wm is not None:
                self._expire(m, wm)
        return out.emission()

    def finalize_until(self, end: float) -> Emission:
        """Finalize every window ending at or before ``end`` whatever the watermarks (end of a replay)."""
        out = Out()
        for name, m in self.models.items():
            self._adopt(m)
            self._finalize_until(name, m, end, out)
            self._rewrites(name, m, out)
        return out.emission()

    def _adopt(self, m: _Model) -> None:
        for w in m.windows.values():
            if w.inherited and w.final is None:
                w.final = self._merge(w)

    def _finalize_until(self, name: str, m: _Model, wm: float, out: Out) -> None:
        due = sorted((k for k, w in m.windows.items() if w.final is None and k[1] + self.size <= wm),
                     key=lambda k: (k[1], k[0] or ""))
        for key in due:
            self._finalize(name, m, key, m.windows[key], out)
        if m.closed_until is None or wm > m.closed_until:
            m.closed_until = wm

    def _finalize(self, name: str, m: _Model, key: WindowKey, w: _Window, out: Out) -> None:
        version, start = key
        rng = WindowRange(start, start + self.size)
        parts = [w.parts[s] for s in sorted(w.parts)]
        profiles = {p.profile for p in parts if p.state.num_counts is not None}
        unbinned = any(p.state.num_counts is None and p.state.events for p in parts)
        merged = self._merge(w)
        reference: ReferenceProfile | None = None
        binner: FeatureBinner | None = None
        if len(profiles) == 1 and not unbinned:
            pid = next(iter(profiles))
            if pid is not None:
                reference, binner = self.book.by_id.get(pid), self.book.binner(pid)
        if binner is None:  # no drift this window: no bins, or bins of different references
            merged.num_counts = merged.num_missing = merged.num_oor = None
            merged.cat_counts = merged.cat_missing = merged.cat_unseen = None
            merged.num_mismatch = merged.cat_mismatch = None
            merged.raw = None
            if len(profiles) > 1 or (profiles and unbinned):
                log.warning("event=drift_skipped model=%s window_end=%s reason=partials_with_different_references",
                            name, rfc3339(rng.end))
            reference = self.book.get(name)
        self.finalizer.close(name, version, rng, merged, reference, binner, out)
        merged.raw = None
        w.final = merged
        segments.trim(merged)
        for p in parts:
            p.state.raw = None
            segments.trim(p.state)
        if w.warmup:
            rows = [r for s in sorted(w.warmup) for r in w.warmup[s]]
            rows.sort(key=lambda r: (r["timestamp"], r["request_id"]))
            m.warmup_rows.extend(rows)
            w.warmup = {}
        self._warm_up(name, m, rng)

    def _warm_up(self, name: str, m: _Model, rng: WindowRange) -> None:
        need = self.settings.warmup_events
        if need <= 0 or self.book.get(name) is not None:
            m.warmup_rows = []
            return
        if len(m.warmup_rows) < need:
            return
        rows = pd.DataFrame(m.warmup_rows[:need])
        profile = build_profile(name, rows, built_at=rfc3339(rng.end), **self.settings.policy.build_overrides())
        if self.settings.segments:
            profile = with_segments(profile, rows, self.settings.segments, self.settings.segment_max_values,
                                    strict=False)
        m.warmup_rows = []
        self.book.add(profile)
        log.info("event=warmup_reference_built model=%s rows=%d", name, need)
        if self.publish_reference is not None:
            self.publish_reference(profile)

    def _rewrites(self, name: str, m: _Model, out: Out) -> None:
        for (version, start), w in m.windows.items():
            if w.final is not None and (w.perf_dirty or w.quality_dirty):
                self.finalizer.rewrite(name, version, WindowRange(start, start + self.size), w.final,
                                       perf=w.perf_dirty, quality=w.quality_dirty, out=out)
                w.perf_dirty = w.quality_dirty = False

    def _expire(self, m: _Model, wm: float) -> None:
        horizon = self.size + self.settings.label_grace_s
        for key in [k for k, w in m.windows.items() if w.final is not None and k[1] + horizon < wm]:
            del m.windows[key]

    # -- checkpoints --------------------------------------------------------------------------------------
    def checkpoint(self, model: str) -> dict[str, Any]:
        """What a next owner of ``model`` needs besides the partials it re-reads: how far windows are
        finalized, the policy's state (open alerts, streaks, baselines, cooldown), the change detectors and the
        current block of the trailing/seasonal baselines (closed blocks: :meth:`baseline_records`)."""
        m = self.models.get(model)
        versions = {v for (mm, v) in self.finalizer.policy._state if mm == model}
        versions |= {v for (mm, v) in self.finalizer.changes if mm == model}
        return {
            "model": model,
            "closed_until": m.closed_until if m is not None else None,
            "baselines": self.finalizer.baselines.checkpoint(model),
            "versions": [
                {"version": v,
                 "policy": policy_state_to_dict(self.finalizer.policy.state(model, v)),
                 "changes": self.finalizer.changes.get((model, v), ChangeDetector(self.settings.policy)).to_dict()}
                for v in sorted(versions, key=lambda v: v or "")],
        }

    def restore(self, cp: dict[str, Any]) -> None:
        model = cp.get("model")
        if not isinstance(model, str):
            return
        m = self.models.setdefault(model, _Model())
        cu = cp.get("closed_until")
        if isinstance(cu, int | float) and (m.closed_until is None or cu > m.closed_until):
            m.closed_until = float(cu)
        self.finalizer.baselines.restore(model, cp.get("baselines"))
        for entry in cp.get("versions") or []:
            v = entry.get("version")
            self.finalizer.policy._state[(model, v)] = policy_state_from_dict(entry.get("policy") or {})
            self.finalizer.changes[(model, v)] = ChangeDetector.from_dict(entry.get("changes") or {},
                                                                          self.settings.policy)

    @staticmethod
    def _merge(w: _Window) -> WindowState:
        """The window's partials merged in source order (the same bits whatever order they arrived in)."""
        merged = WindowState()
        for s in sorted(w.parts):
            merged.merge_in(w.parts[s].state)
        merged.late += sum(w.late_from.values())
        return merged

    def forget_partition(self, partition: int) -> None:
        """Drop what was read from a partials partition (it moved to another worker, which re-reads it)."""
        self.marks.pop(partition, None)
        for model in [m for m, q in self.home.items() if q == partition]:
            self.forget(model)

    def baseline_records(self, model: str) -> list[tuple[str, dict[str, Any]]]:
        """Closed baseline blocks of ``model`` to write to the checkpoint topic before its checkpoint
        (``baseline:<slot>:<model>`` → record; monitor/baselines.py)."""
        return self.finalizer.baselines.records(model)

    def restore_baseline(self, record: dict[str, Any]) -> None:
        """A closed baseline block read back from the checkpoint topic (any order with :meth:`restore`)."""
        self.finalizer.baselines.restore_record(record)

    def forget(self, model: str) -> None:
        """Drop a model's windows, policy, change and baseline state."""
        self.models.pop(model, None)
        self.home.pop(model, None)
        self.finalizer.baselines.forget(model)
        for key in [k for k in self.finalizer.policy._state if k[0] == model]:
            del self.finalizer.policy._state[key]
        for key in [k for k in self.finalizer.changes if k[0] == model]:
            del self.finalizer.changes[key]

    # -- observability ------------------------------------------------------------------------------------
    def closed_until(self, model: str) -> float | None:
        m = self.models.get(model)
        return None if m is None else m.closed_until

    def pending_windows(self) -> int:
        return sum(1 for m in self.models.values() for w in m.windows.values() if w.final is None)

    def late_partials(self) -> int:
        return sum(m.late_partials for m in self.models.values())
