"""`monitor demo` end to end: embedded broker, worker, simulator, pages, retraining events, HTML report."""

import orjson
import pytest

from monitor.demo import run_demo

pytestmark = pytest.mark.integration


def test_demo_runs_and_writes_a_report(tmp_path):
    report = run_demo(tmp_path, "mixed", windows=12, window_s=5.0, rate=60.0, speed=4.0, seed=2)
    html = report.read_text()
    assert report.name == "report.html" and "data:image/png;base64," in html
    assert "FeatureDrift" in html and "LatencyRegression" in html
    assert (tmp_path / "retraining.jsonl").read_text().strip(), "no retraining event reached the subscriber"
    assert (tmp_path / "alerts.jsonl").read_text().count('"status":"firing"') >= 3
    lp = (tmp_path / "metrics.lp").read_text()
    assert "drift,feature=amount" in lp and "driftline_worker," in lp


def test_demo_of_a_segment_only_shift(tmp_path):
    """`monitor demo --scenario segment_shift`: profiles per segment, MONITOR_SEGMENTS for the worker; only
    country=PL (5 % of traffic) moves, and only its alerts page; the report has the segments view."""
    report = run_demo(tmp_path, "segment_shift", windows=8, window_s=5.0, rate=100.0, speed=4.0, seed=1)
    firing = [a for line in (tmp_path / "alerts.jsonl").read_text().splitlines() if line.strip()
              for a in orjson.loads(line)["alerts"] if a["status"] == "firing"]
    assert firing and {a["labels"].get("segment") for a in firing} == {"country=PL"}, firing
    assert any(a["labels"]["alertname"] == "FeatureDrift" and a["labels"]["feature"] == "amount" for a in firing)
    lp = (tmp_path / "metrics.lp").read_text()
    assert "segment=country\\=PL" in lp and "segment=device\\=mobile" in lp
    html = report.read_text()
    assert '<table id="segments-fraud">' in html and "plots for fraud [country=PL]" in html
