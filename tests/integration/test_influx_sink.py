"""InfluxSink (influxdb-client) end to end: VictoriaMetrics and InfluxDB 1.6.7 behind the v2 compat proxy."""

import pytest

from monitor import devservices
from monitor.adapters.influx import InfluxSink, SinkUnavailable
from monitor.types import MetricPoint
from tests.integration.harness import vm_export, wait_for

pytestmark = pytest.mark.integration
T = 1_767_225_900 * 10**9


def points(n=3, value=0.5):
    return [MetricPoint("drift", (("model", "m 1"), ("feature", "x"), ("method", "psi"), ("window", "5m")),
                        (("score", value + i), ("drifted", i > 0), ("n", 100 + i)), T + i * 300 * 10**9)
            for i in range(n)]


def test_write_and_read_back_from_influxdb_1_6_7(influxdb, influx_compat):
    sink = InfluxSink(influx_compat, "token", "org", "driftline")
    sink.add(points())
    sink.flush()
    sink.add(points(value=0.7))  # the same series and times again: overwrite, not duplicate
    sink.flush()
    out = devservices.influx1_query(influxdb, 'SELECT score, drifted, n FROM drift WHERE "model" = \'m 1\'',
                                    db="driftline")
    rows = out["results"][0]["series"][0]["values"]
    assert [r[0] for r in rows] == [T, T + 300 * 10**9, T + 600 * 10**9]
    assert [r[1] for r in rows] == pytest.approx([0.7, 1.7, 2.7])
    assert [r[2] for r in rows] == [False, True, True] and [r[3] for r in rows] == [100, 101, 102]
    assert sink.stats.points_written == 6 and sink.buffered == 0


def test_write_and_read_back_from_victoriametrics(victoriametrics):
    sink = InfluxSink(victoriametrics, "token", "org", "bucket")
    sink.add(points())
    sink.flush()
    series = wait_for(lambda: vm_export(victoriametrics, '{__name__="drift_score",model="m 1"}'), timeout=15)
    (s,) = series
    assert s["metric"]["feature"] == "x" and s["metric"]["method"] == "psi"
    assert s["values"] == pytest.approx([0.5, 1.5, 2.5])
    assert s["timestamps"] == [T // 10**6 + i * 300_000 for i in range(3)]


def test_unreachable_influx_keeps_points_and_recovers(influxdb):
    port = devservices.free_port()
    sink = InfluxSink(f"http://127.0.0.1:{port}", "t", "o", "b", max_retries=2, backoff_s=0.01, timeout_s=1)
    sink.add(points())
    with pytest.raises(SinkUnavailable):
        sink.flush()
    assert sink.buffered == 3 and sink.backpressure and sink.stats.retries == 2
