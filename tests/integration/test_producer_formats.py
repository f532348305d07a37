"""Producers met where they are, in the real worker on the real broker: epoch milliseconds under the
producer's own (nested) field names, and events with no timestamp at all timed by their Kafka record."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from monitor.core.reference import build_profile
from monitor.devservices import create_topics
from monitor.events import decode_any, producer_shaped
from monitor.lineprotocol import read_lp
from monitor.scenarios import get_scenario
from monitor.types import PredictionEvent
from tests.integration.harness import Worker, wait_for

pytestmark = pytest.mark.integration
T0 = 1_767_225_600.0
W = 10.0
WINDOWS = 6
FIELDS = {"model": "model_name", "request_id": "meta.id", "timestamp": "meta.ts_ms", "features": "payload.inputs",
          "prediction": "output", "score": "proba", "latency_ms": "latency", "error": "err", "label": "y"}




def _predictions() -> list[dict]:
    spec = get_scenario("mixed")
    return [e for e in spec.events(seed=2, windows=WINDOWS, window_s=W, rate=30.0, start=T0)
            if isinstance(e, dict) and "label" not in e]


def _expected_counts(events: list[dict]) -> Counter[int]:
    counts: Counter[int] = Counter()
    for e in events:
        ev = decode_any(json.dumps(e).encode())
        assert isinstance(ev, PredictionEvent)
        counts[int((ev.timestamp - T0) // W)] += 1
    return counts


def _counted(lp_file) -> Counter[int]:
    points = [p for p in read_lp(lp_file) if p.measurement == "throughput" and p.tag("model") == "fraud"]
    return Counter({int(p.time_ns / 1e9 - T0) // int(W) - 1: int(p.field("events") or 0) for p in points})


def _run(tmp_path, broker, name: str, records: list[tuple[bytes, int | None]], **env: str) -> Counter[int]:
    from kafka import KafkaProducer

    refdir = tmp_path / "refs"
    refdir.mkdir(exist_ok=True)
    build_profile("fraud", get_scenario("mixed").reference(rows=5_000, seed=2)["fraud"]).save(refdir / "fraud.json")
    topic = f"predictions-{name}"
    create_topics(broker, {topic: 2, f"labels-{name}": 2})
    lp = tmp_path / f"{name}.lp"
    worker = Worker(tmp_path, broker, name, MONITOR_REFERENCE=str(refdir), MONITOR_LP_FILE=str(lp),
                    MONITOR_PREDICTIONS_TOPIC=topic, MONITOR_LABELS_TOPIC=f"labels-{name}",
                    MONITOR_CONSUMER_GROUP=f"driftline-{name}", MONITOR_CHECKPOINT_TOPIC=f"ckpt-{name}",
                    MONITOR_DLQ_TOPIC=f"dlq-{name}", MONITOR_RETRAINING_TOPIC=f"retrain-{name}", **env).start()
    try:
        producer = KafkaProducer(bootstrap_servers=broker)
        for value, ts_ms in records:
            producer.send(topic, key=b"fraud", value=value, timestamp_ms=ts_ms)
        producer.flush()
        producer.close()
        wait_for(lambda: worker.metric("driftline_windows_closed_total") >= WINDOWS, timeout=90)
        wait_for(lambda: lp.exists() and sum(_counted(lp).values()) >= len(records), timeout=30)
        assert worker.metric("driftline_dlq_total") == 0
        return _counted(lp)
    finally:
        worker.stop()


def test_millisecond_producer_with_its_own_field_names(kafka_broker, tmp_path):
    events = _predictions()
    records = []
    for e in events:
        e = dict(e, timestamp=round(decode_any(json.dumps(e).encode()).timestamp * 1000))  # type: ignore[union-attr]
        records.append((json.dumps(producer_shaped(e, FIELDS)).encode(), None))
    assert b'"ts_ms"' in records[0][0] and b'"model_name"' in records[0][0]
    env = {f"MONITOR_FIELDS__{k.upper()}": v for k, v in FIELDS.items()}
    counted = _run(tmp_path, kafka_broker, "mapped", records, **env)
    assert counted == _expected_counts(events)


def test_events_without_timestamps_use_the_kafka_record_time(kafka_broker, tmp_path):
    events = _predictions()
    records = []
    for e in events:
        ts = decode_any(json.dumps(e).encode()).timestamp  # type: ignore[union-attr]
        records.append((json.dumps({k: v for k, v in e.items() if k != "timestamp"}).encode(), round(ts * 1000)))
    counted = _run(tmp_path, kafka_broker, "record", records, MONITOR_TIMESTAMP_SOURCE="record")
    assert counted == _expected_counts(events)
