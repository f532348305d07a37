"""Policy: thresholds, multiple-testing control, hysteresis, persistence and cooldown.

Input: a closed window's statistics. Output: drift decisions, alert transitions (firing/resolved) and
retraining requests. Pure: no clock (times are event times), no I/O.

Drift decision for one window (all features' tests form one family):

1. KS (numeric) and χ² (categorical) p-values are corrected with Benjamini–Hochberg at ``alpha``.
2. A test flags a feature only if it is significant *and* its effect size clears a floor (KS D, or
   Cramér's V for χ²), so a 100k-event window does not page on a trivial shift.
3. Distances (PSI, JS, Wasserstein) flag only when above their warning threshold *and* the feature's
   test is significant, so small windows do not page on sampling noise.
4. A feature is drifted when any of its statistics flags; its severity comes from PSI's
   warning/critical thresholds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from monitor.config import PolicyConfig
from monitor.core.binning import StatResult
from monitor.core.drift.multitest import benjamini_hochberg
from monitor.types import Alert, DriftResult, Evidence, RetrainRequest, WindowRange

TESTS = ("ks", "chi2")
PSEUDO_FEATURES = ("__prediction__", "__score__")


def decide_drift(
    stats: Sequence[StatResult],
    policy: PolicyConfig,
    n_categories: Mapping[str, int],
    window_events: int,
) -> list[DriftResult]:
    """Apply BH, effect floors and thresholds to one window's statistics (see module docstring)."""
    tests = [i for i, s in enumerate(stats) if s.method in TESTS and s.p_value is not None]
    significant: dict[str, bool] = {}
    if tests:
        alpha = min(policy.methods[stats[i].method].alpha or 0.01 for i in tests)
        p = np.array([stats[i].p_value for i in tests], dtype=np.float64)
        reject, _ = benjamini_hochberg(p, alpha)
        for i, rej in zip(tests, reject, strict=True):
            significant[stats[i].feature] = significant.get(stats[i].feature, False) or bool(rej)
    enough = window_events >= policy.min_window_events
    out: list[DriftResult] = []
    for s in stats:
        cfg = policy.methods.get(s.method)
        score = s.score
        if s.method == "chi2":
            k = max(n_categories.get(s.feature, 2) - 1, 1)
            score = math.sqrt(s.score / (s.n * k)) if s.n > 0 else 0.0  # Cramér's V
        if cfg is None:
            out.append(DriftResult(s.feature, s.method, score, math.nan, False, s.n, s.p_value, s.error_bound))
            continue
        sig = significant.get(s.feature, True)  # no test for this feature: distances decide alone
        if s.method in TESTS:
            floor = cfg.effect_floor if cfg.effect_floor is not None else cfg.warning
            threshold = floor
            drifted = sig and score >= floor
        else:
            threshold = cfg.warning
            drifted = sig and score >= cfg.warning
        out.append(DriftResult(s.feature, s.method, float(score), float(threshold), bool(drifted and enough),
                               s.n, s.p_value, s.error_bound))
    return out


def drifted_features(drift: Sequence[DriftResult], policy: PolicyConfig) -> set[str]:
    """Features flagged by a decision method (``policy.decision_methods``)."""
    return {d.feature for d in drift if d.drifted and d.method in policy.decision_methods}


@dataclass
class _AlertState:
    labels: dict[str, str]
    started_at: float
    clean: int = 0


@dataclass
class WindowFacts:
    """What the policy needs to know about one closed window of one model version."""

    model: str
    model_version: str | None
    window: WindowRange
    events: int
    drift: Sequence[DriftResult]
    latency_p95: float | None
    errors: int
    error_rate: float | None
    error_change: bool
    latency_change: bool
    accuracy: float | None
    accuracy_n: int
    estimated_accuracy: float | None
    missing_rate: Mapping[str, float]
    unseen_rate: Mapping[str, float]
    reference_accuracy: float | None
    reference_missing: Mapping[str, float]


@dataclass
class PolicyState:
    """Per model version: open alerts, streaks, baselines, cooldown."""

    alerts: dict[tuple[str, str, str], _AlertState] = field(default_factory=dict)
    drift_streak: int = 0
    perf_streak: int = 0
    quality_streak: int = 0
    last_retrain: float | None = None
    latency_baseline: list[float] = field(default_factory=list)
    error_baseline: list[float] = field(default_factory=list)
    accuracy_baseline: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class _Condition:
    alertname: str
    feature: str
    metric: str
    severity: str | None  # None: clean this window
    value: float
    threshold: float
    summary: str
    evaluated: bool = True  # False: no data this window (neither firing nor clean)


