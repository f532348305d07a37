"""Simulated traffic through a real Kafka-protocol broker: what is produced is what a consumer reads back."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import pytest
from typer.testing import CliRunner

from monitor.devservices import create_topics
from monitor.scenarios import dump_line, get_scenario
from monitor.scenarios.produce import produce_events

pytestmark = pytest.mark.integration
T0 = 1_767_225_600.0


def consume(bootstrap: str, topics: list[str], expected: int, timeout: float = 60.0) -> list[tuple[str, Any, bytes]]:
    """Read ``topics`` from the beginning until ``expected`` records arrived (or the timeout)."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(*topics, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             enable_auto_commit=False, group_id=None, consumer_timeout_ms=2000)
    got: list[tuple[str, Any, bytes]] = []
    deadline = time.monotonic() + timeout
    try:
        while len(got) < expected and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=1000).values():
                got.extend((r.topic, r.key, r.value) for r in batch)
    finally:
        consumer.close()
    return got


def expected_records(items: list[dict[str, Any] | str], predictions: str, labels: str) -> Counter[tuple[str, Any, bytes]]:
    out: Counter[tuple[str, Any, bytes]] = Counter()
    for item in items:
        if isinstance(item, str):
            out[(predictions, None, dump_line(item))] += 1
        else:
            out[(labels if "label" in item else predictions, item["model"].encode(), dump_line(item))] += 1
    return out


def test_produce_events_round_trip(kafka_broker: str) -> None:
    topics = {"predictions": "sim-rt-predictions", "labels": "sim-rt-labels"}
    create_topics(kafka_broker, {topics["predictions"]: 3, topics["labels"]: 3})
    items = list(get_scenario("multi_model").events(seed=9, windows=3, window_s=10.0, rate=4.0, start=T0))
    progress: list[int] = []
    n = produce_events(items, f"kafka://{kafka_broker}", predictions_topic=topics["predictions"],
                       labels_topic=topics["labels"], progress=progress.append)
    assert n == len(items) and progress[-1] == n
    got = consume(kafka_broker, list(topics.values()), n)
    assert Counter(got) == expected_records(items, topics["predictions"], topics["labels"])
    keys = Counter(k for t, k, _ in got if t == topics["predictions"])
    assert set(keys) == {b"fraud", b"churn", b"ranker"}
    assert keys[b"fraud"] < keys[b"churn"] < keys[b"ranker"]  # 1 : 4 : 10 traffic


def test_cli_simulate_to_broker_with_malformed_lines(kafka_broker: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from monitor.cli import app

    topics = {"predictions": "sim-cli-predictions", "labels": "sim-cli-labels"}
    create_topics(kafka_broker, {topics["predictions"]: 2, topics["labels"]: 2})
    monkeypatch.setenv("MONITOR_BROKER", f"kafka://{kafka_broker}")
    args = ["simulate", "malformed_storm", "--seed", "4", "--windows", "2", "--window", "10s", "--rate", "10",
            "--start", str(T0), "--wall-rate", "5000", "--predictions-topic", topics["predictions"],
            "--labels-topic", topics["labels"]]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    items = list(get_scenario("malformed_storm").events(seed=4, windows=2, window_s=10.0, rate=10.0, start=T0))
    got = consume(kafka_broker, list(topics.values()), len(items))
    assert Counter(got) == expected_records(items, topics["predictions"], topics["labels"])
    assert any(k is None for _, k, _ in got)  # the malformed lines
