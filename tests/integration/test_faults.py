"""Faults on real servers: broker unreachable at start, InfluxDB outage mid-stream."""

from __future__ import annotations

import math
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


def _expected_points(events: list, ref_dir: Path) -> dict[tuple[str, tuple[tuple[str, str], ...], int], float]:
    """Every numeric field of the single-process pipeline's final points, keyed like VictoriaMetrics' export:
    (measurement_field, sorted tags, time in ms)."""
    import orjson

    from monitor.config import MonitorSettings
    from monitor.events import decode_any
    from monitor.pipeline import Monitor, load_references
    from monitor.types import LabelEvent, PredictionEvent

    mon = Monitor(MonitorSettings(window="10s", allowed_lateness="2s", label_grace="1m"), load_references(ref_dir))
    decoded = [decode_any(orjson.dumps(e)) for e in events if isinstance(e, dict)]
    mon.observe([e for e in decoded if isinstance(e, PredictionEvent | LabelEvent)])
    out = {}
    for p in mon.close_all().points:
        if p.measurement not in COMPARED:
            continue
        for name, value in p.fields:
            if isinstance(value, bool | int | float):
                out[(f"{p.measurement}_{name}", tuple(sorted(p.tags)), p.time_ns // 1_000_000)] = float(value)
    return out


#: measurements whose every field is compared after the outage (alerts depend on when labels arrived)
COMPARED = ("throughput", "errors", "latency", "drift", "drift_summary", "data_quality")


def test_influxdb_outage_loses_no_points(kafka_broker, tmp_path):
    """VictoriaMetrics (InfluxDB protocol) goes down for 30 s mid-stream: consumption stalls (backpressure),
    and afterwards every window's points hold exactly the single-process pipeline's values."""
    vm_port = free_port()
    vm = devservices.start_victoriametrics(tmp_path / "vm", port=vm_port)
    url = vm.url
    create_topics(kafka_broker, {"out-predictions": 4, "out-labels": 4})
    ref_dir = refs(tmp_path)
    w = Worker(tmp_path, kafka_broker, "outage", MONITOR_REFERENCE=str(ref_dir), MONITOR_INFLUX_URL=url,
               MONITOR_INFLUX_TOKEN="t", MONITOR_PREDICTIONS_TOPIC="out-predictions",
               MONITOR_LABELS_TOPIC="out-labels", MONITOR_CONSUMER_GROUP="outage").start()
    windows = 12
    events = list(get_scenario("stable").events(seed=2, windows=windows, window_s=10.0, rate=20.0, start=T0))
    expected = _expected_points(events, ref_dir)
    half = len(events) // 2
    try:
        produce_events(events[:half], kafka_broker, predictions_topic="out-predictions", labels_topic="out-labels")
        wait_for(lambda: w.metric("driftline_windows_closed_total") >= 3, timeout=60)
        vm.stop()
        outage_started = time.monotonic()
        wait_for(lambda: w.metric("driftline_sink_up") == 0, timeout=60)  # visible in /metrics
        wait_for(lambda: w.metric("driftline_consumption_paused") == 1, timeout=30)
        stalled = w.metric("driftline_events_total")
        produce_events(events[half:], kafka_broker, predictions_topic="out-predictions", labels_topic="out-labels")
        time.sleep(5.0)
        # backpressure: at most the batch in hand when the pause began, nothing after it
        assert w.metric("driftline_events_total") - stalled <= 2_000, "consumption went on while InfluxDB was down"
        assert w.metric("driftline_events_total") < len(events)
        time.sleep(max(0.0, 30 - (time.monotonic() - outage_started)))
        vm = devservices.start_victoriametrics(tmp_path / "vm", port=vm_port)
        wait_for(lambda: w.metric("driftline_sink_up") == 1 and w.metric("driftline_windows_closed_total") >= windows,
                 timeout=120)

        def exported() -> dict[tuple[str, tuple[tuple[str, str], ...], int], float]:
            out = {}
            for series in vm_export(url, '{__name__=~"(' + "|".join(COMPARED) + ')_.*"}'):
                metric = dict(series["metric"])
                name = metric.pop("__name__")
                metric.pop("db", None)
                for t, v in zip(series["timestamps"], series["values"], strict=True):
                    out[(name, tuple(sorted(metric.items())), t)] = v
            return out

        def complete() -> dict[tuple[str, tuple[tuple[str, str], ...], int], float] | None:
            e = exported()
            return e if expected.keys() <= e.keys() else None

        got = wait_for(complete, timeout=60)
        assert "event=sink_unavailable" in w.log.read_text()
    finally:
        w.stop()
        vm.stop()
    # VictoriaMetrics keeps 12 significant digits of a float; counts are exact
    wrong = {k: (got.get(k), v) for k, v in expected.items()
             if k not in got or not math.isclose(got[k], v, rel_tol=1e-11, abs_tol=1e-12)}
    assert not wrong, f"{len(wrong)} of {len(expected)} values differ after the outage: {list(wrong.items())[:5]}"
