"""A real `monitor run` worker configured with recognisable secrets everywhere they can go (a password in the
InfluxDB URL, tokens, a webhook URL with ``?token=``, a Slack URL, an Alertmanager URL with userinfo):
none of them appears in its log or on /metrics, while every one of them is really used."""

from __future__ import annotations

import pytest

from monitor.adapters.receiver import WebhookServer
from monitor.core.reference import build_profile
from monitor.devservices import create_topics, free_port
from monitor.scenarios import get_scenario
from monitor.scenarios.produce import produce_events
from tests.integration.harness import Worker, vm_export, wait_for

pytestmark = pytest.mark.integration
T0 = 1_767_225_600.0
WINDOWS = 8
SECRETS = {
    "influx_password": "s3cr3tPW-influx",
    "influx_token": "tok-S3CRET-influx",
    "webhook_query_token": "hook-S3CRET-q",
    "webhook_secret": "whsec-S3CRET",
    "slack_path": "slack-S3CRET",
    "alertmanager_password": "am-S3CRET",
    "sasl_password": "sasl-S3CRET",
}


def test_no_secret_in_logs_or_metrics(kafka_broker, victoriametrics, tmp_path):
    spec = get_scenario("mixed")
    refdir = tmp_path / "refs"
    refdir.mkdir()
    build_profile("fraud", spec.reference(rows=10_000, seed=1)["fraud"]).save(refdir / "fraud.json")
    # topics of its own: the broker is shared by the session's tests, which expect fresh default topics
    topics = {name: f"secrets-{name}" for name in ("predictions", "labels", "checkpoints", "dlq", "retraining")}
    create_topics(kafka_broker, {topics["predictions"]: 4, topics["labels"]: 4})
    influx = victoriametrics.replace("http://", f"http://user:{SECRETS['influx_password']}@")
    dead = free_port()  # nothing listens: Slack and Alertmanager deliveries fail and are logged
    server = WebhookServer(secret=SECRETS["webhook_secret"]).start()
    worker = Worker(
        tmp_path, kafka_broker, "secretive", MONITOR_REFERENCE=str(refdir), MONITOR_CONSUMER_GROUP="driftline-secrets",
        MONITOR_INFLUX_URL=influx, MONITOR_INFLUX_TOKEN=SECRETS["influx_token"],
        MONITOR_WEBHOOK_URL=f"{server.url}/alerts?team=ml&token={SECRETS['webhook_query_token']}",
        MONITOR_WEBHOOK_SECRET=SECRETS["webhook_secret"],
        MONITOR_SLACK_WEBHOOK_URL=f"http://127.0.0.1:{dead}/services/T0/B0/{SECRETS['slack_path']}",
        MONITOR_ALERTMANAGER_URL=f"http://am:{SECRETS['alertmanager_password']}@127.0.0.1:{dead}",
        MONITOR_SASL_PASSWORD=SECRETS["sasl_password"], MONITOR_REPEAT_INTERVAL="1h",
        MONITOR_PREDICTIONS_TOPIC=topics["predictions"], MONITOR_LABELS_TOPIC=topics["labels"],
        MONITOR_CHECKPOINT_TOPIC=topics["checkpoints"], MONITOR_DLQ_TOPIC=topics["dlq"],
        MONITOR_RETRAINING_TOPIC=topics["retraining"]).start()
    try:
        produce_events(spec.events(seed=1, windows=WINDOWS, window_s=10.0, rate=40.0, start=T0), kafka_broker,
                       predictions_topic=topics["predictions"], labels_topic=topics["labels"])
        wait_for(lambda: worker.metric("driftline_windows_closed_total") >= WINDOWS, timeout=90)
        wait_for(lambda: server.alerts(), timeout=30)  # the webhook was used, signed with the real secret
        wait_for(lambda: "notify_failed" in worker.log.read_text(errors="replace"), timeout=90)
        metrics = worker.metrics_text()
    finally:
        worker.stop()
        server.stop()
    log = worker.log.read_text(errors="replace")
    assert server.rejected == 0 and server.alerts()
    assert vm_export(victoriametrics, '{__name__="throughput_events",model="fraud"}')  # the sink wrote
    assert "event=starting" in log and metrics
    for what, secret in SECRETS.items():
        assert secret not in log, f"{what} leaked into the worker log"
        assert secret not in metrics, f"{what} leaked into /metrics"
    # what is not secret is still shown, so the log stays useful
    assert "user:" not in log and "***@127.0.0.1" in log and "team=ml&token=***" in log
