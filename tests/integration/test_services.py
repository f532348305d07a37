"""The project's own servers start, answer real requests, and stop by PID."""

import time

import pytest
from kafka import KafkaConsumer, KafkaProducer

from monitor import devservices

pytestmark = pytest.mark.integration


def test_broker_round_trip(kafka_broker):
    devservices.create_topics(kafka_broker, {"svc-check": 2})
    producer = KafkaProducer(bootstrap_servers=kafka_broker)
    for i in range(20):
        producer.send("svc-check", key=b"k%d" % (i % 3), value=b"v%d" % i)
    producer.flush()
    producer.close()
    consumer = KafkaConsumer("svc-check", bootstrap_servers=kafka_broker, group_id="svc-check",
                             auto_offset_reset="earliest", session_timeout_ms=6000, heartbeat_interval_ms=1000)
    values = []
    deadline = time.monotonic() + 30
    while len(values) < 20 and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=500).values():
            values += [r.value for r in records]
    consumer.close()
    values.sort()
    assert values == sorted(b"v%d" % i for i in range(20))


def test_influxdb1_write_and_influxql(influxdb):
    devservices.influx1_write(influxdb, "driftline", "svc_check,model=m value=1.5 1000000000\n")
    out = devservices.influx1_query(influxdb, 'SELECT "value" FROM "svc_check"', db="driftline")
    assert out["results"][0]["series"][0]["values"] == [[1000000000, 1.5]]


def test_victoriametrics_health(victoriametrics):
    assert devservices._http_ok(f"{victoriametrics}/health")


def test_stop_by_pid(tmp_path):
    svc = devservices.start_kafka(tmp_path / "k")
    assert svc.alive()
    svc.stop()
    t = time.monotonic()
    while svc.alive() and time.monotonic() - t < 5:
        time.sleep(0.1)
    assert not svc.alive()
