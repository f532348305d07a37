"""End to end: a simulated scenario with known change points through `monitor replay`."""

import re
import urllib.parse

import orjson
import pytest
from typer.testing import CliRunner

from monitor.cli import app
from monitor.core.reference import ReferenceProfile
from monitor.scenarios import write_reference_table, write_scenario

W = 300.0
T0 = 1_767_225_600.0


@pytest.fixture(scope="module")
def replayed(tmp_path_factory):
    d = tmp_path_factory.mktemp("replay")
    events, truth = write_scenario("mixed", d / "mixed.jsonl", seed=3, windows=12, window_s=W, rate=10.0)
    refs = write_reference_table("mixed", d / "refs", rows=20_000, seed=3)
    runner = CliRunner()
    r = runner.invoke(app, ["reference", "build", "--model", "fraud", "--data", str(refs["fraud"]),
                            "--out", str(d / "fraud.json")])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["replay", str(events), "--reference", str(d / "fraud.json"), "--out", str(d / "out"),
                            "--window", "5m"])
    assert r.exit_code == 0, r.output
    return d / "out", orjson.loads(truth.read_bytes()), r.output


def window_of(rfc_or_ns):
    return int((rfc_or_ns / 1e9 - T0) // W) - 1


def lp(out):
    points = []
    for line in (out / "metrics.lp").read_text().splitlines():
        if line.startswith("retraining,"):
            continue  # its string field holds spaces; nothing here asserts on it
        head, fields, ts = line.rsplit(" ", 2)
        parts = head.split(",")
        tags = dict(p.split("=", 1) for p in parts[1:])
        f = dict(x.split("=", 1) for x in fields.split(","))
        points.append((parts[0], tags, f, window_of(int(ts))))
    return points




def test_planted_drift_is_found_and_stable_features_stay_quiet(replayed):
    out, truth, _ = replayed
    drifted = {(tags["feature"], w) for m, tags, f, w in lp(out) if m == "drift" and f.get("drifted") == "true"}
    assert {w for feat, w in drifted if feat == "amount"} == set(range(4, 12))
    for stable in truth["stable_features"]["fraud"]:
        assert not any(feat == stable for feat, _ in drifted), stable


def test_latency_errors_and_accuracy_changes_page(replayed):
    out, _, _ = replayed
    fired = {}
    for line in (out / "alerts.jsonl").read_bytes().splitlines():
        for a in orjson.loads(line)["alerts"]:
            if a["status"] == "firing":
                fired.setdefault(a["labels"]["alertname"], a)
    assert set(fired) >= {"FeatureDrift", "LatencyRegression", "ErrorRate", "AccuracyDrop"}
    start = {name: a["startsAt"] for name, a in fired.items()}
    # an alert's startsAt is the end of the window that raised it
    assert start["FeatureDrift"] == "2026-01-01T00:25:00.000Z"       # window 4
    assert start["LatencyRegression"] == "2026-01-01T00:35:00.000Z"  # window 6
    assert start["ErrorRate"] == "2026-01-01T00:45:00.000Z"          # window 8
    assert start["AccuracyDrop"] == "2026-01-01T00:50:00.000Z"       # window 9
    assert fired["FeatureDrift"]["labels"]["feature"] == "amount"


def test_transient_problems_resolve(replayed):
    out, _, _ = replayed
    resolved = {a["labels"]["alertname"] for line in (out / "alerts.jsonl").read_bytes().splitlines()
                for a in orjson.loads(line)["alerts"] if a["status"] == "resolved"}
    assert {"LatencyRegression", "ErrorRate"} <= resolved
    assert "FeatureDrift" not in resolved  # the shift persists


def test_retraining_follows_persistent_drift(replayed):
    out, _, _ = replayed
    events = [orjson.loads(line) for line in (out / "retraining.jsonl").read_bytes().splitlines()]
    assert len(events) >= 1
    first = events[0]
    assert first["specversion"] == "1.0" and first["type"] == "io.driftline.retraining.requested"
    assert first["data"]["reason"] == "drift"
    assert first["data"]["window"]["end"] == "2026-01-01T00:35:00.000Z"  # 3rd consecutive drifted window
    assert "amount" in {e["feature"] for e in first["data"]["evidence"]}


def test_every_window_has_the_contract_measurements(replayed):
    out, _, output = replayed
    by_window = {}
    for m, tags, _f, w in lp(out):
        by_window.setdefault(w, set()).add(m)
        assert tags["model"] == "fraud" and tags["window"] == "5m" and tags["model_version"] == "v3"
    for w in range(0, 12):
        assert {"drift", "latency", "errors", "throughput", "performance", "data_quality"} <= by_window[w], w
    assert "retraining requests" in output


# -- what an on-call engineer and a retraining pipeline get (issue: alerts they can act on) -------------
def alerts_of(out):
    return [a for line in (out / "alerts.jsonl").read_bytes().splitlines() for a in orjson.loads(line)["alerts"]]


def one(alerts, status, name, severity, feature=None):
    found = [a for a in alerts if a["status"] == status and a["labels"]["alertname"] == name
             and a["labels"]["severity"] == severity and a["labels"].get("feature") == feature]
    assert len(found) == 1, (status, name, severity, feature, len(found))
    return found[0]


def test_descriptions_give_rfc3339_windows_not_epoch_seconds(replayed):
    out, _, _ = replayed
    for a in alerts_of(out):
        desc = a["annotations"]["description"]
        assert re.search(r"Window 2026-01-01T\d\d:\d\d:00\.000Z – 2026-01-01T\d\d:\d\d:00\.000Z \(5m window, "
                         r"[\d,]+ events\)\.", desc), desc
        assert not re.search(r"\b1[78]\d{8}\b", desc + a["annotations"]["summary"]), desc
        assert "\n" not in a["annotations"]["summary"]


def test_deep_link_lands_on_the_window_and_the_feature(replayed):
    out, _, _ = replayed
    a = one(alerts_of(out), "firing", "FeatureDrift", "warning", "amount")
    url = urllib.parse.urlsplit(a["generatorURL"])
    q = dict(urllib.parse.parse_qsl(url.query))
    fired_start, fired_end = T0 + 4 * W, T0 + 5 * W  # window 4
    assert url.path == "/d/driftline-drift"
    assert q == {"from": str(int((fired_start - 3 * W) * 1000)), "to": str(int((fired_end + 2 * W) * 1000)),
                 "var-model": "fraud", "var-window": "5m", "var-model_version": "v3", "var-feature": "amount"}


def test_pages_say_what_moved(replayed):
    out, _, _ = replayed
    alerts = alerts_of(out)
    amount = one(alerts, "firing", "FeatureDrift", "warning", "amount")["annotations"]["description"]
    m = re.search(r"What moved: share above the reference's p(\d+) \([\d.]+\): (\d+)% → (\d+)%; "
                  r"median ([\d.]+) → ([\d.]+)\.", amount)
    assert m, amount
    assert int(m.group(3)) - int(m.group(2)) >= 30 and float(m.group(5)) > float(m.group(4))  # +1 sd shift
    errors = one(alerts, "firing", "ErrorRate", "critical")["annotations"]["description"]
    assert re.search(r'What moved: top errors: "(upstream timeout|model server returned 503|feature store '
                     r'unavailable)" \d+ \(\d+%\)', errors), errors
    latency = one(alerts, "firing", "LatencyRegression", "warning")["annotations"]["description"]
    assert re.search(r"What moved: p95 [\d.]+ ms vs baseline [\d.]+ ms \(x[23]\.\d\)\.", latency), latency


def test_escalation_keeps_the_warning_firing_and_thresholds_follow_the_severity(replayed):
    out, _, _ = replayed
    alerts = alerts_of(out)
    for name, feature in (("FeatureDrift", "amount"), ("LatencyRegression", None), ("ErrorRate", None)):
        warn = one(alerts, "firing", name, "warning", feature)
        crit = one(alerts, "firing", name, "critical", feature)
        assert {k: v for k, v in crit["labels"].items() if k != "severity"} == \
               {k: v for k, v in warn["labels"].items() if k != "severity"}
        assert warn["fingerprint"] != crit["fingerprint"] and warn["startsAt"] <= crit["startsAt"]
        assert float(crit["annotations"]["threshold"]) > float(warn["annotations"]["threshold"])
        # never a resolved warning while its critical fires
        resolved_warn = [a for a in alerts if a["status"] == "resolved" and a["fingerprint"] == warn["fingerprint"]]
        resolved_crit = [a for a in alerts if a["status"] == "resolved" and a["fingerprint"] == crit["fingerprint"]]
        if resolved_warn:
            assert resolved_crit and resolved_crit[0]["endsAt"] <= resolved_warn[0]["endsAt"]
    amount = [one(alerts, "firing", "FeatureDrift", s, "amount") for s in ("warning", "critical")]
    # warning: the threshold the drift decision applied to PSI (calibrated for the window's size, at least
    # the practical floor 0.02); critical: PSI's critical band
    assert 0.02 <= float(amount[0]["annotations"]["threshold"]) < 0.1
    assert amount[1]["annotations"]["threshold"] == "0.25"
    lat = [float(one(alerts, "firing", "LatencyRegression", s)["annotations"]["threshold"])
           for s in ("warning", "critical")]
    assert abs(lat[1] / lat[0] - 2.0) < 1e-3  # critical 3x baseline vs warning 1.5x


def test_resolved_latency_page_does_not_claim_over(replayed):
    out, _, _ = replayed
    for a in alerts_of(out):
        if a["labels"]["alertname"] == "LatencyRegression" and a["status"] == "resolved":
            assert " over " not in a["annotations"]["summary"]
            assert float(a["annotations"]["value"]) < float(a["annotations"]["threshold"])


def test_latency_change_marker_only_where_latency_changed(replayed):
    out, _, _ = replayed
    marked = {w for m, _t, f, w in lp(out) if m == "latency" and f["change_detected"] == "true"}
    assert 6 in marked and marked <= {6, 7}  # latency x3 in windows 6-7; every other window is stable


def test_retraining_event_says_since_when_and_against_what(replayed):
    out, _, _ = replayed
    first = orjson.loads((out / "retraining.jsonl").read_bytes().splitlines()[0])
    assert first["data"]["drift_since"] == "2026-01-01T00:20:00.000Z"  # window 4: the shift starts
    ref = ReferenceProfile.load(out.parent / "fraud.json")
    assert first["data"]["reference"] == ref.content_hash
