"""`monitor run` end to end on the real broker and a real InfluxDB-protocol store (VictoriaMetrics)."""

from __future__ import annotations

import pytest

from monitor.adapters.receiver import WebhookServer
from monitor.core.reference import build_profile
from monitor.devservices import create_topics
from monitor.scenarios import get_scenario
from monitor.scenarios.produce import produce_events
from tests.integration.harness import Worker, consume_all, vm_export, wait_for

pytestmark = pytest.mark.integration
T0 = 1_767_225_600.0
WINDOWS = 12
MALFORMED = [b"{not json", b'{"model":"fraud","request_id":"x","timestamp":1767225601,"features":{},"prediction":1,'
             b'"score":7}', b'[1,2,3]', b'{"model":"fraud","timestamp":1767225602,"features":{"a":1},"prediction":0}']


@pytest.fixture(scope="module")
def run(kafka_broker, victoriametrics, tmp_path_factory):
    work = tmp_path_factory.mktemp("worker")
    spec = get_scenario("mixed")
    refdir = work / "refs"
    refdir.mkdir()
    build_profile("fraud", spec.reference(rows=10_000, seed=1)["fraud"]).save(refdir / "fraud.json")
    create_topics(kafka_broker, {"predictions": 4, "labels": 4})
    secret = "hook-secret"
    server = WebhookServer(secret=secret).start()
    worker = Worker(work, kafka_broker, "w1", MONITOR_REFERENCE=str(refdir), MONITOR_INFLUX_URL=victoriametrics,
                    MONITOR_INFLUX_TOKEN="unused", MONITOR_WEBHOOK_URL=server.url, MONITOR_WEBHOOK_SECRET=secret,
                    MONITOR_REPEAT_INTERVAL="1h", MONITOR_CONSUMER_GROUP="driftline-e2e").start()
    try:
        events = list(spec.events(seed=1, windows=WINDOWS, window_s=10.0, rate=60.0, start=T0))
        produce_events(events, kafka_broker)
        from kafka import KafkaProducer

        p = KafkaProducer(bootstrap_servers=kafka_broker)
        for raw in MALFORMED:
            p.send("predictions", key=b"fraud", value=raw)
        p.flush()
        p.close()
        wait_for(lambda: worker.metric("driftline_windows_closed_total") >= WINDOWS, timeout=90)
        wait_for(lambda: worker.metric("driftline_dlq_total") >= len(MALFORMED), timeout=30)
        yield {"worker": worker, "server": server, "vm": victoriametrics, "broker": kafka_broker, "secret": secret}
    finally:
        worker.stop()
        server.stop()


def test_points_reach_influx_protocol_store(run):
    series = vm_export(run["vm"], '{__name__=~"drift_score|latency_p95|errors_rate|performance_value|throughput_events"}')
    names = {s["metric"]["__name__"] for s in series}
    assert names == {"drift_score", "latency_p95", "errors_rate", "performance_value", "throughput_events"}
    amount_psi = [s for s in series if s["metric"]["__name__"] == "drift_score"
                  and s["metric"].get("feature") == "amount" and s["metric"].get("method") == "psi"]
    assert amount_psi and amount_psi[0]["metric"]["window"] == "10s" and amount_psi[0]["metric"]["model"] == "fraud"
    values = dict(zip(amount_psi[0]["timestamps"], amount_psi[0]["values"], strict=True))
    before = [v for t, v in values.items() if (T0 + 10) * 1000 <= t <= (T0 + 40) * 1000]
    after = [v for t, v in values.items() if t >= (T0 + 50) * 1000]
    assert max(before) < 0.1 < min(after)  # the planted +1 sd shift from window 4
    perf = [s for s in series if s["metric"]["__name__"] == "performance_value"]
    assert {s["metric"]["metric"] for s in perf} >= {"accuracy", "estimated_accuracy"}


def test_retraining_event_reaches_a_subscriber(run):
    records = consume_all(run["broker"], "monitor.retraining", "retraining-pipeline-test", expect=1)
    assert records, "no retraining event"
    import orjson

    ev = orjson.loads(records[0].value)
    assert records[0].key == b"fraud"
    assert ev["specversion"] == "1.0" and ev["type"] == "io.driftline.retraining.requested"
    assert ev["subject"] == "fraud" and ev["data"]["reason"] == "drift"
    assert {"feature", "method", "score", "threshold"} <= set(ev["data"]["evidence"][0])


def test_webhook_signed_firing_then_resolved(run):
    server = run["server"]
    try:
        wait_for(lambda: any(a["labels"]["alertname"] == "LatencyRegression" and a["status"] == "resolved"
                             for a in server.alerts()), timeout=30)
    except TimeoutError:
        raise AssertionError([(a["labels"]["alertname"], a["status"], a["startsAt"]) for a in server.alerts()]) from None
    statuses = [(a["labels"]["alertname"], a["status"]) for a in server.alerts()]
    assert ("LatencyRegression", "firing") in statuses and ("FeatureDrift", "firing") in statuses
    assert statuses.index(("LatencyRegression", "firing")) < statuses.index(("LatencyRegression", "resolved"))
    assert server.rejected == 0  # every delivery carried a valid signature


def test_malformed_events_go_to_the_dlq_with_reasons(run):
    import orjson

    records = consume_all(run["broker"], "monitor.dlq", "dlq-reader-test", expect=len(MALFORMED))
    dlq = [orjson.loads(r.value) for r in records]
    assert len(dlq) == len(MALFORMED)
    assert {d["raw"].encode() for d in dlq} == set(MALFORMED)
    for d in dlq:
        assert d["reason"] and d["topic"] == "predictions" and d["offset"] >= 0
        assert set(d) == {"reason", "topic", "partition", "offset", "received_at", "raw"}
    reasons = " ".join(d["reason"] for d in dlq)
    assert "invalid JSON" in reasons and "score" in reasons and "request_id" in reasons
    # good events still flowed: every window closed
    assert run["worker"].metric("driftline_windows_closed_total") >= WINDOWS
