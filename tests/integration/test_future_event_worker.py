"""The worker with an event from the future in the middle of a stream: every window closes with its exact
count, the event goes to the dead-letter topic with its reason, and the partition's commits are not held
back by it."""

from __future__ import annotations

from collections import Counter

import orjson
import pytest

from monitor.core.reference import build_profile
from monitor.devservices import create_topics
from monitor.events import parse_timestamp
from monitor.lineprotocol import read_lp
from monitor.scenarios import get_scenario
from tests.integration.harness import Worker, consume_all, wait_for

pytestmark = pytest.mark.integration
T0 = 1_767_225_600.0
W = 10.0


def test_an_event_from_2100_does_not_stop_the_model(kafka_broker, tmp_path):
    spec = get_scenario("multi_model")
    refdir = tmp_path / "refs"
    refdir.mkdir()
    for model, frame in spec.reference(rows=3_000, seed=4).items():
        build_profile(model, frame).save(refdir / f"{model}.json")
    events = [e for e in spec.events(seed=4, windows=8, window_s=W, rate=10.0, start=T0)
              if isinstance(e, dict) and "label" not in e]
    expected = Counter((e["model"], int((parse_timestamp(e["timestamp"]) - T0) // W)) for e in events)
    future = {"model": "ranker", "request_id": "from-2100", "timestamp": "2100-01-01T00:00:00Z",
              "features": {}, "prediction": 1}
    stream = [*events[: len(events) // 2], future, *events[len(events) // 2:]]
    names = {"predictions": "fut-predictions", "dlq": "fut-dlq"}
    create_topics(kafka_broker, {names["predictions"]: 2})
    w = Worker(tmp_path, kafka_broker, "w", MONITOR_REFERENCE=str(refdir), MONITOR_LABELS_TOPIC="",
               MONITOR_PREDICTIONS_TOPIC=names["predictions"], MONITOR_DLQ_TOPIC=names["dlq"],
               MONITOR_CONSUMER_GROUP="fut", MONITOR_RETRAINING_TOPIC="fut-retraining",
               MONITOR_LP_FILE=str(tmp_path / "w.lp")).start()
    try:
        from kafka import KafkaProducer

        p = KafkaProducer(bootstrap_servers=kafka_broker, acks="all")
        for e in stream:
            p.send(names["predictions"], key=e["request_id"].encode(), value=orjson.dumps(e))
        p.flush()
        p.close()

        def written() -> dict[tuple[str, int], int]:
            f = tmp_path / "w.lp"
            return {(str(pt.tag("model")), round(pt.time_ns / 1e9 - T0) // int(W) - 1): int(pt.field("events"))
                    for pt in (read_lp(f) if f.exists() else []) if pt.measurement == "throughput"}  # type: ignore[arg-type]

        wait_for(lambda: expected.keys() <= written().keys(), 120)
        wait_for(lambda: w.metric("driftline_dlq_total") >= 1, 60)
        dlq = consume_all(kafka_broker, names["dlq"], "fut-dlq-check", expect=1)
    finally:
        w.stop()
    got = written()
    assert {k: got.get(k) for k in expected} == dict(expected)
    assert not [k for k in got if k[1] > 100], "a window of the year 2100 was written"
    (record,) = [orjson.loads(r.value) for r in dlq]
    assert orjson.loads(record["raw"])["request_id"] == "from-2100" and "ahead" in record["reason"]
    # the held event did not stall the commits: they reach at least half of the stream
    from kafka import KafkaConsumer, TopicPartition

    reader = KafkaConsumer(bootstrap_servers=kafka_broker, group_id="fut", enable_auto_commit=False)
    try:
        committed = sum(reader.committed(TopicPartition(names["predictions"], q)) or 0 for q in range(2))
    finally:
        reader.close()
    assert committed >= len(stream) // 2, committed
