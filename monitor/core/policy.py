"""Policy: thresholds, multiple-testing control, hysteresis, persistence and cooldown.

Input: a closed window's statistics. Output: drift decisions, alert transitions (firing/resolved) and
retraining requests. Pure: no clock (times are event times), no I/O.

Drift decision for one window (all tests of the window form one family):

1. KS (numeric), χ² (categorical) and the multivariate reconstruction test (``pca_recon``) p-values are
   corrected together with Benjamini–Hochberg at ``alpha``.
2. A statistic *exceeds* when the feature's test is significant *and* the statistic is beyond its
   threshold. With a calibrated reference (format 2) the threshold is the larger of the statistic's
   null quantile at ``calibration_level`` for the window's size (simulated from the reference at build
   time, :mod:`monitor.core.calibration`) and a small practical ``floor`` per method, so a small window
   does not page on sampling noise and a huge one not on a trivial shift. With a format-1 reference:
   the fixed effect floors (KS D, Cramér's V) and the distances' warning thresholds.
3. A feature is *drifted* when a decision method (``decision_methods``) exceeds in a window of at least
   ``min_window_events``; every point of the feature carries that verdict (``drifted``) and its own
   (``exceeds``). Severity comes from PSI's warning/critical thresholds.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from monitor.config import PolicyConfig
from monitor.core import alerttext, explain, segment_policy
from monitor.core.binning import StatResult
from monitor.core.drift.multitest import benjamini_hochberg
from monitor.core.multivariate import FEATURE as MULTIVARIATE
from monitor.core.multivariate import METHOD as MULTIVARIATE_METHOD
from monitor.core.reference import ReferenceProfile
from monitor.types import Alert, DriftResult, Evidence, RetrainRequest, WindowRange, rfc3339

TESTS = ("ks", "chi2", MULTIVARIATE_METHOD)
PSEUDO_FEATURES = ("__prediction__", "__score__")


def family_alpha(policy: PolicyConfig, methods: Iterable[str] = TESTS) -> float:
    """The false-discovery rate of a window's test family: the smallest ``alpha`` of its test methods."""
    cfgs = [policy.methods.get(m) for m in methods]
    return min((c.alpha if c is not None and c.alpha else 0.01 for c in cfgs), default=0.01)


def _used(policy: PolicyConfig, s: StatResult) -> bool:
    """Ignored features and methods a feature does not use are not in the test family (policy.features)."""
    o = policy.features.get(s.feature)
    return o is None or not (o.ignore or (o.methods is not None and s.method not in o.methods))


def joint_significance(groups: Sequence[Sequence[StatResult]], policy: PolicyConfig) -> list[dict[str, bool]]:
    """Benjamini–Hochberg over the tests of every group together (one window: the model's statistics and
    each segment's); per group, feature → whether one of its tests is a discovery.

    >>> from monitor.config import PolicyConfig
    >>> a = [StatResult("x", "ks", 0.3, 1e-6, 500), StatResult("x", "psi", 0.4, None, 500)]
    >>> b = [StatResult("x", "ks", 0.05, 0.03, 500), StatResult("y", "chi2", 9.0, 0.004, 500)]
    >>> joint_significance([a, b], PolicyConfig())
    [{'x': True}, {'x': False, 'y': True}]
    """
    tests = [(g, s) for g, stats in enumerate(groups) for s in stats
             if s.method in TESTS and s.p_value is not None and _used(policy, s)]
    out: list[dict[str, bool]] = [{} for _ in groups]
    if tests:
        alpha = family_alpha(policy, {s.method for _, s in tests})
        reject, _ = benjamini_hochberg(np.array([s.p_value for _, s in tests], dtype=np.float64), alpha)
        for (g, s), rej in zip(tests, reject, strict=True):
            out[g][s.feature] = out[g].get(s.feature, False) or bool(rej)
    return out


