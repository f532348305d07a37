"""Retraining and dead-letter publishers: an injected producer for the contract, the real broker for delivery."""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest

from monitor.adapters.bus import DeadLetterPublisher, PublishError, RetrainingPublisher, publishers_from_settings
from monitor.config import MonitorSettings
from monitor.types import Evidence, Rejection, RetrainRequest, WindowRange

T0 = 1_767_225_600.0
REQ = RetrainRequest("fraud", "v3", "drift", WindowRange(T0, T0 + 300), (Evidence("amount", "psi", 0.31, 0.25),), 3,
                     3600.0)


class FakeFuture:
    def __init__(self, exc: Exception | None) -> None:
        self.exc = exc

    def get(self, timeout: float | None = None) -> None:
        if self.exc is not None:
            raise self.exc


class FakeProducer:
    def __init__(self, fail: bool = False, **options: Any) -> None:
        self.options = options
        self.fail = fail
        self.sent: list[tuple[str, bytes | None, bytes]] = []
        self.closed = False

    def send(self, topic: str, key: bytes | None = None, value: bytes = b"") -> FakeFuture:
        self.sent.append((topic, key, value))
        return FakeFuture(TimeoutError("no leader") if self.fail else None)

    def flush(self, timeout: float | None = None) -> None: ...

    def close(self, timeout: float | None = None) -> None:
        self.closed = True


def make(fail: bool = False) -> tuple[list[FakeProducer], Any]:
    made: list[FakeProducer] = []

    def factory(**options: Any) -> FakeProducer:
        made.append(FakeProducer(fail, **options))
        return made[-1]

    return made, factory


def test_retraining_cloudevent_keyed_by_model_with_acks_all_and_security():
    made, factory = make()
    sec = {"security_protocol": "SASL_SSL", "sasl_mechanism": "PLAIN", "sasl_plain_username": "u",
           "sasl_plain_password": "p", "ssl_cafile": "/ca.pem"}
    with RetrainingPublisher("kafka://b1:9092", source="driftline/prod", security=sec,
                             producer_factory=factory) as pub:
        pub.publish([REQ])
    (p,) = made
    assert p.options["acks"] == "all" and p.options["retries"] > 0
    assert p.options["bootstrap_servers"] == "b1:9092"
    assert {k: p.options[k] for k in sec} == sec
    ((topic, key, value),) = p.sent
    assert topic == "monitor.retraining" and key == b"fraud"
    ev = orjson.loads(value)
    assert ev["specversion"] == "1.0" and ev["type"] == "io.driftline.retraining.requested"
    assert ev["source"] == "driftline/prod" and ev["subject"] == "fraud" and ev["id"] == REQ.event_id
    assert ev["data"]["evidence"] == [{"feature": "amount", "method": "psi", "score": 0.31, "threshold": 0.25}]
    assert p.closed


def test_undelivered_record_raises():
    _, factory = make(fail=True)
    pub = RetrainingPublisher("b:9092", producer_factory=factory)
    with pytest.raises(PublishError, match=r"1 of 1 records to 'monitor\.retraining' not delivered"):
        pub.publish([REQ])


def test_dead_letter_record_shape_and_key():
    made, factory = make()
    pub = DeadLetterPublisher("b:9092", topic="my.dlq", producer_factory=factory)
    rejections = [Rejection("invalid JSON", b"{nope", "predictions", 2, 17),
                  Rejection("score out of range", b'{"model":"m"}', "predictions", 1, 4, model="m")]
    pub.publish(rejections, received_at=T0)
    sent = made[0].sent
    assert [(t, k) for t, k, _ in sent] == [("my.dlq", None), ("my.dlq", b"m")]
    first = orjson.loads(sent[0][2])
    assert first == {"reason": "invalid JSON", "topic": "predictions", "partition": 2, "offset": 17,
                     "received_at": "2026-01-01T00:00:00.000Z", "raw": "{nope"}


def test_publishers_from_settings_take_topics_source_and_security():
    s = MonitorSettings(broker="kafka://a:1;kafka://b:2", retraining_topic="rt", dlq_topic="dq", source="driftline/x",
                        security_protocol="SASL_PLAINTEXT", sasl_mechanism="SCRAM-SHA-256", sasl_username="u",
                        sasl_password="secret")
    made, factory = make()
    rt, dl = publishers_from_settings(s, producer_factory=factory)
    assert rt.topic == "rt" and rt.source == "driftline/x"
    assert made[0].options["sasl_mechanism"] == "SCRAM-SHA-256" and made[0].options["sasl_plain_password"] == "secret"
    assert made[0].options["bootstrap_servers"] == "a:1,b:2"
    assert dl.topic == "dq" and made[1].options["security_protocol"] == "SASL_PLAINTEXT"


@pytest.mark.integration
def test_round_trip_on_the_real_broker(kafka_broker):
    from kafka import KafkaConsumer

    topic = f"bus-rt-{int(time.time() * 1000)}"
    with RetrainingPublisher(kafka_broker, topic) as pub:
        pub.publish([REQ, REQ])
    consumer = KafkaConsumer(topic, bootstrap_servers=kafka_broker, group_id=f"{topic}-reader",
                             auto_offset_reset="earliest", session_timeout_ms=6000, heartbeat_interval_ms=1000)
    got: list[Any] = []
    deadline = time.monotonic() + 30
    try:
        while len(got) < 2 and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=300).values():
                got.extend(records)
    finally:
        consumer.close()
    assert [r.key for r in got] == [b"fraud", b"fraud"]
    assert len({r.partition for r in got}) == 1
    assert {orjson.loads(r.value)["id"] for r in got} == {REQ.event_id}  # same id twice: consumers dedupe
