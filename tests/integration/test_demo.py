"""`monitor demo` end to end: embedded broker, worker, simulator, pages, retraining events, HTML report."""

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