def decide_drift(
    stats: Sequence[StatResult],
    policy: PolicyConfig,
    n_categories: Mapping[str, int],
    window_events: int,
    reference: ReferenceProfile | None = None,
    significant: Mapping[str, bool] | None = None,
) -> list[DriftResult]:
    """Apply BH, thresholds and floors to one window's statistics (see module docstring).

    With a calibrated ``reference`` each statistic's threshold is the larger of its calibrated null
    quantile at ``policy.calibration_level`` for the statistic's ``n`` and the method's practical
    ``floor``; otherwise (format-1 or uncalibrated profile) the fixed effect floors and warning
    thresholds. Every result of a feature carries the feature's verdict in ``drifted`` and its own in
    ``exceeds``. ``significant`` (feature → a discovery) replaces the window's own BH when the family is
    larger than ``stats`` (the model's and its segments' tests: :func:`joint_significance`).
    """
    stats = [s for s in stats if _used(policy, s)] if policy.features else stats
    if significant is None:
        significant = joint_significance([stats], policy)[0]
    enough = window_events >= policy.min_window_events
    calibrated = reference is not None and reference.calibrated
    wanted = [i for i, s in enumerate(stats) if s.method in policy.methods and reference is not None
              and (calibrated or s.feature == MULTIVARIATE)]
    null = dict(zip(wanted, reference.null_thresholds(
        [(stats[i].feature, stats[i].method, stats[i].n) for i in wanted], policy.calibration_level),
        strict=True)) if reference is not None and wanted else {}
    rows: list[tuple[StatResult, float, float, bool]] = []
    flagged: set[str] = set()
    for idx, s in enumerate(stats):
        over = policy.features.get(s.feature)
        cfg = policy.method_config(s.feature, s.method)
        score = s.score
        if s.method == "chi2":
            k = max(n_categories.get(s.feature, 2) - 1, 1)
            score = math.sqrt(s.score / (s.n * k)) if s.n > 0 else 0.0  # Cramér's V
        if cfg is None:
            rows.append((s, score, math.nan, False))
            continue
        sig = significant.get(s.feature, True)  # no test for this feature: distances decide alone
        cal = null.get(idx)
        if cal is not None and reference is not None:
            floor = cfg.floor
            if s.method == MULTIVARIATE_METHOD and reference.multivariate is not None:
                floor = reference.multivariate.ref_mean * (1.0 + cfg.floor)
            threshold = max(cal, floor)
        elif s.method in TESTS:
            threshold = cfg.effect_floor if cfg.effect_floor is not None else cfg.warning
        else:
            threshold = cfg.warning
        exceeds = sig and score >= threshold
        deciding = s.method in (over.methods if over is not None and over.methods is not None
                                else policy.decision_methods)
        if exceeds and enough and deciding:
            flagged.add(s.feature)
        rows.append((s, score, threshold, exceeds))
    return [DriftResult(s.feature, s.method, float(score), float(threshold), s.feature in flagged, s.n,
                        s.p_value, s.error_bound, bool(exceeds)) for s, score, threshold, exceeds in rows]


def drifted_features(drift: Sequence[DriftResult], policy: PolicyConfig) -> set[str]:
    """Features the policy flagged in the window (``drifted``: the same on every result of a feature)."""
    return {d.feature for d in drift if d.drifted}


@dataclass
class _AlertState:
    labels: dict[str, str]
    started_at: float
    #: start of the first window of this alert (for the dashboard link)
    first_start: float
    clean: int = 0


@dataclass(frozen=True)
class BaselineDrift:
    """One window's drift against a sample baseline (``trailing``, ``seasonal``: monitor/baselines.py).

    ``alerts``: its drifted features may page (alerts carry label ``baseline``); ``retrain``: they count
    towards retraining requests like drift against the training profile."""

    name: str
    drift: Sequence[DriftResult]
    moved: Mapping[str, str] = field(default_factory=dict)
    alerts: bool = True
    retrain: bool = False
    #: events in the baseline, and a few words on what it is ("trailing 7d")
    events: int = 0
    describe: str = ""


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
    #: "what moved" line per drifted feature (monitor.core.explain.what_moved)
    moved: Mapping[str, str] = field(default_factory=dict)
    #: the window's most frequent error messages → counts (WindowState.error_top)
    top_errors: Mapping[str, int] = field(default_factory=dict)
    #: content hash of the reference profile compared against (ReferenceProfile.content_hash)
    reference_id: str = ""
    #: drift against sample baselines (monitor/baselines.py), and what drift against the training
    #: profile may do (``baselines.training``: page, count towards retraining)
    baselines: Sequence[BaselineDrift] = ()
    training_alerts: bool = True
    training_retrain: bool = True
    #: the segment (``country=PL``) these facts are about; empty: the whole model
    segment: str = ""


