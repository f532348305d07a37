"""The pure monitoring pipeline: events in; per-window metric points, alerts and retraining requests out.

``Monitor.observe(batch)`` → ``Monitor.advance(now)`` → :class:`~monitor.types.Emission`. No I/O, no
clock (``now`` is passed in by the adapter and only used to extrapolate the watermark of an idle
model). The streaming worker, ``monitor replay`` and the tests drive this same object.

Late labels: a prediction is remembered (request id → window, prediction) for ``label_grace`` of
event time after its window closes. A label that arrives in that time updates the performance state
of the prediction's window — open or already closed — and a closed window's ``performance`` points are
written again at the next ``advance`` with the same timestamp and tags, so InfluxDB keeps the newest
values (points are idempotent). Labels later than that are counted as unmatched.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from river import drift as rdrift

from monitor.config import MonitorSettings, PolicyConfig, format_duration
from monitor.core.aggregate import Batch, WindowState
from monitor.core.binning import FeatureBinner, StatResult
from monitor.core.changepoint import latency_detector, latency_signal
from monitor.core.drift.ks import ks_exact
from monitor.core.explain import what_moved
from monitor.core.policy import Policy, WindowFacts, decide_drift, drifted_features
from monitor.core.reference import NumericProfile, ReferenceProfile, build_profile
from monitor.core.windows import WindowSpec, idle_watermark
from monitor.types import (
    EVENT_FEATURE,
    Alert,
    DriftResult,
    Emission,
    FieldValue,
    LabelEvent,
    MetricPoint,
    PredictionEvent,
    Rejection,
    RetrainRequest,
    WindowRange,
)

PSEUDO = ("__prediction__", "__score__")
WindowKey = tuple[str | None, float]  # (model_version, window start)


def load_references(path: Path | str) -> dict[str, ReferenceProfile]:
    """A reference profile file, or a directory of them (``*.json``, one per model)."""
    p = Path(path)
    files = sorted(p.glob("*.json")) if p.is_dir() else [p]
    if not files:
        raise ValueError(f"{p}: no reference profiles (*.json) found")
    out: dict[str, ReferenceProfile] = {}
    for f in files:
        prof = ReferenceProfile.load(f)
        out[prof.model] = prof
    return out


def _clean_fields(fields: Iterable[tuple[str, FieldValue | None]]) -> tuple[tuple[str, FieldValue], ...]:
    return tuple((k, v) for k, v in fields
                 if v is not None and not (isinstance(v, float) and not math.isfinite(v)))


@dataclass
class _Closed:
    state: WindowState
    perf_dirty: bool = False
    quality_dirty: bool = False


#: a prediction awaiting its label: (model version, event time, prediction) — a tuple, built per event
_Pending = tuple[str | None, float, object]


def page_hinkley_up(ph: rdrift.PageHinkley, values: Sequence[float]) -> list[int]:
    """Feed ``values`` to a river ``PageHinkley(mode="up")``; the indices where it detects a change.

    The same arithmetic as ``PageHinkley.update`` in one local loop (a method call and a property per
    value cost more than the arithmetic), reading and writing the detector's own state, so the result
    and the detector afterwards are exactly what ``update`` would give (tests/core/test_page_hinkley.py).
    """
    if ph.mode != "up":
        raise ValueError("page_hinkley_up needs mode='up'")
    mean = ph._x_mean
    n, m = float(mean.n), float(mean._mean)
    si, sd, mi, md = ph._sum_increase, ph._sum_decrease, ph._min_increase, float(ph._max_decrease)
    alpha, delta, threshold, min_n = ph.alpha, ph.delta, ph.threshold, ph.min_instances
    detected = ph._drift_detected
    fired: list[int] = []
    for i, x in enumerate(values):
        if detected:  # river resets on the update after a detection
            n, m, si, sd, mi, md, detected = 0.0, 0.0, 0.0, 0.0, math.inf, -1.0, False
        n += 1.0
        m += (1.0 / n) * (x - m)
        dev = x - m
        si = alpha * si + dev - delta
        sd = alpha * sd + dev + delta
        if si < mi:
            mi = si
        if sd > md:
            md = sd
        if n >= min_n:
            detected = si - mi > threshold
            if detected:
                fired.append(i)
    mean.n, mean._mean = n, m
    ph._sum_increase, ph._sum_decrease, ph._min_increase = si, sd, mi
    ph._max_decrease = md  # type: ignore[assignment]  # river starts it at the int -1
    ph._drift_detected = detected
    return fired


@dataclass
class ModelMonitor:
    """State of one model: open windows, recently closed windows, the label join and watermarks."""

    name: str
    settings: MonitorSettings
    spec: WindowSpec
    policy: Policy
    reference: ReferenceProfile | None = None
    binner: FeatureBinner | None = None
    open: dict[WindowKey, WindowState] = field(default_factory=dict)
    closed: dict[WindowKey, _Closed] = field(default_factory=dict)
    max_ts: float | None = None
    last_wall: float | None = None
    closed_until: float | None = None
    joins: dict[str, _Pending] = field(default_factory=dict)
    #: (latest event time, request ids) per observed batch, oldest first, for expiring ``joins``
    join_order: deque[tuple[float, list[str]]] = field(default_factory=deque)
    early_labels: dict[str, LabelEvent] = field(default_factory=dict)
    warmup: list[PredictionEvent] = field(default_factory=list)
    unattributed_late: int = 0
    #: events older than closed windows since start (observability: counted in points too)
    late_events: int = 0
    unattributed_invalid: int = 0
    unmatched_labels: int = 0
    adwin: rdrift.ADWIN = field(default_factory=rdrift.ADWIN)
    page_hinkley: rdrift.PageHinkley = field(init=False)

    def __post_init__(self) -> None:
        self.page_hinkley = latency_detector(self.settings.policy)
        if self.reference is not None and self.binner is None:
            self.binner = FeatureBinner(self.reference)

    # -- ingestion ------------------------------------------------------------------------------
    def observe(self, events: Sequence[PredictionEvent], now: float | None) -> None:
        if self.binner is None and self.settings.warmup_events > 0:
            self._warm_up(events)
        by_version: dict[str | None, list[PredictionEvent]] = {}
        first = events[0].model_version
        if all(e.model_version == first for e in events):
            by_version[first] = list(events)
        else:
            for e in events:
                by_version.setdefault(e.model_version, []).append(e)
        for version, evs in by_version.items():
            self._observe_version(version, evs)
        if now is not None:
            self.last_wall = now

    def _warm_up(self, events: Sequence[PredictionEvent]) -> None:
        need = self.settings.warmup_events - len(self.warmup)
        self.warmup.extend(events[:need])
        if len(self.warmup) >= self.settings.warmup_events:
            rows = [{**e.features, "prediction": e.prediction, "score": e.score} for e in self.warmup]
            self.reference = build_profile(self.name, pd.DataFrame(rows))
            self.binner = FeatureBinner(self.reference)
            self.warmup = []

    def _observe_version(self, version: str | None, events: list[PredictionEvent]) -> None:
        batch = Batch.build(events, self.binner)
        ts = batch.ts
        cu = self.closed_until
        size = self.spec.size
        if cu is not None:
            late = np.array([self.spec.last_end(t) <= cu for t in ts.tolist()], dtype=bool) \
                if self.spec.hop is not None else (np.floor(ts / size) * size + size) <= cu
        else:
            late = np.zeros(ts.size, dtype=bool)
        if late.any():
            self.late_events += int(late.sum())
            self._count_late(version, ts[late])
        exact = self.settings.exact_ks
        for start, rows in self.spec.starts(ts):
            if cu is not None and start + size <= cu:
                continue
            key = (version, start)
            state = self.open.get(key)
            if state is None:
                state = self.open[key] = WindowState.empty(self.binner, exact)
            state.ingest(batch, rows, self.binner)
        ok = ~late
        if ok.any():
            top = float(ts[ok].max())
            if self.max_ts is None or top > self.max_ts:
                self.max_ts = top
        self._remember(version, events, late)
        if self.settings.policy.online_detectors:
            self._detect(version, batch, ok)

    def _count_late(self, version: str | None, ts: np.ndarray) -> None:
        for t in ts.tolist():
            start = self.spec.windows_of(t)[-1].start
            closed = self.closed.get((version, start))
            if closed is not None:
                closed.state.late += 1
                closed.quality_dirty = True
            else:
                self.unattributed_late += 1

    def _remember(self, version: str | None, events: list[PredictionEvent], late: np.ndarray) -> None:
        if not self.settings.labels_topic:
            return  # no ground truth in this deployment: hold nothing per prediction
        dup_windows: list[float] = []
        joins = self.joins
        rids: list[str] = []
        top = -math.inf
        for e, is_late in zip(events, late.tolist(), strict=True):
            if is_late or e.prediction is None:
                continue
            rid = e.request_id
            ts = e.timestamp
            if rid in joins:
                dup_windows.append(ts)
            joins[rid] = (version, ts, e.prediction)
            rids.append(rid)
            if ts > top:
                top = ts
            if self.early_labels:
                early = self.early_labels.pop(rid, None)
                if early is not None:
                    self.label(early)
        if rids:
            self.join_order.append((top, rids))
        for t in dup_windows:
            for w in self.spec.windows_of(t):
                state = self.open.get((version, w.start))
                if state is not None:
                    state.duplicates += 1

    def _detect(self, version: str | None, batch: Batch, ok: np.ndarray) -> None:
        """river ADWIN on the per-event error stream and PageHinkley on latency; mark windows they fire in."""
        adwin = self.adwin
        ts = batch.ts[ok]
        fired_err: list[float] = []
        for t, err in zip(ts.tolist(), batch.error[ok].tolist(), strict=True):
            adwin.update(1.0 if err else 0.0)
            if adwin.drift_detected:
                fired_err.append(t)
        lat = batch.latency[ok]
        present = ~np.isnan(lat)
        lat_ts = ts[present].tolist()
        fired_lat = [lat_ts[i] for i in page_hinkley_up(self.page_hinkley, latency_signal(lat[present]).tolist())]
        for times, attr in ((fired_err, "error_change"), (fired_lat, "latency_change")):
            for t in times:
                for w in self.spec.windows_of(t):
                    state = self.open.get((version, w.start))
                    if state is not None:
                        setattr(state, attr, True)

    def label(self, lab: LabelEvent) -> None:
        pending = self.joins.pop(lab.request_id, None)
        if pending is None:
            self.early_labels[lab.request_id] = lab
            return
        task = self.reference.task if self.reference is not None else None
        version, ts, prediction = pending
        for w in self.spec.windows_of(ts):
            key = (version, w.start)
            state = self.open.get(key)
            if state is not None:
                state.perf.update(lab.label, prediction, task)
                continue
            closed = self.closed.get(key)
            if closed is not None:
                closed.state.perf.update(lab.label, prediction, task)
                closed.perf_dirty = True

    def reject(self, rej: Rejection) -> None:
        if rej.timestamp is not None:
            for w in self.spec.windows_of(rej.timestamp):
                for key, state in self.open.items():
                    if key[1] == w.start:
                        state.invalid += 1
                        return
                for key, closed in self.closed.items():
                    if key[1] == w.start:
                        closed.state.invalid += 1
                        closed.quality_dirty = True
                        return
        self.unattributed_invalid += 1

    # -- closing --------------------------------------------------------------------------------
    def watermark(self, now: float | None) -> float | None:
        event_wm = None if self.max_ts is None else self.max_ts - self.settings.allowed_lateness_s
        return idle_watermark(event_wm, self.last_wall, now, self.settings.idle_timeout_s)

    def advance(self, wm: float | None, out: _Out) -> None:
        if wm is not None:
            due = sorted((k for k in self.open if k[1] + self.spec.size <= wm), key=lambda k: (k[1], k[0] or ""))
            for key in due:
                self._close(key, out)
            if self.closed_until is None or wm > self.closed_until:
                self.closed_until = wm
        self._rewrite_dirty(out)
        if wm is not None:
            self._expire(wm)

    def close_all(self, out: _Out) -> None:
        for key in sorted(self.open, key=lambda k: (k[1], k[0] or "")):
            self._close(key, out)
            end = key[1] + self.spec.size
            if self.closed_until is None or end > self.closed_until:
                self.closed_until = end
        self._rewrite_dirty(out)

    def _close(self, key: WindowKey, out: _Out) -> None:
        state = self.open.pop(key)
        state.late += self.unattributed_late
        state.invalid += self.unattributed_invalid
        self.unattributed_late = self.unattributed_invalid = 0
        version, start = key
        rng = WindowRange(start, start + self.spec.size)
        drift = self._drift(state)
        tags = self._tags(version)
        t_ns = int(round(rng.end * 1e9))
        out.points.extend(window_points(state, drift, tags, t_ns, self.spec.size, self.binner,
                                        self.settings.policy))
        facts = self._facts(version, rng, state, drift)
        alerts, retrain = self.policy.evaluate(facts)
        out.alerts.extend(alerts)
        out.retrain.extend(retrain)
        out.points.extend(transition_points(alerts, retrain, tags, t_ns))
        out.closed.append((self.name, version, rng))
        state.raw = None  # exact-KS values are not needed once the window is final
        self.closed[key] = _Closed(state)

    def _drift(self, state: WindowState) -> list[DriftResult]:
        b = self.binner
        if b is None or state.num_counts is None or state.cat_counts is None:
            return []
        stats = b.drift(state.num_counts, state.cat_counts, self.settings.policy.enabled_methods)
        if state.raw is not None and self.reference is not None:
            stats = [self._exact(s, state) if s.method == "ks" else s for s in stats]
        assert self.reference is not None
        ncat = {name: len(p.categories) + 1 for name, p in self.reference.categorical.items()}
        if self.reference.prediction is not None and hasattr(self.reference.prediction, "categories"):
            ncat["__prediction__"] = len(self.reference.prediction.categories) + 1
        return decide_drift(stats, self.settings.policy, ncat, state.events)

    def _exact(self, s: StatResult, state: WindowState) -> StatResult:
        assert self.binner is not None and state.raw is not None
        j = self.binner.numeric_names.index(s.feature)
        prof = self.binner_profile(s.feature)
        values = np.concatenate(state.raw[j]) if state.raw[j] else np.empty(0)
        if prof is None or values.size == 0:
            return s
        d, p = ks_exact(prof.ks_sample, values)
        return StatResult(s.feature, "ks", float(d), float(p), int(values.size), 0.0)

    def binner_profile(self, feature: str) -> NumericProfile | None:
        ref = self.reference
        if ref is None:
            return None
        if feature == "__score__":
            return ref.score
        if feature == "__prediction__":
            return ref.prediction if isinstance(ref.prediction, NumericProfile) else None
        return ref.numeric.get(feature)

    def _tags(self, version: str | None) -> tuple[tuple[str, str], ...]:
        tags = [("model", self.name), ("window", format_duration(self.spec.size))]
        if version:
            tags.append(("model_version", version))
        return tuple(tags)

    def _facts(self, version: str | None, rng: WindowRange, s: WindowState,
               drift: list[DriftResult]) -> WindowFacts:
        perf = s.perf.values()
        ref = self.reference
        missing: dict[str, float] = {}
        unseen: dict[str, float] = {}
        ref_missing: dict[str, float] = {}
        if self.binner is not None and s.events and s.num_missing is not None and s.cat_missing is not None \
                and s.cat_unseen is not None and ref is not None:
            for j, name in enumerate(self.binner.numeric_names):
                if name not in PSEUDO:
                    missing[name] = float(s.num_missing[j]) / s.events
                    ref_missing[name] = ref.numeric[name].missing_rate
            for j, name in enumerate(self.binner.categorical_names):
                if name not in PSEUDO:
                    missing[name] = float(s.cat_missing[j]) / s.events
                    present = s.events - int(s.cat_missing[j])
                    unseen[name] = float(s.cat_unseen[j]) / present if present else 0.0
                    ref_missing[name] = ref.categorical[name].missing_rate
        return WindowFacts(
            model=self.name, model_version=version, window=rng, events=s.events, drift=drift,
            latency_p95=float(s.latency.quantile(0.95)) if s.latency.count else None,
            errors=s.errors, error_rate=s.errors / s.events if s.events else None,
            error_change=s.error_change, latency_change=s.latency_change,
            accuracy=perf.get("accuracy"), accuracy_n=s.perf.n,
            estimated_accuracy=s.estimated_accuracy,
            missing_rate=missing, unseen_rate=unseen,
            reference_accuracy=ref.performance.get("accuracy") if ref is not None else None,
            reference_missing=ref_missing,
            moved=what_moved(ref, self.binner.numeric_names, s.num_counts, self.binner.categorical_names,
                             s.cat_counts, {d.feature for d in drift if d.drifted}) if self.binner else {},
            top_errors=s.error_top, reference_id=ref.content_hash if ref is not None else "",
        )

    def _rewrite_dirty(self, out: _Out) -> None:
        for (version, start), closed in self.closed.items():
            if not (closed.perf_dirty or closed.quality_dirty):
                continue
            tags = self._tags(version)
            t_ns = int(round((start + self.spec.size) * 1e9))
            if closed.perf_dirty:
                out.points.extend(performance_points(closed.state, tags, t_ns))
            if closed.quality_dirty:
                out.points.append(event_quality_point(closed.state, tags, t_ns))
            closed.perf_dirty = closed.quality_dirty = False

    def _expire(self, wm: float) -> None:
        grace = self.settings.label_grace_s
        for key in [k for k in self.closed if k[1] + self.spec.size + grace < wm]:
            del self.closed[key]
        while self.join_order and self.join_order[0][0] + self.spec.size + grace < wm:
            _, rids = self.join_order.popleft()
            for rid in rids:
                pending = self.joins.get(rid)
                if pending is not None and pending[1] + self.spec.size + grace < wm:
                    del self.joins[rid]
        if self.early_labels:
            stale = [rid for rid, lab in self.early_labels.items() if lab.timestamp + grace < wm]
            for rid in stale:
                del self.early_labels[rid]
            self.unmatched_labels += len(stale)


@dataclass
class _Out:
    points: list[MetricPoint] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    retrain: list[RetrainRequest] = field(default_factory=list)
    closed: list[tuple[str, str | None, WindowRange]] = field(default_factory=list)

    def emission(self) -> Emission:
        return Emission(tuple(self.points), tuple(self.alerts), tuple(self.retrain), tuple(self.closed))


def performance_points(s: WindowState, tags: tuple[tuple[str, str], ...], t_ns: int) -> list[MetricPoint]:
    out = [MetricPoint("performance", (*tags, ("metric", metric)),
                       _clean_fields((("value", float(v)), ("n", s.perf.n))), t_ns)
           for metric, v in s.perf.values().items() if math.isfinite(v)]
    est = s.estimated_accuracy
    if est is not None:
        out.append(MetricPoint("performance", (*tags, ("metric", "estimated_accuracy")),
                               (("value", est), ("n", s.est_n)), t_ns))
    return out


def event_quality_point(s: WindowState, tags: tuple[tuple[str, str], ...], t_ns: int) -> MetricPoint:
    return MetricPoint("data_quality", (*tags, ("feature", EVENT_FEATURE)), (
        ("missing_rate", 0.0), ("out_of_range_rate", 0.0), ("unseen_rate", 0.0),
        ("invalid", s.invalid), ("late", s.late), ("duplicates", s.duplicates)), t_ns)


def window_points(s: WindowState, drift: Sequence[DriftResult], tags: tuple[tuple[str, str], ...],
                  t_ns: int, size: float, binner: FeatureBinner | None, policy: PolicyConfig) -> list[MetricPoint]:
    """Every CONTRACT §3 point of one closed window."""
    pts: list[MetricPoint] = []
    for d in drift:
        if not math.isfinite(d.score):
            continue
        fields = _clean_fields((("score", float(d.score)), ("p_value", d.p_value),
                                ("threshold", float(d.threshold)), ("drifted", d.drifted), ("n", int(d.n))))
        pts.append(MetricPoint("drift", (*tags, ("feature", d.feature), ("method", d.method)), fields, t_ns))
    if drift:
        features = {d.feature for d in drift}
        drifted = drifted_features(drift, policy)
        pts.append(MetricPoint("drift_summary", tags,
                               (("drifted_features", len(drifted)), ("features", len(features))), t_ns))
    if s.latency.count:
        q = s.latency.quantiles([0.5, 0.9, 0.95, 0.99])
        pts.append(MetricPoint("latency", tags, _clean_fields((
            ("p50", float(q[0])), ("p90", float(q[1])), ("p95", float(q[2])), ("p99", float(q[3])),
            ("max", float(s.latency.max)), ("mean", float(s.latency.mean)), ("count", int(s.latency.count)),
            ("change_detected", s.latency_change))), t_ns))
    if s.events:
        pts.append(MetricPoint("errors", tags, (("errors", s.errors), ("total", s.events),
                                                ("rate", s.errors / s.events),
                                                ("change_detected", s.error_change)), t_ns))
    pts.append(MetricPoint("throughput", tags, (("events", s.events), ("events_per_s", s.events / size)), t_ns))
    pts.extend(performance_points(s, tags, t_ns))
    if binner is not None and s.events and s.num_missing is not None and s.num_oor is not None \
            and s.cat_missing is not None and s.cat_unseen is not None:
        for j, name in enumerate(binner.numeric_names):
            if name in PSEUDO:
                continue
            present = s.events - int(s.num_missing[j])
            pts.append(MetricPoint("data_quality", (*tags, ("feature", name)), (
                ("missing_rate", float(s.num_missing[j]) / s.events),
                ("out_of_range_rate", float(s.num_oor[j]) / present if present else 0.0),
                ("unseen_rate", 0.0), ("invalid", 0)), t_ns))
        for j, name in enumerate(binner.categorical_names):
            if name in PSEUDO:
                continue
            present = s.events - int(s.cat_missing[j])
            pts.append(MetricPoint("data_quality", (*tags, ("feature", name)), (
                ("missing_rate", float(s.cat_missing[j]) / s.events), ("out_of_range_rate", 0.0),
                ("unseen_rate", float(s.cat_unseen[j]) / present if present else 0.0), ("invalid", 0)), t_ns))
    pts.append(event_quality_point(s, tags, t_ns))
    return pts


def transition_points(alerts: Sequence[Alert], retrain: Sequence[RetrainRequest],
                      tags: tuple[tuple[str, str], ...], t_ns: int) -> list[MetricPoint]:
    """``alerts`` and ``retraining`` measurements (docs/measurements.md) for dashboard annotations."""
    pts = []
    for a in alerts:
        atags = [*tags, ("alertname", a.labels["alertname"]), ("severity", a.severity)]
        if "feature" in a.labels:
            atags.append(("feature", a.labels["feature"]))
        pts.append(MetricPoint("alerts", tuple(atags), (("firing", 1 if a.status == "firing" else 0),), t_ns))
    for r in retrain:
        evidence = ", ".join(f"{e.feature}:{e.method}={e.score:.3g}" for e in r.evidence)
        pts.append(MetricPoint("retraining", (*tags, ("reason", r.reason)),
                               (("requested", 1), ("evidence", evidence[:1000])), t_ns))
    return pts


class Monitor:
    """The whole pipeline for every model a worker sees."""

    def __init__(self, settings: MonitorSettings, references: Mapping[str, ReferenceProfile] | None = None):
        self.settings = settings
        self.references = dict(references or {})
        self.spec = WindowSpec(settings.window_s, settings.hop_s if settings.hop else None)
        self.policy = Policy(settings.policy, settings.external_url)
        self.models: dict[str, ModelMonitor] = {}
        self.declared = set(settings.models) if settings.models else None
        self.unknown_rejected = 0

    def model(self, name: str) -> ModelMonitor:
        mm = self.models.get(name)
        if mm is None:
            mm = self.models[name] = ModelMonitor(name, self.settings, self.spec, self.policy,
                                                  reference=self.references.get(name))
        return mm

    def observe(self, events: Sequence[PredictionEvent | LabelEvent], now: float | None = None) -> list[Rejection]:
        """Add a batch of events. Returns rejections for events of undeclared models (send them to the DLQ)."""
        preds: dict[str, list[PredictionEvent]] = {}
        labels: list[LabelEvent] = []
        rejected: list[Rejection] = []
        declared = self.declared
        for e in events:
            if declared is not None and e.model not in declared:
                rejected.append(Rejection(f"unknown model {e.model[:200]!r} (declared: {sorted(declared)})",
                                          raw=b"", model=None, timestamp=e.timestamp))
                continue
            if isinstance(e, LabelEvent):
                labels.append(e)
            else:
                preds.setdefault(e.model, []).append(e)
        for model, evs in preds.items():
            self.model(model).observe(evs, now)
        for lab in labels:
            self.model(lab.model).label(lab)
        self.unknown_rejected += len(rejected)
        return rejected

    def reject(self, rejections: Sequence[Rejection]) -> None:
        """Count invalid events in the data quality of their model's window (when the model is known)."""
        for r in rejections:
            if r.model is not None and (self.declared is None or r.model in self.declared):
                self.model(r.model).reject(r)
            else:
                self.unknown_rejected += 1

    def advance(self, now: float | None = None) -> Emission:
        out = _Out()
        for mm in self.models.values():
            mm.advance(mm.watermark(now), out)
        return out.emission()

    def close_all(self) -> Emission:
        out = _Out()
        for mm in self.models.values():
            mm.close_all(out)
        return out.emission()

    def last_window_end(self, ts: float) -> float:
        return self.spec.last_end(ts)

    def last_window_ends(self, ts: np.ndarray) -> np.ndarray:
        """:meth:`last_window_end` for many timestamps (same arithmetic, so the same values)."""
        step = self.spec.step
        out: np.ndarray = np.floor(ts / step) * step + self.spec.size
        return out

    def closed_until(self, model: str) -> float | None:
        mm = self.models.get(model)
        return None if mm is None else mm.closed_until

    def restore(self, model: str, closed_until: float) -> None:
        mm = self.model(model)
        if mm.closed_until is None or closed_until > mm.closed_until:
            mm.closed_until = closed_until
        if mm.max_ts is None:
            mm.max_ts = closed_until + self.settings.allowed_lateness_s

    def forget(self, model: str) -> None:
        """Drop a model's state (its partition moved to another worker, which rebuilds it by replay)."""
        self.models.pop(model, None)

    def late_events(self) -> int:
        """Events that arrived after their windows closed, since start (all models)."""
        return sum(m.late_events for m in self.models.values())

    def pending_labels(self) -> int:
        """Predictions held for the label join and duplicate detection (all models)."""
        return sum(len(m.joins) for m in self.models.values())

    def open_windows(self) -> int:
        return sum(len(m.open) for m in self.models.values())
