"""A single worker is killed (-9) mid-stream, while a window is open, and a new process takes over from the
committed offsets: every window's points exist with exactly the right counts (no gap, never double counted),
and the retraining request is published — possibly more than once, always with the same id (at-least-once,
docs/streaming.md)."""

from __future__ import annotations

from collections import Counter

import orjson
import pytest

from monitor.core.reference import build_profile
from monitor.devservices import create_topics
from monitor.events import parse_timestamp
from monitor.lineprotocol import read_lp
from monitor.scenarios import get_scenario
from monitor.scenarios.produce import produce_events
from tests.integration.harness import Worker, read_topic, wait_for

pytestmark = pytest.mark.integration
T0 = 1_767_225_600.0
W = 10.0
WINDOWS = 12


def test_kill_and_restart_one_worker(kafka_broker, tmp_path):
    spec = get_scenario("multi_model")
    refdir = tmp_path / "refs"
    refdir.mkdir()
    for model, frame in spec.reference(rows=5_000, seed=7).items():
        build_profile(model, frame).save(refdir / f"{model}.json")
    names = {"predictions": "cr-predictions", "labels": "cr-labels", "retraining": "cr-retraining"}
    create_topics(kafka_broker, {names["predictions"]: 4, names["labels"]: 4, names["retraining"]: 1})
    events = list(spec.events(seed=7, windows=WINDOWS, window_s=W, rate=8.0, start=T0))
    expected: Counter[tuple[str, int]] = Counter()
    for e in events:
        if isinstance(e, dict) and "label" not in e:
            expected[(e["model"], int((parse_timestamp(e["timestamp"]) - T0) // W))] += 1
    # crash in the middle of window 6: part of it is consumed (and not acked) when the process dies
    cut = 1 + max(i for i, e in enumerate(events) if isinstance(e, dict) and "label" not in e
                  and parse_timestamp(e["timestamp"]) < T0 + 6.5 * W)
    env = dict(MONITOR_REFERENCE=str(refdir), MONITOR_PREDICTIONS_TOPIC=names["predictions"],
               MONITOR_LABELS_TOPIC=names["labels"], MONITOR_RETRAINING_TOPIC=names["retraining"],
               MONITOR_CONSUMER_GROUP="driftline-crash", MONITOR_CHECKPOINT_TOPIC="cr-checkpoints",
               MONITOR_DLQ_TOPIC="cr-dlq", MONITOR_IDLE_TIMEOUT="30s")
    first = Worker(tmp_path, kafka_broker, "first", MONITOR_LP_FILE=str(tmp_path / "first.lp"), **env).start()
    second = None
    try:
        produce_events(events[:cut], kafka_broker, predictions_topic=names["predictions"],
                       labels_topic=names["labels"])
        # windows 0..4 of every model closed (the watermark is in window 6), window 6 partly consumed
        wait_for(lambda: first.metric("driftline_windows_closed_total") >= 5 * 3, 90)
        wait_for(lambda: first.metric("driftline_events_total") >= cut, 30)
        first.kill()
        second = Worker(tmp_path, kafka_broker, "second", MONITOR_LP_FILE=str(tmp_path / "second.lp"),
                        **{**env, "MONITOR_IDLE_TIMEOUT": "2s"}).start()
        produce_events(events[cut:], kafka_broker, predictions_topic=names["predictions"],
                       labels_topic=names["labels"])

        def windows() -> dict[tuple[str, int], list[int]]:
            out: dict[tuple[str, int], list[int]] = {}
            for f in ("first.lp", "second.lp"):
                if (tmp_path / f).exists():
                    for p in read_lp(tmp_path / f):
                        if p.measurement == "throughput":
                            key = (str(p.tag("model")), round(p.time_ns / 1e9 - T0) // int(W) - 1)
                            out.setdefault(key, []).append(int(p.field("events")))  # type: ignore[arg-type]
            return out

        wait_for(lambda: all(k in windows() for k in expected), 120)
    finally:
        first.kill()
        if second is not None:
            second.stop()
    written = windows()
    wrong = {k: (written.get(k), n) for k, n in expected.items() if set(written.get(k, [])) != {n}}
    assert not wrong, f"windows missing or with wrong counts (written, expected): {wrong}"
    replayed = sum(len(c) - 1 for k, c in written.items() if k in expected)
    records = read_topic(kafka_broker, names["retraining"])  # to its end: a later duplicate would show
    ids = Counter(orjson.loads(r.value)["id"] for r in records)
    models = {orjson.loads(r.value)["data"]["model"] for r in records}
    assert models == {"churn"}, models  # only churn drifts
    assert len(ids) == 1, ids  # one request; a duplicate after the crash carries the same id
    # the second worker committed its progress (acks are offset ranges fed to faust's commit loop)
    from kafka import KafkaConsumer, TopicPartition

    reader = KafkaConsumer(bootstrap_servers=kafka_broker, group_id="driftline-crash", enable_auto_commit=False)
    try:
        committed = {p: reader.committed(TopicPartition(names["predictions"], p)) or 0 for p in range(4)}
    finally:
        reader.close()
    n_predictions = sum(expected.values())
    assert 0.5 * n_predictions <= sum(committed.values()) <= n_predictions, (committed, n_predictions)
    print(f"committed offsets {committed} of {n_predictions} predictions; "
          f"windows checked: {len(expected)}, windows written twice (identical): {replayed}, "
          f"retraining records: {sum(ids.values())} with {len(ids)} distinct id")
