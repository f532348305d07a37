"""Policy: BH + effect floors, hysteresis, persistence, cooldown, baselines."""

from monitor.config import PolicyConfig
from monitor.core.binning import StatResult
from monitor.core.policy import Policy, WindowFacts, decide_drift
from monitor.types import WindowRange

CFG = PolicyConfig()


def facts(i, drift=(), **kw):
    base = dict(model="m", model_version=None, window=WindowRange(i * 300.0, (i + 1) * 300.0), events=1000,
                drift=list(drift), latency_p95=None, errors=0, error_rate=0.0, error_change=False,
                latency_change=False, accuracy=None, accuracy_n=0, estimated_accuracy=None, missing_rate={},
                unseen_rate={}, reference_accuracy=None, reference_missing={})
    base.update(kw)
    return WindowFacts(**base)


def drift_stats(psi, ks_d, ks_p, feature="x"):
    return [StatResult(feature, "psi", psi, None, 1000), StatResult(feature, "ks", ks_d, ks_p, 1000)]


def test_effect_floor_and_significance_both_required():
    stats = (drift_stats(0.3, 0.25, 1e-12, "shifted")
             + drift_stats(0.02, 0.04, 1e-6, "tiny_but_significant")
             + drift_stats(0.15, 0.12, 0.4, "noisy_small_window"))
    got = {(d.feature, d.method): d.drifted for d in decide_drift(stats, CFG, {}, 1000)}
    assert got[("shifted", "psi")] and got[("shifted", "ks")]
    assert not got[("tiny_but_significant", "psi")] and not got[("tiny_but_significant", "ks")]
    assert not got[("noisy_small_window", "psi")] and not got[("noisy_small_window", "ks")]


def test_benjamini_hochberg_controls_the_family():
    # one of 50 features has p just under alpha on its own, the rest are null: BH keeps none
    stats = drift_stats(0.3, 0.3, 0.009, "lucky")
    for i in range(49):
        stats += drift_stats(0.01, 0.02, 0.3 + i * 0.01, f"f{i}")
    assert not any(d.drifted for d in decide_drift(stats, CFG, {}, 1000))
    # alone, the same p-value is significant
    assert any(d.drifted for d in decide_drift(drift_stats(0.3, 0.3, 0.009, "lucky"), CFG, {}, 1000))


def test_small_windows_never_flag():
    stats = drift_stats(0.9, 0.6, 1e-20)
    assert not any(d.drifted for d in decide_drift(stats, CFG, {}, CFG.min_window_events - 1))


def test_chi2_score_is_cramers_v():
    stats = [StatResult("c", "chi2", 40.0, 1e-9, 1000)]
    (d,) = decide_drift(stats, CFG, {"c": 5}, 1000)
    assert abs(d.score - (40.0 / (1000 * 4)) ** 0.5) < 1e-12 and d.drifted


def test_hysteresis_fires_once_and_resolves_after_clean_windows():
    pol = Policy(CFG)
    drifted = decide_drift(drift_stats(0.3, 0.3, 1e-12), CFG, {}, 1000)
    clean = decide_drift(drift_stats(0.01, 0.02, 0.8), CFG, {}, 1000)
    a0, _ = pol.evaluate(facts(0, drifted))
    # psi 0.3 is over the critical threshold: the warning and the critical alert both fire
    assert [(a.status, a.labels["alertname"], a.severity) for a in a0] == [
        ("firing", "FeatureDrift", "warning"), ("firing", "FeatureDrift", "critical")]
    a1, _ = pol.evaluate(facts(1, drifted))
    assert a1 == []
    a2, _ = pol.evaluate(facts(2, clean))
    assert a2 == []  # one clean window is not enough
    a3, _ = pol.evaluate(facts(3, clean))
    assert [a.status for a in a3] == ["resolved", "resolved"]
    assert [a.fingerprint for a in a3] == [a.fingerprint for a in a0] and a3[0].ends_at == 1200.0


def test_retraining_after_persistence_with_cooldown():
    cfg = PolicyConfig(retrain_consecutive_windows=3, retrain_cooldown="1h")
    pol = Policy(cfg)
    drifted = decide_drift(drift_stats(0.3, 0.3, 1e-12), cfg, {}, 1000)
    requests = []
    for i in range(20):  # 20 windows of 5 minutes = 100 minutes of persistent drift
        _, r = pol.evaluate(facts(i, drifted))
        requests += [(i, x) for x in r]
    assert [i for i, _ in requests] == [2, 14]  # 3rd window, then again once the 1 h cooldown passed
    req = requests[0][1]
    assert req.reason == "drift" and req.evidence[0].feature == "x"
    ce = req.to_cloudevent("driftline/test")
    assert ce["data"]["policy"] == {"consecutive_windows": 3, "cooldown_s": 3600.0}


def test_latency_regression_against_baseline():
    pol = Policy(CFG)
    for i in range(3):
        alerts, _ = pol.evaluate(facts(i, latency_p95=20.0))
        assert alerts == []
    warn, crit = pol.evaluate(facts(3, latency_p95=65.0))[0]
    assert {warn.labels["alertname"], crit.labels["alertname"]} == {"LatencyRegression"}
    assert (warn.severity, crit.severity) == ("warning", "critical")
    assert warn.annotations["threshold"] == "30" and crit.annotations["threshold"] == "60"


def test_error_rate_and_accuracy_drop():
    pol = Policy(CFG)
    alerts, _ = pol.evaluate(facts(0, error_rate=0.25, errors=250))
    assert [(a.labels["alertname"], a.severity) for a in alerts] == [("ErrorRate", "warning"),
                                                                     ("ErrorRate", "critical")]
    alerts, _ = pol.evaluate(facts(1, accuracy=0.70, accuracy_n=500, reference_accuracy=0.88))
    assert ("AccuracyDrop", "critical") in [(a.labels["alertname"], a.severity) for a in alerts]


def test_alert_payload_fields():
    pol = Policy(CFG, external_url="http://grafana/d/x")
    _warning, a = pol.evaluate(facts(0, decide_drift(drift_stats(0.3, 0.3, 1e-12), CFG, {}, 1000)))[0]
    d = a.to_dict()
    assert set(d["labels"]) >= {"alertname", "model", "feature", "metric", "severity"}
    assert set(d["annotations"]) == {"summary", "description", "value", "threshold"}
    assert d["generatorURL"].startswith("http://grafana/d/x") and len(d["fingerprint"]) == 16
