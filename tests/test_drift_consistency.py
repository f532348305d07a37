"""One meaning of ``drifted``: drift points, drift_summary and the drift alerts agree in every window."""

from collections import defaultdict

import orjson
import pytest

from monitor.config import MonitorSettings
from monitor.core.reference import build_profile
from monitor.events import decode_any
from monitor.pipeline import Monitor
from monitor.scenarios import get_scenario
from monitor.types import PredictionEvent

T0 = 1_767_225_600.0
ALERTS = ("FeatureDrift", "PredictionDrift", "MultivariateDrift")


def _replay(name: str, windows: int, rate: float):
    spec = get_scenario(name)
    model = spec.models[0]
    profile = build_profile(model, spec.reference(rows=10_000, seed=3)[model], resamples=200)
    events = [e for item in spec.events(seed=3, windows=windows, window_s=300.0, rate=rate, start=T0)
              if isinstance(item, dict) and "label" not in item
              and isinstance(e := decode_any(orjson.dumps(item)), PredictionEvent)]
    mon = Monitor(MonitorSettings(window="5m", allowed_lateness="60s", labels_topic=""), {model: profile})
    for i in range(0, len(events), 2000):
        mon.observe(events[i:i + 2000])
    return mon.close_all()


@pytest.mark.parametrize("scenario", ["sudden_shift", "correlation_flip", "score_drift"])
def test_points_summary_and_alerts_agree_in_every_window(scenario):
    em = _replay(scenario, windows=8, rate=6.0)
    verdicts: dict[int, dict[str, set[bool]]] = defaultdict(lambda: defaultdict(set))
    exceeds: dict[int, dict[str, bool]] = defaultdict(lambda: defaultdict(bool))
    summary: dict[int, int] = {}
    for p in em.points:
        if p.measurement == "drift":
            verdicts[p.time_ns][p.tag("feature")].add(p.field("drifted"))
            exceeds[p.time_ns][p.tag("feature")] |= p.field("exceeds") is True and p.tag("method") in (
                "psi", "ks", "chi2", "pca_recon")
        elif p.measurement == "drift_summary":
            summary[p.time_ns] = p.field("drifted_features")
    fired: dict[int, set[str]] = defaultdict(set)
    resolved: dict[int, set[str]] = defaultdict(set)
    for a in em.alerts:
        if a.labels["alertname"] in ALERTS:
            end = a.ends_at if a.status == "resolved" else a.starts_at
            (resolved if a.status == "resolved" else fired)[round(end * 1e9)].add(a.labels["feature"])
    firing: set[str] = set()
    started: dict[str, int] = {}
    drifted_windows: dict[str, list[int]] = defaultdict(list)
    assert len(summary) == 8
    for t in sorted(summary):
        # every point of a feature carries the same verdict: the feature's, from its own methods' exceeds
        assert all(len(v) == 1 for v in verdicts[t].values()), verdicts[t]
        drifted = {f for f, v in verdicts[t].items() if True in v}
        assert drifted == {f for f, e in exceeds[t].items() if e}
        assert summary[t] == len(drifted)
        firing = (firing - resolved[t]) | fired[t]
        for f in fired[t]:
            started[f] = t
        for f in drifted:
            drifted_windows[f].append(t)
        # drifted ⇒ its alert fires now or is still firing; an alert fires only in a drifted window
        assert drifted <= firing, (t, drifted, firing)
        assert fired[t] <= drifted
        # still firing without drift in this window: hysteresis of an alert that started drifted
        for f in firing - drifted:
            assert started[f] in drifted_windows[f]
    assert any(drifted_windows.values()), "the scenario's change must be flagged"


def test_multivariate_alert_says_what_moved():
    em = _replay("correlation_flip", windows=7, rate=6.0)
    firing = [a for a in em.alerts if a.labels["alertname"] == "MultivariateDrift" and a.status == "firing"]
    assert firing and firing[0].labels["feature"] == "__multivariate__"
    text = " ".join(firing[0].annotations.values())
    assert "mean reconstruction error" in text and "in the reference" in text, text
    assert not [a for a in em.alerts if a.labels["alertname"] == "FeatureDrift"]  # no marginal moved
