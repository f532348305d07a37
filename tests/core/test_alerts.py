"""Alert semantics an on-call engineer relies on: two severities as two alerts, per-severity thresholds,
wording that is true when firing and when resolved, deep links, retraining events with drift_since and
the reference id."""

from __future__ import annotations

import dataclasses
import doctest
import urllib.parse
import uuid

import numpy as np
import pandas as pd
import pytest

from monitor.config import PolicyConfig
from monitor.core import alerttext, changepoint, explain, topk
from monitor.core.policy import Policy, decide_drift
from monitor.core.reference import ReferenceProfile, build_profile
from monitor.types import RETRAIN_NAMESPACE
from tests.core.test_policy import drift_stats, facts

CFG = PolicyConfig()
URL = "http://grafana:3000/d/driftline-drift"


def drift(psi: float, ks: float = 0.3, p: float = 1e-12):
    return decide_drift(drift_stats(psi, ks, p), CFG, {}, 1000)


def kinds(alerts):
    return [(a.status, a.severity) for a in alerts]


def test_escalation_keeps_the_warning_firing_and_adds_a_critical():
    pol = Policy(CFG)
    (warn,), _ = pol.evaluate(facts(0, drift(0.15)))
    a1, _ = pol.evaluate(facts(1, drift(0.4)))
    assert kinds(a1) == [("firing", "critical")]  # no resolved warning: the value got worse
    (crit,) = a1
    assert crit.fingerprint != warn.fingerprint and dict(crit.labels) == {**warn.labels, "severity": "critical"}
    assert warn.annotations["threshold"] == "0.1" and crit.annotations["threshold"] == "0.25"
    assert crit.annotations["value"] == "0.4" and crit.starts_at == 600.0 and warn.starts_at == 300.0


def test_de_escalation_resolves_the_critical_first_then_the_warning():
    pol = Policy(CFG)
    assert kinds(pol.evaluate(facts(0, drift(0.4)))[0]) == [("firing", "warning"), ("firing", "critical")]
    assert pol.evaluate(facts(1, drift(0.15)))[0] == []  # one window under the critical level
    a2, _ = pol.evaluate(facts(2, drift(0.15)))
    assert kinds(a2) == [("resolved", "critical")]
    assert "resolved after 2 clean windows" in a2[0].annotations["description"]
    assert pol.evaluate(facts(3, drift(0.01, 0.02, 0.8)))[0] == []
    assert kinds(pol.evaluate(facts(4, drift(0.01, 0.02, 0.8)))[0]) == [("resolved", "warning")]


def test_just_under_the_critical_threshold_neither_resolves_nor_refires_the_critical():
    pol = Policy(CFG)
    pol.evaluate(facts(0, drift(0.4)))
    for i in range(1, 6):  # psi 0.22: under 0.25 but inside the hysteresis band (>= 0.8 x 0.25)
        assert pol.evaluate(facts(i, drift(0.22)))[0] == []
    assert pol.evaluate(facts(6, drift(0.4)))[0] == []  # still the same critical alert


def test_latency_wording_is_true_when_firing_and_when_resolved():
    pol = Policy(CFG, external_url=URL)
    for i in range(3):
        pol.evaluate(facts(i, latency_p95=20.0))
    (warn,), _ = pol.evaluate(facts(3, latency_p95=45.0, latency_change=True))  # 45 ms: over 30, under 60
    assert kinds([warn]) == [("firing", "warning")]
    assert warn.annotations["summary"] == ("m: p95 latency 45.0 ms over 30.0 ms "
                                           "(latency level changed in this window)")
    assert "baseline 20.0 ms (x2.2)" in warn.annotations["description"]
    pol.evaluate(facts(4, latency_p95=21.0))
    (res,), _ = pol.evaluate(facts(5, latency_p95=21.0))
    assert res.status == "resolved" and " over " not in res.annotations["summary"]
    assert res.annotations["summary"] == "m: LatencyRegression resolved, p95 latency 21.0 ms (warning threshold 30.0 ms)"
    assert res.ends_at == 1800.0 and res.starts_at == 1200.0


def test_latency_critical_alert_shows_the_critical_threshold():
    pol = Policy(CFG)
    for i in range(3):
        pol.evaluate(facts(i, latency_p95=20.0))
    warn, crit = pol.evaluate(facts(3, latency_p95=65.0))[0]
    assert crit.severity == "critical" and crit.annotations["threshold"] == "60"
    assert crit.annotations["summary"] == "m: p95 latency 65.0 ms over 60.0 ms"
    assert "latency level changed" not in warn.annotations["summary"]  # no change marked in this window


def test_description_has_rfc3339_window_length_and_what_moved():
    pol = Policy(CFG)
    (a,), _ = pol.evaluate(facts(5, drift(0.15), moved={"x": "share above the reference's p90 (2.1): 10% → 31%"}))
    lines = a.annotations["description"].splitlines()
    assert lines[1] == "Window 1970-01-01T00:25:00.000Z – 1970-01-01T00:30:00.000Z (5m window, 1,000 events)."
    assert lines[2] == "What moved: share above the reference's p90 (2.1): 10% → 31%."
    assert "\n" not in a.annotations["summary"] and a.annotations["summary"].startswith("m: x drifted (psi=0.15")


def test_error_rate_pages_with_the_top_error_messages():
    pol = Policy(CFG)
    alerts, _ = pol.evaluate(facts(0, error_rate=0.08, errors=80, top_errors={"upstream timeout": 60, "oom": 20}))
    (a,) = alerts
    assert a.annotations["summary"] == "m: error rate 8.0% over 5.0%"
    assert 'What moved: top errors: "upstream timeout" 60 (75%), "oom" 20 (25%).' in a.annotations["description"]


