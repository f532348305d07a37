"""Finalizing one merged window: statistics, policy, points, alerts and retraining requests.

This is the end of stage 2 (:mod:`monitor.owner`) and the same code for ``monitor replay``, the worker
and the tests: given a window's merged :class:`~monitor.core.aggregate.WindowState` and the reference its
bins were built with, it computes every drift statistic, applies the policy (multiple-testing control,
thresholds, hysteresis, persistence, cooldown) and builds the window's points. Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import numpy as np

from monitor import segments
from monitor.baselines import Baselines
from monitor.config import MonitorSettings, PolicyConfig, format_duration
from monitor.core.aggregate import WindowState
from monitor.core.binning import FeatureBinner, StatResult
from monitor.core.changepoint import ChangeDetector
from monitor.core.drift.ks import ks_exact
from monitor.core.explain import what_moved
from monitor.core.multivariate import drifted_moved as multivariate_moved
from monitor.core.policy import Policy, WindowFacts, decide_drift
from monitor.core.reference import CategoricalProfile, NumericProfile, ReferenceProfile
from monitor.points import drift_points, event_quality_point, performance_points, transition_points, window_points
from monitor.types import (
    PREDICTION_FEATURE,
    PSEUDO_FEATURES,
    SCORE_FEATURE,
    UNKNOWN_MODEL,
    Alert,
    DriftResult,
    Emission,
    MetricPoint,
    RetrainRequest,
    WindowRange,
)


@dataclass
class Out:
    """What finalizing produces, accumulated over windows (see :class:`~monitor.types.Emission`)."""

    points: list[MetricPoint] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    retrain: list[RetrainRequest] = field(default_factory=list)
    closed: list[tuple[str, str | None, WindowRange]] = field(default_factory=list)

    def emission(self) -> Emission:
        return Emission(tuple(self.points), tuple(self.alerts), tuple(self.retrain), tuple(self.closed))


class Finalizer:
    """Turns merged window states into points, alerts and retraining requests (one per owner)."""

    def __init__(self, settings: MonitorSettings, policy: Policy | None = None) -> None:
        self.settings = settings
        self.policy = policy or Policy(settings.policy, settings.external_url)
        self.changes: dict[tuple[str, str | None], ChangeDetector] = {}
        self.window_tag = format_duration(settings.window_s)
        #: trailing and seasonal baselines (monitor/baselines.py)
        self.baselines = Baselines(settings)

    def tags(self, model: str, version: str | None) -> tuple[tuple[str, str], ...]:
        tags = [("model", model), ("window", self.window_tag)]
        if version:
            tags.append(("model_version", version))
        return tuple(tags)

    def close(self, model: str, version: str | None, rng: WindowRange, state: WindowState,
              reference: ReferenceProfile | None, binner: FeatureBinner | None, out: Out) -> None:
        """Finalize one window (``binner`` None or ``state`` without bins: no drift this window)."""
        tags = self.tags(model, version)
        t_ns = int(round(rng.end * 1e9))
        out.closed.append((model, version, rng))
        if model == UNKNOWN_MODEL:  # dead letters without a usable model: only their count
            out.points.append(event_quality_point(state, tags, t_ns))
            return
        stats = self.stats(state, reference, binner)
        seg = segments.joint(self, state, binner, stats)  # one test family with the segments' (monitor/segments.py)
        drift = self.decide(stats, reference, state.events, seg.model_significant if seg else None)
        detector = self.changes.get((model, version))
        if detector is None:
            detector = self.changes[(model, version)] = ChangeDetector(self.settings.policy)
        error_change, latency_change = detector.update(state.errors, state.events, state.latency) \
            if self.settings.policy.online_detectors else (False, False)
        out.points.extend(window_points(state, drift, tags, t_ns, rng.end - rng.start,
                                        binner if state.num_counts is not None else None, self.settings.policy,
                                        latency_change=latency_change, error_change=error_change))
        compared = self.baselines.compare(model, rng, state, binner)
        for b in compared:
            out.points.extend(drift_points(b.drift, (*tags, ("baseline", b.name)), t_ns, self.settings.policy))
        facts = self.facts(model, version, rng, state, drift, reference, binner, error_change, latency_change)
        training = self.baselines.plan(model).training
        facts = replace(facts, baselines=tuple(compared), training_alerts=training.alerts,
                        training_retrain=training.retrain)
        seg_facts = segments.close(self, seg, model, version, rng, state, tags, t_ns, out)
        alerts, retrain = self.policy.evaluate(facts, seg_facts)
        out.alerts.extend(alerts)
        out.retrain.extend(retrain)
        out.points.extend(transition_points(alerts, retrain, tags, t_ns))
        self.baselines.admit(model, rng, state, binner, compared)

    def rewrite(self, model: str, version: str | None, rng: WindowRange, state: WindowState, *, perf: bool,
                quality: bool, out: Out) -> None:
        """Points of a finalized window that late labels or late/invalid events changed (same time and tags:
        InfluxDB keeps the newest values)."""
        tags = self.tags(model, version)
        t_ns = int(round(rng.end * 1e9))
        if perf and model != UNKNOWN_MODEL:
            out.points.extend(performance_points(state, tags, t_ns))
            out.points.extend(segments.rewrite(state, tags, t_ns))
        if quality:
            out.points.append(event_quality_point(state, tags, t_ns))

    def drift(self, state: WindowState, reference: ReferenceProfile | None,
              binner: FeatureBinner | None) -> list[DriftResult]:
        """Every drift statistic of a window with the policy's decision (its own test family)."""
        return self.decide(self.stats(state, reference, binner), reference, state.events)

    def stats(self, state: WindowState, reference: ReferenceProfile | None,
              binner: FeatureBinner | None) -> list[StatResult]:
        """The raw statistics of a window (none without bins or reference)."""
        if binner is None or reference is None or state.num_counts is None or state.cat_counts is None:
            return []
        stats = binner.drift(state.num_counts, state.cat_counts, self.settings.policy.enabled_methods,
                             (state.mv_n, state.mv_sum_micro, state.mv_sumsq_micro))
        if state.raw is not None:
            stats = [self._exact(s, state, reference, binner) if s.method == "ks" else s for s in stats]
        return stats

    def decide(self, stats: list[StatResult], reference: ReferenceProfile | None, events: int,
               significant: Mapping[str, bool] | None = None, policy: PolicyConfig | None = None) -> list[DriftResult]:
        """The policy's decision on ``stats`` (``significant``: from a larger test family, e.g. with segments;
        ``policy``: instead of the configured one, e.g. a segment's with noise margins)."""
        if not stats or reference is None:
            return []
        ncat = {name: len(p.categories) + 1 for name, p in reference.categorical.items()}
        if isinstance(reference.prediction, CategoricalProfile):
            ncat[PREDICTION_FEATURE] = len(reference.prediction.categories) + 1
        return decide_drift(stats, policy or self.settings.policy, ncat, events, reference, significant)

    @staticmethod
    def _exact(s: StatResult, state: WindowState, reference: ReferenceProfile, binner: FeatureBinner) -> StatResult:
        assert state.raw is not None
        j = binner.numeric_names.index(s.feature)
        prof = _numeric_profile(reference, s.feature)
        values = np.concatenate(state.raw[j]) if state.raw[j] else np.empty(0)
        if prof is None or values.size == 0:
            return s
        d, p = ks_exact(prof.ks_sample, values)
        return StatResult(s.feature, "ks", float(d), float(p), int(values.size), 0.0)

    def facts(self, model: str, version: str | None, rng: WindowRange, s: WindowState, drift: list[DriftResult],
              ref: ReferenceProfile | None, binner: FeatureBinner | None, error_change: bool,
              latency_change: bool) -> WindowFacts:
        perf = s.perf.values()
        missing: dict[str, float] = {}
        unseen: dict[str, float] = {}
        ref_missing: dict[str, float] = {}
        if binner is not None and ref is not None and s.events and s.num_missing is not None \
                and s.cat_missing is not None and s.cat_unseen is not None:
            for j, name in enumerate(binner.numeric_names):
                if name not in PSEUDO_FEATURES:
                    missing[name] = float(s.num_missing[j]) / s.events
                    ref_missing[name] = ref.numeric[name].missing_rate
            for j, name in enumerate(binner.categorical_names):
                if name not in PSEUDO_FEATURES:
                    missing[name] = float(s.cat_missing[j]) / s.events
                    present = s.events - int(s.cat_missing[j])
                    unseen[name] = float(s.cat_unseen[j]) / present if present else 0.0
                    ref_missing[name] = ref.categorical[name].missing_rate
        return WindowFacts(
            model=model, model_version=version, window=rng, events=s.events, drift=drift,
            latency_p95=float(s.latency.quantile(0.95)) if s.latency.count else None,
            errors=s.errors, error_rate=s.errors / s.events if s.events else None,
            error_change=error_change, latency_change=latency_change,
            accuracy=perf.get("accuracy"), accuracy_n=s.perf.n,
            estimated_accuracy=s.estimated_accuracy,
            missing_rate=missing, unseen_rate=unseen,
            reference_accuracy=ref.performance.get("accuracy") if ref is not None else None,
            reference_missing=ref_missing,
            moved=what_moved(ref, binner.numeric_names, s.num_counts, binner.categorical_names, s.cat_counts,
                             {d.feature for d in drift if d.drifted}) | multivariate_moved(ref, drift)
            if binner is not None else {},
            top_errors=s.error_top, reference_id=ref.content_hash if ref is not None else "",
        )


def _numeric_profile(ref: ReferenceProfile, feature: str) -> NumericProfile | None:
    if feature == SCORE_FEATURE:
        return ref.score
    if feature == PREDICTION_FEATURE:
        return ref.prediction if isinstance(ref.prediction, NumericProfile) else None
    return ref.numeric.get(feature)
