"""A real `monitor run` worker pages through a real Alertmanager 0.25: the alert is readable from
Alertmanager's API, routed to its webhook receiver (the documented inhibit rule mutes the warning while
the critical fires), then resolved."""

from __future__ import annotations

import json
import math
import time
import urllib.request
import uuid
from typing import Any

import pytest
from kafka import KafkaProducer

from monitor.adapters.receiver import WebhookServer
from tests.integration.harness import Worker, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]
W = 5.0  # window length (s)
MODEL = f"am-{uuid.uuid4().hex[:6]}"


def am_alerts(url: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{url}/api/v2/alerts?receiver=webhook", timeout=5) as r:
        out: list[dict[str, Any]] = json.loads(r.read())
    return [a for a in out if a["labels"].get("model") == MODEL]


def produce(bootstrap: str, topic: str, start: float, windows: int, error_windows: set[int], per_window: int = 40) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    for w in range(windows):
        for i in range(per_window):
            err = w in error_windows and i % 2 == 0  # 50 % errors: over the critical 20 %
            ev = {"model": MODEL, "model_version": "v1", "request_id": f"{start}-{w}-{i}",
                  "timestamp": start + w * W + (i + 0.5) * W / per_window, "features": {},
                  "prediction": None if err else 1, "latency_ms": 12.0,
                  **({"error": "upstream timeout"} if err else {})}
            producer.send(topic, key=MODEL.encode(), value=json.dumps(ev).encode())
    producer.flush()
    producer.close()


def notified(server: WebhookServer, status: str) -> list[dict[str, Any]]:
    return [a for p in server.payloads() if p["status"] == status for a in p["alerts"]
            if a["labels"].get("model") == MODEL]


def test_worker_alert_reaches_alertmanager_routes_to_the_receiver_and_resolves(
        kafka_broker: str, alertmanager: tuple[str, WebhookServer], tmp_workdir) -> None:
    am_url, server = alertmanager
    tag = uuid.uuid4().hex[:8]
    topic = f"am-predictions-{tag}"
    worker = Worker(tmp_workdir, kafka_broker, "am-worker", MONITOR_ALERTMANAGER_URL=am_url,
                    MONITOR_PREDICTIONS_TOPIC=topic, MONITOR_LABELS_TOPIC="", MONITOR_CONSUMER_GROUP=f"am-{tag}",
                    MONITOR_CHECKPOINT_TOPIC=f"am-ckpt-{tag}", MONITOR_RETRAINING_TOPIC=f"am-retrain-{tag}",
                    MONITOR_DLQ_TOPIC=f"am-dlq-{tag}", MONITOR_WINDOW=f"{W:g}s", MONITOR_ALLOWED_LATENESS="1s",
                    MONITOR_IDLE_TIMEOUT="1s", MONITOR_PARTITIONS="1",
                    MONITOR_EXTERNAL_URL="http://grafana.test/d/driftline-drift").start()
    try:
        # phase 1: a clean window, then two windows with 50 % errors, two minutes behind the wall clock
        start = math.floor(time.time() / W) * W - 120.0
        produce(kafka_broker, topic, start, 3, error_windows={1, 2})
        produced = time.time()
        firing = wait_for(lambda: len(am_alerts(am_url)) == 2 and am_alerts(am_url), timeout=60)
        by_sev = {a["labels"]["severity"]: a for a in firing}
        crit, warn = by_sev["critical"], by_sev["warning"]
        assert crit["labels"]["alertname"] == "ErrorRate" and crit["labels"]["model_version"] == "v1"
        assert crit["annotations"]["threshold"] == "0.2" and warn["annotations"]["threshold"] == "0.05"
        assert crit["annotations"]["summary"].startswith(f"{MODEL}: error rate 50.0% over 20.0%")
        assert '"upstream timeout"' in crit["annotations"]["description"]
        assert crit["generatorURL"].startswith("http://grafana.test/d/driftline-drift?from=")
        assert crit["status"]["state"] == "active"
        # the inhibit rule of docs/alerts.md: the warning is muted by its critical sibling
        assert warn["status"]["state"] == "suppressed" and warn["status"]["inhibitedBy"] == [crit["fingerprint"]]
        pages = wait_for(lambda: notified(server, "firing"), timeout=30)
        assert {a["labels"]["severity"] for a in pages} == {"critical"}, [
            (p["status"], [(a["labels"]["severity"], a["startsAt"]) for a in p["alerts"]]) for p in server.payloads()]
        assert pages[0]["fingerprint"] == crit["fingerprint"]

        # phase 2: clean traffic; two clean windows resolve both alerts. While idle, the worker's watermark
        # followed the wall clock from the last event time: start after it (still in the past)
        start2 = math.ceil((start + 3 * W + (time.time() - produced) + 2 * W) / W) * W
        assert start2 + 3 * W < time.time()
        produce(kafka_broker, topic, start2, 3, error_windows=set())
        wait_for(lambda: am_alerts(am_url) == [], timeout=60)  # resolved alerts leave the API's list
        resolved = wait_for(lambda: notified(server, "resolved"), timeout=30)
        assert resolved[0]["fingerprint"] == crit["fingerprint"] and resolved[0]["status"] == "resolved"
        assert resolved[0]["endsAt"] != "0001-01-01T00:00:00Z"
    finally:
        worker.stop()