def test_an_adwin_early_warning_does_not_claim_to_be_over_the_threshold():
    pol = Policy(CFG)
    for i in range(3):
        pol.evaluate(facts(i, error_rate=0.01, errors=10))
    (a,), _ = pol.evaluate(facts(3, error_rate=0.03, errors=30, error_change=True))
    assert a.severity == "warning"
    assert a.annotations["summary"] == "m: error rate 3.0%, 3.0x its baseline 1.0% (error rate change; threshold 5.0%)"


def test_accuracy_alerts_read_under_and_carry_their_own_threshold():
    pol = Policy(CFG)
    warn, crit = pol.evaluate(facts(0, accuracy=0.70, accuracy_n=500, reference_accuracy=0.88))[0]
    assert warn.annotations["summary"] == "m: accuracy 0.700 under 0.830"
    assert crit.annotations["summary"] == "m: accuracy 0.700 under 0.780" and crit.annotations["threshold"] == "0.78"


def test_deep_link_opens_the_window_with_the_alert_labels_as_variables():
    pol = Policy(CFG, external_url=URL)
    warn, _crit = pol.evaluate(facts(4, drift(0.4), model_version="v3"))[0]
    url = urllib.parse.urlsplit(warn.generator_url)
    q = dict(urllib.parse.parse_qsl(url.query))
    assert warn.generator_url.startswith(URL + "?")
    assert q == {"from": str((1200 - 3 * 300) * 1000), "to": str((1500 + 2 * 300) * 1000), "var-model": "m",
                 "var-window": "5m", "var-model_version": "v3", "var-feature": "x"}
    pol.evaluate(facts(5, drift(0.01, 0.02, 0.8), model_version="v3"))
    res = [a for a in pol.evaluate(facts(6, drift(0.01, 0.02, 0.8), model_version="v3"))[0] if a.severity == "warning"]
    q = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(res[0].generator_url).query))
    assert (q["from"], q["to"]) == (str(300 * 1000), str(2700 * 1000))  # from the first firing window to now


def test_extra_labels_are_part_of_the_alert_identity_and_the_summary():
    pol = Policy(CFG, external_url=URL)
    st = pol.state("m", None)
    base = pol._conditions(facts(0, drift(0.15)), st)[0]
    segments = [dataclasses.replace(base, extra=(("segment", f"country={c}"),)) for c in ("PL", "DE")]
    alerts = pol._transitions(facts(0, drift(0.15)), st, segments)
    assert [a.labels["segment"] for a in alerts] == ["country=PL", "country=DE"]
    assert len({a.fingerprint for a in alerts}) == 2
    assert alerts[0].annotations["summary"].startswith("m [country=PL]: x drifted")
    assert "var-segment=country%3DPL" in alerts[0].generator_url


def test_deep_link_carries_a_segment_label_and_keeps_an_existing_query():
    labels = {"alertname": "FeatureDrift", "model": "fraud", "segment": "country=PL", "feature": "amount"}
    q = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(
        alerttext.deep_link(URL + "?orgId=1", labels, 60.0, 600.0, 660.0)).query))
    assert q["orgId"] == "1" and q["var-segment"] == "country=PL" and q["var-window"] == "1m"
    assert alerttext.deep_link("", labels, 60.0, 600.0, 660.0) == ""
    assert alerttext.scope(labels) == "fraud [country=PL]"


def test_retraining_event_names_the_start_of_the_drift_and_the_reference():
    pol = Policy(PolicyConfig(retrain_consecutive_windows=3, retrain_cooldown="1h"))
    requests = []
    pol.evaluate(facts(0, drift(0.4), reference_id="sha256:abc"))
    pol.evaluate(facts(1, drift(0.01, 0.02, 0.8), reference_id="sha256:abc"))  # the streak breaks
    for i in range(2, 6):
        requests += pol.evaluate(facts(i, drift(0.4), reference_id="sha256:abc"))[1]
    (req,) = requests
    assert req.window.end == 1500.0 and req.drift_since == 600.0  # window 2 started the streak
    ce = req.to_cloudevent("driftline/test")
    assert ce["data"]["drift_since"] == "1970-01-01T00:10:00.000Z" and ce["data"]["reference"] == "sha256:abc"
    assert ce["data"]["window"] == {"start": "1970-01-01T00:20:00.000Z", "end": "1970-01-01T00:25:00.000Z"}
    # the id is deterministic and does not depend on the new fields
    assert ce["id"] == str(uuid.uuid5(RETRAIN_NAMESPACE, "m||drift|1500.0"))


def test_reference_content_hash_is_stable_and_content_addressed(tmp_path):
    rng = np.random.default_rng(0)
    table = pd.DataFrame({"x": rng.normal(size=500), "c": rng.choice(["a", "b"], 500)})
    a = build_profile("m", table, built_at="2026-01-01T00:00:00Z")
    b = build_profile("m", table, built_at="2027-06-01T00:00:00Z")
    assert a.content_hash == b.content_hash and a.content_hash.startswith("sha256:") and len(a.content_hash) == 71
    a.save(tmp_path / "m.json")
    assert ReferenceProfile.load(tmp_path / "m.json").content_hash == a.content_hash
    other = build_profile("m", table.assign(x=table["x"] + 1), built_at="2026-01-01T00:00:00Z")
    assert other.content_hash != a.content_hash


@pytest.mark.parametrize("module", [alerttext, changepoint, explain, topk])
def test_docstring_examples_run(module) -> None:
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0