@dataclass
class PolicyState:
    """Per model version: open alerts, streaks, baselines, cooldown."""

    #: open alerts by (alertname, feature, metric, extra labels, severity): warning and critical are two
    alerts: dict[tuple[str, str, str, tuple[tuple[str, str], ...], str], _AlertState] = field(default_factory=dict)
    drift_streak: int = 0
    perf_streak: int = 0
    quality_streak: int = 0
    #: start of the first window of each current streak (None when the streak is 0)
    drift_since: float | None = None
    perf_since: float | None = None
    quality_since: float | None = None
    last_retrain: float | None = None
    latency_baseline: list[float] = field(default_factory=list)
    error_baseline: list[float] = field(default_factory=list)
    accuracy_baseline: list[float] = field(default_factory=list)
    #: per segment its own alerts and baselines (its streaks are the model's)
    segments: dict[str, PolicyState] = field(default_factory=dict)


SEVERITIES = ("warning", "critical")


@dataclass(frozen=True)
class _Condition:
    """One alert condition in one window, at every severity it has a threshold for."""

    alertname: str
    feature: str
    metric: str
    severity: str | None  # highest level reached this window; None: clean
    #: severity → (value, threshold) shown in the annotations of that severity's alert
    levels: Mapping[str, tuple[float, float]]
    #: firing headline; ``{threshold}`` is replaced by the alert's own threshold
    firing: str
    #: the value now, for resolved headlines ("p95 latency 36.2 ms")
    current: str
    spec: str = ".3g"  # format of thresholds in the headline
    unit: str = ""
    moved: str = ""  # "what moved" line for the description
    evaluated: bool = True  # False: inside the warning's hysteresis band (neither firing nor clean)
    critical_evaluated: bool = True  # the same for the critical level
    #: further identifying labels, e.g. (("segment", "country=PL"),): part of the alert's identity
    extra: tuple[tuple[str, str], ...] = ()

    def fmt(self, x: float) -> str:
        return format(x, self.spec) + self.unit