class Policy:
    """Stateful policy over a stream of closed windows (one instance per monitor)."""

    def __init__(self, config: PolicyConfig, external_url: str = "") -> None:
        self.config = config
        self.external_url = external_url
        self._state: dict[tuple[str, str | None], PolicyState] = {}

    def state(self, model: str, version: str | None) -> PolicyState:
        return self._state.setdefault((model, version), PolicyState())

    def evaluate(self, facts: WindowFacts) -> tuple[list[Alert], list[RetrainRequest]]:
        st = self.state(facts.model, facts.model_version)
        conditions = self._conditions(facts, st)
        alerts = self._transitions(facts, st, conditions)
        retrain = self._retrain(facts, st, conditions)
        return alerts, retrain

    # -- conditions -----------------------------------------------------------------------------
    def _conditions(self, f: WindowFacts, st: PolicyState) -> list[_Condition]:
        c = self.config
        out: list[_Condition] = []
        by_feature: dict[str, list[DriftResult]] = {}
        for d in f.drift:
            by_feature.setdefault(d.feature, []).append(d)
        sev_cfg = c.methods.get(c.severity_method)
        for feature, results in by_feature.items():
            drifted = [d for d in results if d.drifted and d.method in c.decision_methods]
            sev_result = next((d for d in results if d.method == c.severity_method), results[0])
            name = "PredictionDrift" if feature in PSEUDO_FEATURES else "FeatureDrift"
            severity = None
            if drifted:
                severity = "warning"
                if sev_cfg is not None and sev_result.method == c.severity_method and \
                        sev_result.score >= sev_cfg.critical:
                    severity = "critical"
            elif sev_cfg is not None and sev_result.score >= c.resolve_ratio * sev_cfg.warning \
                    and any(d.method in TESTS and d.p_value is not None and d.p_value < 0.05 for d in results):
                # inside the hysteresis band: neither firing anew nor clean
                out.append(_Condition(name, feature, c.severity_method, None, sev_result.score,
                                      sev_result.threshold, "", evaluated=False))
                continue
            lead = drifted[0] if drifted and sev_result not in drifted else sev_result
            out.append(_Condition(
                name, feature, c.severity_method, severity, lead.score, lead.threshold,
                f"{feature} drifted ({', '.join(f'{d.method}={d.score:.3g}' for d in drifted)})",
            ))
        # latency: relative to the baseline windows (or absolute thresholds when configured)
        if f.latency_p95 is not None:
            base = float(np.median(st.latency_baseline)) if st.latency_baseline else None
            warn = c.latency_p95_warning_ms
            crit = c.latency_p95_critical_ms
            if warn is None and base is not None and len(st.latency_baseline) >= c.baseline_windows:
                warn, crit = base * c.latency_warning_ratio, base * c.latency_critical_ratio
            if warn is not None:
                sev = "critical" if crit is not None and f.latency_p95 >= crit else (
                    "warning" if f.latency_p95 >= warn else None)
                out.append(_Condition("LatencyRegression", "", "p95", sev, f.latency_p95, warn,
                                      f"p95 latency {f.latency_p95:.1f} ms over {warn:.1f} ms"
                                      + (" (PageHinkley change)" if f.latency_change else "")))
            if len(st.latency_baseline) < c.baseline_windows:
                st.latency_baseline.append(f.latency_p95)
        if f.error_rate is not None and f.events >= c.min_error_events:
            base_rate = float(np.median(st.error_baseline)) if st.error_baseline else 0.0
            sev = "critical" if f.error_rate >= c.error_rate_critical else (
                "warning" if f.error_rate >= c.error_rate_warning else None)
            if sev is None and f.error_change and f.errors >= 5 and f.error_rate >= 2 * base_rate \
                    and f.error_rate >= c.error_rate_warning / 2:
                sev = "warning"  # ADWIN saw the error stream change before the absolute threshold
            out.append(_Condition("ErrorRate", "", "error_rate", sev, f.error_rate, c.error_rate_warning,
                                  f"error rate {f.error_rate:.1%}"
                                  + (" (ADWIN change)" if f.error_change else "")))
            if len(st.error_baseline) < c.baseline_windows:
                st.error_baseline.append(f.error_rate)
        for metric, value, n in (("accuracy", f.accuracy, f.accuracy_n),
                                 ("estimated_accuracy", f.estimated_accuracy, f.events)):
            if value is None or n < c.min_labels:
                continue
            base = f.reference_accuracy
            if base is None:
                if len(st.accuracy_baseline) < c.baseline_windows and metric == "accuracy":
                    st.accuracy_baseline.append(value)
                    continue
                base = float(np.median(st.accuracy_baseline)) if st.accuracy_baseline else None
            if base is None:
                continue
            drop = base - value
            sev = "critical" if drop >= c.accuracy_drop_critical else (
                "warning" if drop >= c.accuracy_drop_warning else None)
            name = "AccuracyDrop" if metric == "accuracy" else "EstimatedAccuracyDrop"
            out.append(_Condition(name, "", metric, sev, value, base - c.accuracy_drop_warning,
                                  f"{metric} {value:.3f} vs baseline {base:.3f}"))
        for feature, rate in f.missing_rate.items():
            ref = f.reference_missing.get(feature, 0.0)
            sev = "warning" if rate - ref >= c.missing_rate_increase_warning else None
            out.append(_Condition("DataQuality", feature, "missing_rate", sev, rate,
                                  ref + c.missing_rate_increase_warning, f"{feature} missing rate {rate:.1%}"))
        for feature, rate in f.unseen_rate.items():
            sev = "warning" if rate >= c.unseen_rate_warning else None
            out.append(_Condition("DataQuality", feature, "unseen_rate", sev, rate, c.unseen_rate_warning,
                                  f"{feature} unseen categories {rate:.1%}"))
        return out

    # -- alerts -----------------------------------------------------------------------------------
    def _labels(self, f: WindowFacts, cond: _Condition, severity: str) -> dict[str, str]:
        labels = {"alertname": cond.alertname, "model": f.model, "metric": cond.metric, "severity": severity}
        if cond.feature:
            labels["feature"] = cond.feature
        if f.model_version:
            labels["model_version"] = f.model_version
        return labels

    def _alert(self, f: WindowFacts, labels: dict[str, str], cond: _Condition, status: str,
               started: float) -> Alert:
        description = cond.summary or f"{cond.alertname} on {f.model}"
        return Alert(
            labels=labels,
            annotations={
                "summary": f"{f.model}: {description}",
                "description": f"{description} in window {f.window.start:.0f}–{f.window.end:.0f}",
                "value": f"{cond.value:.6g}",
                "threshold": f"{cond.threshold:.6g}",
            },
            status=status,  # type: ignore[arg-type]
            starts_at=started,
            ends_at=f.window.end if status == "resolved" else None,
            generator_url=f"{self.external_url}?var-model={f.model}" if self.external_url else "",
        )

    def _transitions(self, f: WindowFacts, st: PolicyState, conds: list[_Condition]) -> list[Alert]:
        out: list[Alert] = []
        for cond in conds:
            key = (cond.alertname, cond.feature, cond.metric)
            open_ = st.alerts.get(key)
            if not cond.evaluated:
                continue
            if cond.severity is not None:
                severity = cond.severity
                if open_ is not None and open_.labels.get("severity") == "critical":
                    severity = "critical"  # escalate at once, never de-escalate while firing (no flapping)
                labels = self._labels(f, cond, severity)
                if open_ is not None and open_.labels != labels:
                    # severity changed: resolve the old alert, fire the new one
                    out.append(self._alert(f, open_.labels, cond, "resolved", open_.started_at))
                    open_ = None
                if open_ is None:
                    st.alerts[key] = _AlertState(labels, f.window.end)
                    out.append(self._alert(f, labels, cond, "firing", f.window.end))
                else:
                    open_.clean = 0
            elif open_ is not None:
                open_.clean += 1
                if open_.clean >= self.config.resolve_after_windows:
                    out.append(self._alert(f, open_.labels, cond, "resolved", open_.started_at))
                    del st.alerts[key]
        return out

    # -- retraining -------------------------------------------------------------------------------
    def _retrain(self, f: WindowFacts, st: PolicyState, conds: list[_Condition]) -> list[RetrainRequest]:
        c = self.config
        drifted = [d for d in f.drift if d.drifted and d.method == c.severity_method]
        flagged = drifted_features(f.drift, c)
        st.drift_streak = st.drift_streak + 1 if len(flagged) >= c.retrain_min_features else 0
        perf_bad = any(x.alertname in ("AccuracyDrop", "EstimatedAccuracyDrop") and x.severity == "critical"
                       for x in conds)
        st.perf_streak = st.perf_streak + 1 if perf_bad else 0
        quality_bad = any(x.alertname == "DataQuality" and x.severity is not None for x in conds)
        st.quality_streak = st.quality_streak + 1 if quality_bad else 0
        n = c.retrain_consecutive_windows
        reason: str | None = None
        evidence: list[Evidence] = []
        if st.drift_streak >= n:
            reason = "drift"
            chosen = drifted or [d for d in f.drift if d.drifted and d.feature in flagged]
            evidence = [Evidence(d.feature, d.method, d.score, d.threshold) for d in chosen]
        elif st.perf_streak >= n:
            reason = "performance"
            evidence = [Evidence("__model__", x.metric, x.value, x.threshold) for x in conds
                        if x.alertname in ("AccuracyDrop", "EstimatedAccuracyDrop") and x.severity]
        elif st.quality_streak >= n:
            reason = "data_quality"
            evidence = [Evidence(x.feature, x.metric, x.value, x.threshold) for x in conds
                        if x.alertname == "DataQuality" and x.severity]
        if reason is None:
            return []
        cooldown = c.retrain_cooldown_s
        if st.last_retrain is not None and f.window.end - st.last_retrain < cooldown:
            return []
        st.last_retrain = f.window.end
        return [RetrainRequest(
            model=f.model, model_version=f.model_version, reason=reason,  # type: ignore[arg-type]
            window=f.window, evidence=tuple(evidence), consecutive_windows=n, cooldown_s=cooldown,
        )]
