"""The InfluxDB points of a finalized window (docs/measurements.md): drift, latency, errors, throughput,
performance, data quality, and the ``alerts``/``retraining`` transition measurements."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np

from monitor.config import PolicyConfig
from monitor.core.aggregate import WindowState
from monitor.core.binning import FeatureBinner
from monitor.core.policy import drifted_features
from monitor.types import (
    EVENT_FEATURE,
    PSEUDO_FEATURES,
    Alert,
    DriftResult,
    FieldValue,
    MetricPoint,
    RetrainRequest,
)

Tags = tuple[tuple[str, str], ...]


def clean_fields(fields: Iterable[tuple[str, FieldValue | None]]) -> tuple[tuple[str, FieldValue], ...]:
    """Drop absent and non-finite values (InfluxDB has no NaN)."""
    return tuple((k, v) for k, v in fields
                 if v is not None and not (isinstance(v, float) and not math.isfinite(v)))


def performance_points(s: WindowState, tags: Tags, t_ns: int) -> list[MetricPoint]:
    out = [MetricPoint("performance", (*tags, ("metric", metric)),
                       clean_fields((("value", float(v)), ("n", s.perf.n))), t_ns)
           for metric, v in s.perf.values().items() if math.isfinite(v)]
    est = s.estimated_accuracy
    if est is not None:
        out.append(MetricPoint("performance", (*tags, ("metric", "estimated_accuracy")),
                               (("value", est), ("n", s.est_n)), t_ns))
    return out


def event_quality_point(s: WindowState, tags: Tags, t_ns: int) -> MetricPoint:
    return MetricPoint("data_quality", (*tags, ("feature", EVENT_FEATURE)), (
        ("missing_rate", 0.0), ("out_of_range_rate", 0.0), ("unseen_rate", 0.0),
        ("invalid", s.invalid), ("late", s.late), ("duplicates", s.duplicates),
        ("labels_unmatched", s.labels_unmatched)), t_ns)


def drift_points(drift: Sequence[DriftResult], tags: Tags, t_ns: int, policy: PolicyConfig) -> list[MetricPoint]:
    """``drift`` points of one window's statistics and its ``drift_summary`` (``tags`` may carry
    ``baseline`` for drift against a sample baseline)."""
    pts: list[MetricPoint] = []
    for d in drift:
        if not math.isfinite(d.score):
            continue
        fields = clean_fields((("score", float(d.score)), ("p_value", d.p_value),
                                ("threshold", float(d.threshold)), ("drifted", d.drifted),
                                ("exceeds", d.exceeds), ("n", int(d.n))))
        pts.append(MetricPoint("drift", (*tags, ("feature", d.feature), ("method", d.method)), fields, t_ns))
    if drift:
        features = {d.feature for d in drift}
        drifted = drifted_features(drift, policy)
        pts.append(MetricPoint("drift_summary", tags,
                               (("drifted_features", len(drifted)), ("features", len(features))), t_ns))
    return pts


def window_points(s: WindowState, drift: Sequence[DriftResult], tags: Tags, t_ns: int, size: float,
                  binner: FeatureBinner | None, policy: PolicyConfig, *, latency_change: bool = False,
                  error_change: bool = False, event_quality: bool = True) -> list[MetricPoint]:
    """Every point of one finalized window (docs/measurements.md); ``event_quality`` False leaves out the
    ``__event__`` data-quality point (a segment's: late, invalid and duplicate events are the model's)."""
    pts = drift_points(drift, tags, t_ns, policy)
    if s.latency.count:
        q = s.latency.quantiles([0.5, 0.9, 0.95, 0.99])
        pts.append(MetricPoint("latency", tags, clean_fields((
            ("p50", float(q[0])), ("p90", float(q[1])), ("p95", float(q[2])), ("p99", float(q[3])),
            ("max", float(s.latency.max)), ("mean", float(s.latency.mean)), ("count", int(s.latency.count)),
            ("change_detected", latency_change))), t_ns))
    if s.events:
        pts.append(MetricPoint("errors", tags, (("errors", s.errors), ("total", s.events),
                                                ("rate", s.errors / s.events),
                                                ("change_detected", error_change)), t_ns))
    pts.append(MetricPoint("throughput", tags, (("events", s.events), ("events_per_s", s.events / size)), t_ns))
    pts.extend(performance_points(s, tags, t_ns))
    if binner is not None and s.events and s.num_missing is not None and s.num_oor is not None \
            and s.cat_missing is not None and s.cat_unseen is not None:
        for j, name in enumerate(binner.numeric_names):
            if name in PSEUDO_FEATURES:
                continue
            present = s.events - int(s.num_missing[j])
            pts.append(MetricPoint("data_quality", (*tags, ("feature", name)), (
                ("missing_rate", float(s.num_missing[j]) / s.events),
                ("out_of_range_rate", float(s.num_oor[j]) / present if present else 0.0),
                ("unseen_rate", 0.0), ("invalid", 0), ("type_mismatch", _count(s.num_mismatch, j))), t_ns))
        for j, name in enumerate(binner.categorical_names):
            if name in PSEUDO_FEATURES:
                continue
            present = s.events - int(s.cat_missing[j])
            pts.append(MetricPoint("data_quality", (*tags, ("feature", name)), (
                ("missing_rate", float(s.cat_missing[j]) / s.events), ("out_of_range_rate", 0.0),
                ("unseen_rate", float(s.cat_unseen[j]) / present if present else 0.0), ("invalid", 0),
                ("type_mismatch", _count(s.cat_mismatch, j))), t_ns))
    if event_quality:
        pts.append(event_quality_point(s, tags, t_ns))
    return pts


def _count(counts: np.ndarray | None, j: int) -> int:
    return int(counts[j]) if counts is not None else 0


def transition_points(alerts: Sequence[Alert], retrain: Sequence[RetrainRequest],
                      tags: Tags, t_ns: int) -> list[MetricPoint]:
    """``alerts`` and ``retraining`` measurements (docs/measurements.md) for dashboard annotations."""
    pts = []
    for a in alerts:
        atags = [*tags, ("alertname", a.labels["alertname"]), ("severity", a.severity)]
        for key in ("feature", "baseline", "segment"):
            if key in a.labels:
                atags.append((key, a.labels[key]))
        pts.append(MetricPoint("alerts", tuple(atags), (("firing", 1 if a.status == "firing" else 0),), t_ns))
    for r in retrain:
        evidence = ", ".join(f"{e.feature}{f' [{e.segment}]' if e.segment else ''}:{e.method}={e.score:.3g}"
                             for e in r.evidence)
        pts.append(MetricPoint("retraining", (*tags, ("reason", r.reason)),
                               (("requested", 1), ("evidence", evidence[:1000])), t_ns))
    return pts
