"""Faults on real servers: broker unreachable at start, InfluxDB outage mid-stream."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from monitor import devservices
from monitor.core.reference import build_profile
from monitor.devservices import create_topics, free_port
from monitor.scenarios import get_scenario
from monitor.scenarios.produce import produce_events
from tests.integration.harness import Worker, vm_export, wait_for

pytestmark = pytest.mark.integration
T0 = 1_767_225_600.0


def refs(tmp_path: Path) -> Path:
    d = tmp_path / "refs"
    d.mkdir()
    build_profile("fraud", get_scenario("stable").reference(rows=5_000, seed=2)["fraud"]).save(d / "fraud.json")
    return d


def test_unreachable_broker_at_start_is_retried_then_processed(tmp_path):
    port = free_port()
    w = Worker(tmp_path, f"127.0.0.1:{port}", "late-broker", MONITOR_REFERENCE=str(refs(tmp_path)),
               MONITOR_LP_FILE=str(tmp_path / "m.lp"), MONITOR_CONSUMER_GROUP="late")
    import subprocess
    import sys

    log = w.log.open("ab")
    w.proc = subprocess.Popen([sys.executable, "-m", "monitor", "run"], env=w.env, stdout=log, stderr=subprocess.STDOUT)
    broker = None
    try:
        wait_for(lambda: "event=broker_unreachable" in w.log.read_text(), timeout=30)
        assert w.proc.poll() is None  # still trying, not crashed
        broker = devservices.start_kafka(tmp_path / "kafka", port=port)
        wait_for(lambda: w.metric("driftline_up") >= 1, timeout=60)
        events = list(get_scenario("stable").events(seed=2, windows=3, window_s=10.0, rate=20.0, start=T0))
        produce_events(events, broker.url)
        wait_for(lambda: w.metric("driftline_windows_closed_total") >= 3, timeout=60)
        assert f"127.0.0.1:{port}" in w.log.read_text()  # the log names the broker it waits for
    finally:
        w.stop()
        if broker is not None:
            broker.stop()


def test_influxdb_outage_loses_no_points(kafka_broker, tmp_path):
    """VictoriaMetrics (InfluxDB protocol) goes down for 30 s mid-stream: consumption pauses, nothing is lost."""
    vm_port = free_port()
    vm = devservices.start_victoriametrics(tmp_path / "vm", port=vm_port)
    url = vm.url
    create_topics(kafka_broker, {"out-predictions": 4, "out-labels": 4})
    w = Worker(tmp_path, kafka_broker, "outage", MONITOR_REFERENCE=str(refs(tmp_path)), MONITOR_INFLUX_URL=url,
               MONITOR_INFLUX_TOKEN="t", MONITOR_PREDICTIONS_TOPIC="out-predictions",
               MONITOR_LABELS_TOPIC="out-labels", MONITOR_CONSUMER_GROUP="outage",
               MONITOR_CHECKPOINT_TOPIC="out-checkpoints").start()
    windows = 12
    events = list(get_scenario("stable").events(seed=2, windows=windows, window_s=10.0, rate=20.0, start=T0))
    half = len(events) // 2
    try:
        produce_events(events[:half], kafka_broker, predictions_topic="out-predictions", labels_topic="out-labels")
        wait_for(lambda: w.metric("driftline_windows_closed_total") >= 3, timeout=60)
        vm.stop()
        outage_started = time.monotonic()
        produce_events(events[half:], kafka_broker, predictions_topic="out-predictions", labels_topic="out-labels")
        wait_for(lambda: w.metric("driftline_sink_up") == 0, timeout=60)  # visible in /metrics
        time.sleep(max(0.0, 30 - (time.monotonic() - outage_started)))
        vm = devservices.start_victoriametrics(tmp_path / "vm", port=vm_port)
        wait_for(lambda: w.metric("driftline_sink_up") == 1 and w.metric("driftline_windows_closed_total") >= windows,
                 timeout=120)
        series = wait_for(lambda: [s for s in vm_export(url, '{__name__="throughput_events"}')
                                   if len(s["timestamps"]) >= windows], timeout=30)
        (s,) = series
        got = {int(t / 1000 - T0) // 10 - 1 for t in s["timestamps"]}
        assert set(range(windows)) <= got
        assert "event=sink_unavailable" in w.log.read_text()
    finally:
        w.stop()
        vm.stop()
