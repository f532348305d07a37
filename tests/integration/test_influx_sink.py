"""InfluxSink (influxdb-client) end to end: VictoriaMetrics, and InfluxDB 1.6.7 behind the v2 compat proxy.

Real servers (tests/conftest.py), read back through each server's own query API.
"""

import pytest
from influxdb_client import InfluxDBClient, WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS

from monitor import devservices
from monitor.adapters.influx import InfluxSink, SinkRejected
from monitor.types import MetricPoint
from tests.integration.harness import vm_export, wait_for

pytestmark = pytest.mark.integration
T = 1_767_225_900 * 10**9  # 2026-01-01 00:05:00 UTC
STEP = 300 * 10**9
TAGS = (("model", "m 1"), ("feature", "x,y"), ("method", "psi"), ("window", "5m"), ("model_version", "v=2"))


def points(measurement="drift", n=3, value=0.5):
    return [MetricPoint(measurement, TAGS, (("score", value + i), ("drifted", i > 0), ("n", 100 + i)), T + i * STEP)
            for i in range(n)]


def select_all(influxdb, measurement):
    out = devservices.influx1_query(influxdb, f'SELECT * FROM "{measurement}"', db="driftline")
    (series,) = out["results"][0]["series"]
    return [dict(zip(series["columns"], row, strict=True)) for row in series["values"]]


def test_write_and_read_back_from_influxdb_1_6_7(influxdb, influx_compat):
    sink = InfluxSink(influx_compat, "token", "org", "driftline")
    assert sink.ping()
    sink.add(points("drift_it"))
    sink.flush()
    sink.add(points("drift_it", value=0.7))  # the same series and times again: overwrite, not duplicate
    sink.flush()
    rows = select_all(influxdb, "drift_it")
    assert [r["time"] for r in rows] == [T, T + STEP, T + 2 * STEP]
    assert [r["score"] for r in rows] == pytest.approx([0.7, 1.7, 2.7])
    assert [r["drifted"] for r in rows] == [False, True, True]
    assert [r["n"] for r in rows] == [100, 101, 102]
    for r in rows:  # tags with spaces, commas and '=' survive the escaping
        assert (r["model"], r["feature"], r["method"], r["window"], r["model_version"]) == \
            ("m 1", "x,y", "psi", "5m", "v=2")
    assert sink.stats.points_written == 6 and sink.buffered == 0 and sink.stats.retries == 0
    sink.close()


def test_field_type_conflict_is_rejected_with_influxdbs_message(influxdb, influx_compat):
    sink = InfluxSink(influx_compat, "token", "org", "driftline")
    sink.add(points("conflict_it", n=1))
    sink.flush()
    sink.add([MetricPoint("conflict_it", TAGS, (("score", "high"),), T + STEP)])  # float field, now a string
    with pytest.raises(SinkRejected, match="field type conflict") as info:
        sink.flush()
    assert info.value.status == 400 and sink.stats.retries == 0 and sink.buffered == 0
    assert len(select_all(influxdb, "conflict_it")) == 1
    sink.close()


def test_unknown_database_keeps_the_points(influx_compat):
    sink = InfluxSink(influx_compat, "token", "org", "no_such_db", max_retries=1, backoff_s=0.01)
    sink.add(points("x_it"))
    with pytest.raises(SinkRejected, match="database not found"):
        sink.flush()
    assert sink.buffered == 3 and sink.backpressure
    sink.close()


def test_compat_proxy_maps_us_precision(influxdb, influx_compat):
    """1.6.7 would read precision=us as ns: the proxy must send ``u``."""
    with InfluxDBClient(url=influx_compat, token="t", org="o") as client:
        client.write_api(write_options=SYNCHRONOUS).write(
            bucket="driftline", record="precision_it,model=m v=1.5 1767225900000000", write_precision=WritePrecision.US)
    (row,) = select_all(influxdb, "precision_it")
    assert row["time"] == 1_767_225_900 * 10**9 and row["v"] == 1.5


def test_write_and_read_back_from_victoriametrics(victoriametrics):
    sink = InfluxSink(victoriametrics, "token", "org", "bucket")
    sink.add(points())
    sink.flush()
    sink.add(points(value=0.7))  # rewrite: VictoriaMetrics dedupes identical timestamps on read
    sink.flush()
    series = wait_for(lambda: vm_export(victoriametrics, '{__name__="drift_score",model="m 1"}'), timeout=15)
    (s,) = series
    assert s["metric"] == {"__name__": "drift_score", "model": "m 1", "feature": "x,y", "method": "psi",
                           "window": "5m", "model_version": "v=2"}
    assert len(s["timestamps"]) in (3, 6)  # dedup of same-timestamp samples happens at merge time
    assert sorted(set(s["timestamps"])) == [T // 10**6 + i * 300_000 for i in range(3)]
    (n,) = vm_export(victoriametrics, '{__name__="drift_n",model="m 1"}')
    assert sorted(set(n["values"])) == [100, 101, 102]
    sink.close()
