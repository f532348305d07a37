"""Two workers on 4 partitions split the work; when one is killed (-9) the other takes over its models from
the committed offsets, and every window's points exist exactly once with the right counts."""

from __future__ import annotations

from collections import Counter

import pytest

from monitor.core.reference import build_profile
from monitor.devservices import create_topics
from monitor.events import parse_timestamp
from monitor.lineprotocol import read_lp
from monitor.scenarios import get_scenario
from monitor.scenarios.produce import produce_events
from tests.integration.harness import Worker, wait_for

pytestmark = pytest.mark.integration
T0 = 1_767_225_600.0
W = 10.0
WINDOWS = 12


def test_two_workers_split_and_fail_over(kafka_broker, tmp_path):
    spec = get_scenario("multi_model")
    refdir = tmp_path / "refs"
    refdir.mkdir()
    for model, frame in spec.reference(rows=5_000, seed=5).items():
        build_profile(model, frame).save(refdir / f"{model}.json")
    topics = {"predictions": "fo-predictions", "labels": "fo-labels"}
    create_topics(kafka_broker, {topics["predictions"]: 4, topics["labels"]: 4})
    events = list(spec.events(seed=5, windows=WINDOWS, window_s=W, rate=8.0, start=T0))
    expected = Counter()
    for e in events:
        if isinstance(e, dict) and "label" not in e:
            expected[(e["model"], int((parse_timestamp(e["timestamp"]) - T0) // W))] += 1
    # split after the last prediction of window 5, so no straggler of a closed window arrives after the split
    half = 1 + max(i for i, e in enumerate(events) if isinstance(e, dict) and "label" not in e
                   and parse_timestamp(e["timestamp"]) < T0 + 6 * W)
    env = dict(MONITOR_REFERENCE=str(refdir), MONITOR_PREDICTIONS_TOPIC=topics["predictions"],
               MONITOR_LABELS_TOPIC=topics["labels"], MONITOR_CONSUMER_GROUP="driftline-failover",
               MONITOR_CHECKPOINT_TOPIC="fo-checkpoints", MONITOR_RETRAINING_TOPIC="fo-retraining",
               MONITOR_DLQ_TOPIC="fo-dlq")
    a = Worker(tmp_path, kafka_broker, "a", MONITOR_LP_FILE=str(tmp_path / "a.lp"), **env).start()
    b = Worker(tmp_path, kafka_broker, "b", MONITOR_LP_FILE=str(tmp_path / "b.lp"), **env).start()
    try:
        produce_events(events[:half], kafka_broker, predictions_topic=topics["predictions"],
                       labels_topic=topics["labels"])
        # both members of the group receive work
        wait_for(lambda: a.metric("driftline_events_total") > 0 and b.metric("driftline_events_total") > 0, 90)
        wait_for(lambda: a.metric("driftline_windows_closed_total") + b.metric("driftline_windows_closed_total")
                 >= 3 * 4, 60)
        a.kill()
        produce_events(events[half:], kafka_broker, predictions_topic=topics["predictions"],
                       labels_topic=topics["labels"])

        def covered() -> bool:
            pts = [p for f in ("a.lp", "b.lp") if (tmp_path / f).exists() for p in read_lp(tmp_path / f)
                   if p.measurement == "throughput"]
            seen = {(p.tag("model"), round(p.time_ns / 1e9 - T0) // int(W) - 1) for p in pts}
            return all(key in seen for key in expected)

        wait_for(covered, 120)
    finally:
        a.kill()
        b.stop()
    points: dict[tuple[str | None, int], list[int]] = {}
    for f in ("a.lp", "b.lp"):
        for p in read_lp(tmp_path / f):
            if p.measurement == "throughput":
                key = (p.tag("model"), round(p.time_ns / 1e9 - T0) // int(W) - 1)
                points.setdefault(key, []).append(int(p.field("events")))  # type: ignore[arg-type]
    wrong = {key: (points.get(key), n) for key, n in expected.items() if set(points.get(key, [])) != {n}}
    # every window exactly once in content: rewrites by the new owner carry the same complete count
    assert not wrong, f"windows missing, short or over-counted (written counts, expected): {wrong}"
