"""The project's own servers start on 127.0.0.1, answer real requests, and stop by PID."""

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient

from monitor import devservices

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def test_broker_round_trip(kafka_broker):
    assert kafka_broker.startswith("127.0.0.1:")
    devservices.create_topics(kafka_broker, {"svc-check": 2})
    devservices.create_topics(kafka_broker, {"svc-check": 2, "svc-check-2": 1})  # idempotent
    admin = KafkaAdminClient(bootstrap_servers=kafka_broker)
    try:
        assert {"svc-check", "svc-check-2"} <= set(admin.list_topics())
        (desc,) = admin.describe_topics(["svc-check"])
        assert len(desc["partitions"]) == 2
    finally:
        admin.close()
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
    assert sorted(values) == sorted(b"v%d" % i for i in range(20))


def test_influxdb1_ping_write_and_influxql(influxdb):
    with urllib.request.urlopen(f"{influxdb}/ping", timeout=5) as resp:
        assert resp.status == 204 and resp.headers["X-Influxdb-Version"].startswith("1.6")
    devservices.influx1_write(influxdb, "driftline", "svc_check,model=m value=1.5 1000000000\n"
                                                     "svc_check,model=m value=2.5 2000000000\n")
    out = devservices.influx1_query(influxdb, 'SELECT mean("value") FROM "svc_check" GROUP BY "model"', db="driftline")
    (series,) = out["results"][0]["series"]
    assert series["tags"] == {"model": "m"} and series["values"] == [[0, 2.0]]
    with pytest.raises(devservices.ServiceError, match="not found"):
        devservices.influx1_query(influxdb, 'SELECT * FROM "x"', db="no_such_db")


def test_victoriametrics_health(victoriametrics):
    with urllib.request.urlopen(f"{victoriametrics}/health", timeout=5) as resp:
        assert resp.status == 200 and resp.read().strip() == b"OK"


def test_stop_by_pid_is_idempotent(tmp_path):
    svc = devservices.start_kafka(tmp_path / "k")
    assert svc.alive() and svc.port != 0
    svc.stop()
    assert not svc.alive()
    svc.stop()  # second stop: no error


def test_cli_start_status_stop(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "monitor.devservices", *args, "--state-dir", str(tmp_path)],
                              capture_output=True, text=True, env=env, timeout=120)

    started = cli("start", "--only", "kafka,victoriametrics")
    assert started.returncode == 0, started.stderr
    state = json.loads((tmp_path / "services.json").read_text())
    assert set(state) == {"kafka", "victoriametrics"}
    assert f"export MONITOR_BROKER=kafka://{state['kafka']['url']}" in started.stdout
    assert f"export MONITOR_INFLUX_URL={state['victoriametrics']['url']}" in started.stdout
    pids = [info["pid"] for info in state.values()]
    try:
        assert cli("start", "--only", "kafka").returncode == 1  # refuses to orphan running servers
        status = cli("status")
        assert status.returncode == 0 and status.stdout.count(": up ") == 2
        assert devservices.kafka_ready(state["kafka"]["url"])
    finally:
        stopped = cli("stop")
    assert stopped.returncode == 0
    assert not (tmp_path / "services.json").exists()
    for pid in pids:
        assert not devservices.Service("x", pid, 0, "", tmp_path).alive()
    assert cli("status").returncode == 1