class Policy:
    """Stateful policy over a stream of closed windows (one instance per monitor)."""

    def __init__(self, config: PolicyConfig, external_url: str = "") -> None:
        self.config = config
        self.external_url = external_url
        self._state: dict[tuple[str, str | None], PolicyState] = {}

    def state(self, model: str, version: str | None) -> PolicyState:
        return self._state.setdefault((model, version), PolicyState())

    def evaluate(self, facts: WindowFacts,
                 segments: Sequence[WindowFacts] = ()) -> tuple[list[Alert], list[RetrainRequest]]:
        """Alerts and retraining requests of one window of the model and (``segments``) of its segments."""
        st = self.state(facts.model, facts.model_version)
        conditions = self._conditions(facts, st)
        alerts = self._transitions(facts, st, conditions)
        seg_conditions: list[_Condition] = []
        for sf in segments:
            sst = st.segments.setdefault(sf.segment, PolicyState())
            conds = self._segment_conditions(conditions, sf, sst)
            alerts += self._transitions(sf, sst, conds)
            seg_conditions += conds
        retrain = self._retrain(facts, st, conditions + seg_conditions, segments)
        return alerts, retrain

    def _segment_conditions(self, model_conds: Sequence[_Condition], f: WindowFacts,
                            st: PolicyState) -> list[_Condition]:
        """A segment's conditions, labelled ``segment`` and guarded (monitor/core/segment_policy.py)."""
        return segment_policy.guard(self._conditions(f, st), model_conds, f, {key[:3] for key in st.alerts},
                                    self.config.min_window_events)

    # -- conditions -----------------------------------------------------------------------------
    def _conditions(self, f: WindowFacts, st: PolicyState) -> list[_Condition]:
        out = self._drift_conditions(f)
        out += self._latency_conditions(f, st)
        out += self._error_conditions(f, st)
        out += self._accuracy_conditions(f, st)
        out += self._quality_conditions(f)
        return out

    def _drift_conditions(self, f: WindowFacts) -> list[_Condition]:
        """Drift against the training profile, then against each sample baseline allowed to page (its
        alerts carry label ``baseline``: a separate alert per baseline)."""
        out = self._drift_conditions_of(f.drift, f.moved) if f.training_alerts else []
        for b in f.baselines:
            if b.alerts:
                out += self._drift_conditions_of(b.drift, b.moved, b)
        return out

    def _drift_conditions_of(self, drift: Sequence[DriftResult], moved: Mapping[str, str],
                             baseline: BaselineDrift | None = None) -> list[_Condition]:
        c = self.config
        out: list[_Condition] = []
        by_feature: dict[str, list[DriftResult]] = {}
        for d in drift:
            by_feature.setdefault(d.feature, []).append(d)
        for feature, results in by_feature.items():
            sev_cfg = c.method_config(feature, c.severity_method)
            drifted = [d for d in results if d.drifted and d.exceeds]  # the methods that flagged it
            sev_result = next((d for d in results if d.method == c.severity_method), results[0])
            has_sev = sev_cfg is not None and sev_result.method == c.severity_method
            name = "PredictionDrift" if feature in PSEUDO_FEATURES else \
                "MultivariateDrift" if feature == MULTIVARIATE else "FeatureDrift"
            severity = None
            if drifted:
                severity = "warning"
                if has_sev and sev_cfg is not None and sev_result.score >= sev_cfg.critical:
                    severity = "critical"
            evaluated = True
            if not drifted and sev_cfg is not None and sev_result.score >= c.resolve_ratio * sev_cfg.warning \
                    and any(d.method in TESTS and d.p_value is not None and d.p_value < 0.05 for d in results):
                evaluated = False  # inside the hysteresis band: neither firing anew nor clean
            lead = drifted[0] if drifted and sev_result not in drifted else sev_result
            levels = {"warning": (lead.score, lead.threshold)}
            critical_evaluated = True
            if has_sev and sev_cfg is not None:
                levels["critical"] = (sev_result.score, sev_cfg.critical)
                critical_evaluated = severity == "critical" or sev_result.score < c.resolve_ratio * sev_cfg.critical
            stats = ", ".join(f"{d.method}={d.score:.3g}" for d in (drifted or results))
            against = "" if baseline is None else f" against the {baseline.describe or baseline.name} baseline"
            firing = f"{feature} drifted{against} ({stats})"
            if severity == "critical":
                firing += f"; {c.severity_method} {sev_result.score:.3g} over {{threshold}}"
            out.append(_Condition(
                name, feature, c.severity_method, severity, levels, firing,
                current=f"{feature}{against} {stats}", moved=moved.get(feature, ""),
                evaluated=evaluated, critical_evaluated=critical_evaluated,
                extra=() if baseline is None else (("baseline", baseline.name),)))
        return out

    def _latency_conditions(self, f: WindowFacts, st: PolicyState) -> list[_Condition]:
        """p95 against the baseline windows (or absolute thresholds when configured)."""
        c = self.config
        if f.latency_p95 is None:
            return []
        out: list[_Condition] = []
        p95 = f.latency_p95
        base = float(np.median(st.latency_baseline)) if st.latency_baseline else None
        warn, crit = c.latency_p95_warning_ms, c.latency_p95_critical_ms
        if warn is None and base is not None and len(st.latency_baseline) >= c.baseline_windows:
            warn, crit = base * c.latency_warning_ratio, base * c.latency_critical_ratio
        if warn is not None:
            sev = "critical" if crit is not None and p95 >= crit else ("warning" if p95 >= warn else None)
            levels = {"warning": (p95, warn)}
            if crit is not None:
                levels["critical"] = (p95, crit)
            marker = " (latency level changed in this window)" if f.latency_change else ""
            out.append(_Condition(
                "LatencyRegression", "", "p95", sev, levels, f"p95 latency {p95:.1f} ms over {{threshold}}{marker}",
                current=f"p95 latency {p95:.1f} ms", spec=".1f", unit=" ms",
                moved=explain.latency_moved(p95, base)))
        if len(st.latency_baseline) < c.baseline_windows:
            st.latency_baseline.append(p95)
        return out

    def _error_conditions(self, f: WindowFacts, st: PolicyState) -> list[_Condition]:
        c = self.config
        if f.error_rate is None or f.events < c.min_error_events:
            return []
        rate = f.error_rate
        base_rate = float(np.median(st.error_baseline)) if st.error_baseline else 0.0
        sev = "critical" if rate >= c.error_rate_critical else ("warning" if rate >= c.error_rate_warning else None)
        firing = f"error rate {rate:.1%} over {{threshold}}"
        if sev is None and f.error_change and f.errors >= 5 and rate >= 2 * base_rate \
                and rate >= c.error_rate_warning / 2:
            sev = "warning"  # the error rate changed (binomial test) before the absolute threshold
            firing = f"error rate {rate:.1%}, {rate / base_rate:.1f}x its baseline {base_rate:.1%} " \
                     f"(error rate change; threshold {{threshold}})" if base_rate > 0 else \
                     f"error rate {rate:.1%} (error rate change; threshold {{threshold}})"
        elif f.error_change:
            firing += " (error rate change)"
        if len(st.error_baseline) < c.baseline_windows:
            st.error_baseline.append(rate)
        moved = explain.errors_moved(f.top_errors, f.errors) or ""
        return [_Condition("ErrorRate", "", "error_rate", sev,
                           {"warning": (rate, c.error_rate_warning), "critical": (rate, c.error_rate_critical)},
                           firing, current=f"error rate {rate:.1%} ({f.errors:,} of {f.events:,})", spec=".1%",
                           moved=moved)]

    def _accuracy_conditions(self, f: WindowFacts, st: PolicyState) -> list[_Condition]:
        c = self.config
        out: list[_Condition] = []
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
            what = "accuracy" if metric == "accuracy" else "estimated accuracy (from scores)"
            out.append(_Condition(
                name, "", metric, sev,
                {"warning": (value, base - c.accuracy_drop_warning), "critical": (value, base - c.accuracy_drop_critical)},
                f"{what} {value:.3f} under {{threshold}}", current=f"{what} {value:.3f}", spec=".3f",
                moved=f"{what} {value:.3f} vs baseline {base:.3f} (-{drop:.3f}, n={n:,})"))
        return out

    def _quality_conditions(self, f: WindowFacts) -> list[_Condition]:
        c = self.config
        out: list[_Condition] = []
        for feature, rate in f.missing_rate.items():
            ref = f.reference_missing.get(feature, 0.0)
            thr = ref + c.missing_rate_increase_warning
            out.append(_Condition(
                "DataQuality", feature, "missing_rate", "warning" if rate - ref >= c.missing_rate_increase_warning
                else None, {"warning": (rate, thr)}, f"{feature} missing rate {rate:.1%} over {{threshold}}",
                current=f"{feature} missing rate {rate:.1%}", spec=".1%",
                moved=f"{feature} missing in {rate:.1%} of events vs {ref:.1%} in the reference"))
        for feature, rate in f.unseen_rate.items():
            out.append(_Condition(
                "DataQuality", feature, "unseen_rate", "warning" if rate >= c.unseen_rate_warning else None,
                {"warning": (rate, c.unseen_rate_warning)},
                f"{feature} unseen categories {rate:.1%} over {{threshold}}",
                current=f"{feature} unseen categories {rate:.1%}", spec=".1%", moved=f.moved.get(feature, "")))
        return out

    # -- alerts -----------------------------------------------------------------------------------
    def _labels(self, f: WindowFacts, cond: _Condition, severity: str) -> dict[str, str]:
        labels = {"alertname": cond.alertname, "model": f.model, "metric": cond.metric, "severity": severity}
        if cond.feature:
            labels["feature"] = cond.feature
        if f.model_version:
            labels["model_version"] = f.model_version
        labels.update(cond.extra)
        return labels

    def _alert(self, f: WindowFacts, state: _AlertState, cond: _Condition, level: str, status: str) -> Alert:
        labels = state.labels
        value, threshold = cond.levels[level]
        if status == "firing":
            headline = cond.firing.replace("{threshold}", cond.fmt(threshold))
        else:
            headline = f"{cond.alertname} resolved, {cond.current} ({level} threshold {cond.fmt(threshold)})"
        lines = [f"{headline}.", f"Window {alerttext.window_text(f.window, f.events, labels.get('segment', ''))}."]
        if cond.moved:
            lines.append(f"What moved: {cond.moved}.")
        if status == "resolved":
            lines.append(f"Firing since {rfc3339(state.started_at)}; resolved after {state.clean} clean windows.")
        return Alert(
            labels=labels,
            annotations={
                "summary": f"{alerttext.scope(labels)}: {headline}",
                "description": "\n".join(lines),
                "value": f"{value:.6g}",
                "threshold": f"{threshold:.6g}",
            },
            status=status,  # type: ignore[arg-type]
            starts_at=state.started_at,
            ends_at=f.window.end if status == "resolved" else None,
            generator_url=alerttext.deep_link(self.external_url, labels, f.window.end - f.window.start,
                                              state.first_start, f.window.end),
        )

    def _transitions(self, f: WindowFacts, st: PolicyState, conds: list[_Condition]) -> list[Alert]:
        """Prometheus-style severities: the warning and the critical alert of a condition are two alerts
        (two fingerprints). The warning fires at the warning level and stays firing while the critical
        fires too; each resolves after ``resolve_after_windows`` clean windows at its own level."""
        out: list[Alert] = []
        for cond in conds:
            for level in SEVERITIES:
                if level not in cond.levels:
                    continue
                if not (cond.evaluated if level == "warning" else cond.critical_evaluated):
                    continue
                key = (cond.alertname, cond.feature, cond.metric, cond.extra, level)
                open_ = st.alerts.get(key)
                active = cond.severity == "critical" or (level == "warning" and cond.severity == "warning")
                if active:
                    if open_ is None:
                        open_ = st.alerts[key] = _AlertState(self._labels(f, cond, level), f.window.end,
                                                             f.window.start)
                        out.append(self._alert(f, open_, cond, level, "firing"))
                    else:
                        open_.clean = 0
                elif open_ is not None:
                    open_.clean += 1
                    if open_.clean >= self.config.resolve_after_windows:
                        out.append(self._alert(f, open_, cond, level, "resolved"))
                        del st.alerts[key]
        return out

    # -- retraining -------------------------------------------------------------------------------
    def _retrain(self, f: WindowFacts, st: PolicyState, conds: list[_Condition],
                 segments: Sequence[WindowFacts] = ()) -> list[RetrainRequest]:
        """A model's streaks count its windows where the model or one of its segments is drifted (evidence
        names the segment); accuracy and data-quality conditions of segments count like the model's."""
        c = self.config
        # drift that may ask for retraining: against the training profile and the baselines allowed to
        all_drift = [*(f.drift if f.training_retrain else ()), *(d for b in f.baselines if b.retrain for d in b.drift)]
        drifted = [d for d in all_drift if d.drifted and d.method == c.severity_method]
        flagged = drifted_features(all_drift, c)
        seg_flagged = [(sf.segment, drifted_features(sf.drift, c)) for sf in segments]
        seg_flagged = [(key, feats) for key, feats in seg_flagged if len(feats) >= c.retrain_min_features]
        perf_bad = any(x.alertname in ("AccuracyDrop", "EstimatedAccuracyDrop") and x.severity == "critical"
                       for x in conds)
        quality_bad = any(x.alertname == "DataQuality" and x.severity is not None for x in conds)
        st.drift_streak, st.drift_since = _streak(st.drift_streak, st.drift_since,
                                                  len(flagged) >= c.retrain_min_features or bool(seg_flagged),
                                                  f.window.start)
        st.perf_streak, st.perf_since = _streak(st.perf_streak, st.perf_since, perf_bad, f.window.start)
        st.quality_streak, st.quality_since = _streak(st.quality_streak, st.quality_since, quality_bad,
                                                      f.window.start)
        n = c.retrain_consecutive_windows
        reason: str | None = None
        evidence: list[Evidence] = []
        since: float | None = None
        if st.drift_streak >= n:
            reason, since = "drift", st.drift_since
            chosen = drifted or [d for d in all_drift if d.drifted and d.feature in flagged]
            evidence = [Evidence(d.feature, d.method, d.score, d.threshold) for d in chosen]
            for sf in segments:
                feats = dict(seg_flagged).get(sf.segment)
                if feats:
                    seg_drifted = [d for d in sf.drift if d.drifted and d.method == c.severity_method] or \
                        [d for d in sf.drift if d.drifted and d.feature in feats]
                    evidence += [Evidence(d.feature, d.method, d.score, d.threshold, sf.segment) for d in seg_drifted]
        elif st.perf_streak >= n:
            reason, since = "performance", st.perf_since
            evidence = [Evidence("__model__", x.metric, x.levels["critical"][0], x.levels["critical"][1],
                                 dict(x.extra).get("segment", ""))
                        for x in conds if x.alertname in ("AccuracyDrop", "EstimatedAccuracyDrop") and x.severity]
        elif st.quality_streak >= n:
            reason, since = "data_quality", st.quality_since
            evidence = [Evidence(x.feature, x.metric, *x.levels["warning"], dict(x.extra).get("segment", ""))
                        for x in conds if x.alertname == "DataQuality" and x.severity]
        if reason is None:
            return []
        cooldown = c.retrain_cooldown_s
        if st.last_retrain is not None and f.window.end - st.last_retrain < cooldown:
            return []
        st.last_retrain = f.window.end
        return [RetrainRequest(
            model=f.model, model_version=f.model_version, reason=reason,  # type: ignore[arg-type]
            window=f.window, evidence=tuple(evidence), consecutive_windows=n, cooldown_s=cooldown,
            drift_since=since if since is not None else f.window.start, reference=f.reference_id,
        )]


def _streak(count: int, since: float | None, bad: bool, start: float) -> tuple[int, float | None]:
    """Advance a streak of bad windows: (length, start of its first window)."""
    if not bad:
        return 0, None
    return count + 1, since if count and since is not None else start
