"""End to end: a simulated scenario with known change points through `monitor replay`."""

import orjson
import pytest
from typer.testing import CliRunner

from monitor.cli import app
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
